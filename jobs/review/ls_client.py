"""A small client of Label Studio's REST API: projects, local storages, task import, annotations, export.

Why not the `label-studio-sdk` package: it pins `opencv-python-headless` 4.12, and this project already has
`opencv-python` (PySceneDetect's); two wheels of the `cv2` package in one environment overwrite each other's
files. The handful of calls the round trip needs are plain JSON over HTTP, done here with `requests`.

Keys: a legacy token (`Authorization: Token …`) or a personal access token (a JWT refresh token, exchanged at
`/api/token/refresh` for an access token). The key never appears in an error message.
"""

from __future__ import annotations

from typing import Any

import requests

from jobs.review.ls_format import Task

TIMEOUT_S = 60.0


class LabelStudioError(RuntimeError):
    """A call Label Studio refused or could not answer; the message names the call and what it said."""


class LabelStudio:
    def __init__(self, url: str, api_key: str, *, timeout_s: float = TIMEOUT_S) -> None:
        if not api_key:
            raise LabelStudioError("no Label Studio API key: pass --api-key or set LABEL_STUDIO_API_KEY")
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = requests.Session()
        self.http.trust_env = False  # a loopback server: no proxy from the environment in between
        self.http.headers["Authorization"] = self._authorization(api_key)

    def _authorization(self, key: str) -> str:
        if key.count(".") != 2:  # a legacy token
            return f"Token {key}"
        answer = self._call("POST", "/api/token/refresh", json={"refresh": key}, auth=False)
        return f"Bearer {answer['access']}"

    def _call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> Any:
        where = f"{method} {self.url}{path}"
        session = self.http if auth else requests
        try:
            response = session.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise LabelStudioError(f"{where}: no answer ({type(exc).__name__}: {exc})") from None
        if response.status_code >= 400:
            raise LabelStudioError(f"{where}: HTTP {response.status_code}: {response.text[:500]}")
        return response.json() if response.content else None

    # -- projects and storages ----------------------------------------------------------------------
    def create_project(self, title: str, label_config: str, description: str = "") -> int:
        body = {"title": title, "label_config": label_config, "description": description}
        return int(self._call("POST", "/api/projects", json=body)["id"])

    def add_local_storage(self, project: int, path: str, title: str) -> int:
        """A local-files storage of `path` on the project: what lets Label Studio serve the proxies under it
        (nothing is synced from it: the tasks are imported by v2s)."""
        body = {"project": project, "path": path, "title": title, "use_blob_urls": True, "regex_filter": ""}
        return int(self._call("POST", "/api/storages/localfiles", json=body)["id"])

    def import_tasks(self, project: int, tasks: list[Task]) -> int:
        payload = [t.model_dump(mode="json", exclude_none=True, exclude={"annotations"}) for t in tasks]
        answer = self._call("POST", f"/api/projects/{project}/import", json=payload)
        return int(answer.get("task_count", len(payload)))

    # -- tasks and annotations ------------------------------------------------------------------------
    def tasks(self, project: int) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        page = 1
        while True:
            answer = self._call(
                "GET", "/api/tasks", params={"project": project, "page": page, "page_size": 100}
            )
            batch = answer.get("tasks", []) if isinstance(answer, dict) else answer
            found += batch
            total = answer.get("total", len(found)) if isinstance(answer, dict) else len(found)
            if not batch or len(found) >= total:
                return found
            page += 1

    def annotate(self, task: int, result: list[dict[str, Any]]) -> int:
        """Submit an annotation of `task` as the key's user (what an annotator's Submit does)."""
        body = {"result": result, "was_cancelled": False, "ground_truth": False}
        return int(self._call("POST", f"/api/tasks/{task}/annotations", json=body)["id"])

    def users(self) -> dict[int, str]:
        """User id → e-mail (an export names annotators by id only)."""
        answer = self._call("GET", "/api/users")
        rows = answer.get("results", []) if isinstance(answer, dict) else answer
        return {int(u["id"]): str(u.get("email") or u.get("username") or u["id"]) for u in rows}

    def export(self, project: int) -> list[dict[str, Any]]:
        """The project's tasks with their annotations, in Label Studio's JSON export format."""
        answer = self._call(
            "GET",
            f"/api/projects/{project}/export",
            params={"exportType": "JSON", "download_all_tasks": "false"},
        )
        if not isinstance(answer, list):
            raise LabelStudioError(f"GET {self.url}/api/projects/{project}/export: not a list of tasks")
        return answer
