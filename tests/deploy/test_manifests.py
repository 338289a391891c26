"""deploy/: the KubeRay manifests validate offline against KubeRay's CRD schemas and Kubernetes' own (a broken
manifest fails), agree with each other, with the image, the compose file, the engine and docs/deploy.md, and
hold no secret."""

from __future__ import annotations

import copy
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import typer
import yaml

from tests.deploy.manifests import SECRET_WORDS, load_all, pod_templates, problems

ROOT = Path(__file__).resolve().parents[2]
KUBERAY = ROOT / "deploy" / "kuberay"
CRDS = Path(os.environ.get("V2S_KUBERAY_CRDS", ROOT.parent / "shared" / "kuberay-crds"))
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
RAY_VERSION = next(d.split("==")[1] for d in PROJECT["dependencies"] if d.startswith("ray["))


@pytest.fixture(scope="module", autouse=True)
def _crds_present():
    if not (CRDS / "ray.io_rayjobs.yaml").exists():
        message = f"the KubeRay CRDs are not at {CRDS} (set V2S_KUBERAY_CRDS)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def one(name: str) -> dict:
    (doc,) = load_all(KUBERAY / name)
    return doc


def cluster_spec(doc: dict) -> dict:
    return doc["spec"]["rayClusterSpec"] if doc["kind"] == "RayJob" else doc["spec"]


def containers(doc: dict) -> list[dict]:
    return [c for _, template in pod_templates(doc) for c in template["spec"]["containers"]]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml", "settings.yaml"])
def test_the_manifests_validate(name):
    docs = load_all(KUBERAY / name)
    assert docs
    for doc in docs:
        assert problems(doc, CRDS) == []


def test_the_kustomization_builds_valid_objects():
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (kustomize) is not installed")
    built = subprocess.run(
        [kubectl, "kustomize", str(KUBERAY)], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    docs = [d for d in yaml.safe_load_all(built) if d]
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "RayCluster"]
    for doc in docs:
        assert doc["metadata"]["namespace"] == "v2s"
        assert problems(doc, CRDS) == []


def _set(path: str, value):
    """A change to a manifest: `value` at the dotted `path` (list indexes as numbers), or the key removed."""

    def change(doc: dict) -> None:
        *parents, last = path.split(".")
        node = doc
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if value is _REMOVE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value

    return change


_REMOVE = object()
HEAD = "spec.rayClusterSpec.headGroupSpec.template.spec.containers.0"
WORKERS = "spec.rayClusterSpec.workerGroupSpecs.0"
BROKEN = {  # what is broken: (change to rayjob.yaml, words the refusal must contain)
    "misspelled field": (_set("spec.shutdownAfterJobFinish", True), "shutdownAfterJobFinish"),
    "wrong type": (_set("spec.backoffLimit", "two"), "backoffLimit"),
    "required field missing": (_set(f"{WORKERS}.groupName", _REMOVE), "groupName"),
    "enum violated": (_set("spec.rayClusterSpec.authOptions.mode", "tokens"), "tokens"),
    "unknown pod field": (_set(f"{HEAD}.envFrom.0.configMapRef.nam", "v2s-settings"), "nam"),
    "bad quantity": (_set(f"{WORKERS}.template.spec.containers.0.resources.limits.memory", "16GB"), "16GB"),
    "request over limit": (_set(f"{HEAD}.resources.requests.cpu", "3"), "exceeds its limit"),
    "container name": (_set(f"{HEAD}.name", "Ray_Head"), "Ray_Head"),
    "volume missing": (_set(f"{HEAD}.volumeMounts.0.name", "cache"), "no volume named 'cache'"),
    "replicas out of bounds": (_set(f"{WORKERS}.minReplicas", 9), "minReplicas 9 > maxReplicas"),
    "secret in the pod spec": (
        _set(f"{HEAD}.env", [{"name": "GEMINI_API_KEY", "value": "AIza-x"}]),
        "Secret",
    ),
    "secret in runtimeEnvYAML": (
        _set("spec.runtimeEnvYAML", "env_vars:\n  DEEPSEEK_API_KEY: sk-x\n"),
        "dashboard",
    ),
    "not DNS": (_set("metadata.name", "V2S Season 1"), "DNS-1123"),
}


@pytest.mark.parametrize("what", sorted(BROKEN))
def test_a_broken_manifest_fails(what):
    change, words = BROKEN[what]
    doc = copy.deepcopy(one("rayjob.yaml"))
    change(doc)
    found = problems(doc, CRDS)
    assert found, f"{what}: accepted"
    assert any(words in p for p in found), found


def test_a_broken_built_in_object_fails():
    settings = one("settings.yaml")
    settings["data"]["V2S_LEASE_S"] = 900  # ConfigMap values are strings
    assert any("V2S_LEASE_S" in p for p in problems(settings, CRDS))


def test_the_rayjob_runs_on_the_same_cluster_as_the_raycluster():
    job, cluster = one("rayjob.yaml"), one("raycluster.yaml")
    assert job["spec"]["rayClusterSpec"] == cluster["spec"]


@pytest.mark.parametrize("name", ["raycluster.yaml", "rayjob.yaml"])
def test_the_cluster_is_authenticated_sized_and_reads_its_secrets(name):
    doc = one(name)
    spec = cluster_spec(doc)
    assert spec["authOptions"] == {"mode": "token", "secretName": "v2s-ray-token"}
    assert spec["rayVersion"] == RAY_VERSION
    assert spec["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"  # the head runs the driver, no task
    assert spec["enableInTreeAutoscaling"] is True
    (group,) = spec["workerGroupSpecs"]
    assert 1 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    for container in containers(doc):
        assert container["image"] == f"v2s:{VERSION}"
        assert not container.get("env")  # everything through envFrom: the settings and the Secrets
        sources = [next(iter(s.values()))["name"] for s in container["envFrom"]]
        assert sources == ["v2s-settings", "v2s-model-keys", "v2s-database", "v2s-bucket"]
        requests, limits = container["resources"]["requests"], container["resources"]["limits"]
        assert requests == limits  # guaranteed QoS: a Ray node is not evicted first under pressure
    worker = group["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert int(worker["cpu"]) >= 2 and worker["memory"].endswith("Gi") and int(worker["memory"][:-2]) >= 8


def test_the_rayjob_entrypoint_is_a_v2s_job_under_its_job_id():
    spec = one("rayjob.yaml")["spec"]
    args = shlex.split(spec["entrypoint"])
    assert args[:2] == ["v2s", "run"]
    from jobs.cli import app

    params = typer.main.get_command(app).get_command(None, "run").make_context("run", args[2:]).params
    assert params["job_id"] == spec["jobId"]  # the Ray submission id is the v2s job id
    assert params["source"].startswith("s3://") and params["out"].startswith("s3://")
    assert (
        params["database_url"] is None
    )  # from the v2s-database Secret: an entrypoint is shown in the dashboard
    assert "runtimeEnvYAML" not in spec  # the code is in the image; secrets never go there
    assert spec["shutdownAfterJobFinishes"] is True
    assert (
        spec["backoffLimit"] >= 1
        and spec["activeDeadlineSeconds"] > 0
        and spec["ttlSecondsAfterFinished"] > 0
    )


def _created_secrets() -> dict[str, set[str]]:
    """name → keys of every `kubectl create secret generic` in docs/deploy.md."""
    text = (ROOT / "docs" / "deploy.md").read_text().replace("\\\n", " ")
    created = {}
    for command in re.findall(r"kubectl .*?create secret generic [^\n]+", text):
        name = re.search(r"generic (\S+)", command).group(1)
        created[name] = set(re.findall(r"--from-literal=([A-Za-z_][A-Za-z0-9_]*)=", command))
    return created


def test_every_secret_the_manifests_name_is_created_in_docs_deploy_md():
    created = _created_secrets()
    for name in ("raycluster.yaml", "rayjob.yaml"):
        doc = one(name)
        assert created.get(cluster_spec(doc)["authOptions"]["secretName"]) == {"auth_token"}
        for container in containers(doc):
            for source in container["envFrom"]:
                if "secretRef" in source:
                    assert created.get(source["secretRef"]["name"]), source
    assert created["v2s-model-keys"] == {"GEMINI_API_KEY", "DEEPSEEK_API_KEY"}
    assert created["v2s-database"] == {"V2S_DATABASE_URL"}
    assert created["v2s-bucket"] == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_the_secrets_are_the_variables_the_engine_reads(monkeypatch):
    from annotator.settings import ModelSettings
    from jobs.settings import EngineSettings

    monkeypatch.chdir(ROOT / "deploy")  # no .env file here
    for name, value in {
        "GEMINI_API_KEY": "g-key",
        "DEEPSEEK_API_KEY": "d-key",
        "V2S_DATABASE_URL": "postgresql+psycopg://v2s@db/v2s",
    }.items():
        monkeypatch.setenv(name, value)
    models = ModelSettings()
    assert models.gemini_api_key.get_secret_value() == "g-key"
    assert models.openai_api_key.get_secret_value() == "d-key"
    assert EngineSettings().database_url == "postgresql+psycopg://v2s@db/v2s"


def test_the_settings_configmap_holds_settings_the_engine_reads_and_no_secret():
    from annotator.settings import ModelSettings
    from jobs.settings import EngineSettings
    from workers.storage import StorageSettings

    known = {
        f"V2S_{field.upper()}"
        for settings in (ModelSettings, EngineSettings, StorageSettings)
        for field in settings.model_fields
    } | {"V2S_FFMPEG", "AWS_DEFAULT_REGION"}
    data = one("settings.yaml")["data"]
    assert set(data) <= known, set(data) - known
    assert not [k for k in data if SECRET_WORDS.search(k)]


def test_the_image_is_one_non_root_image_with_ffmpeg_and_the_project_version():
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(rf"^ARG RAY_IMAGE=rayproject/ray:{re.escape(RAY_VERSION)}-py311-cpu$", dockerfile, re.M)
    assert re.search(rf"^ARG V2S_VERSION={re.escape(VERSION)}$", dockerfile, re.M)
    assert 'org.opencontainers.image.version="${V2S_VERSION}"' in dockerfile
    assert "apt-get install -y --no-install-recommends ffmpeg" in dockerfile
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users[-1] == "ray"  # root only to install ffmpeg
    assert not re.search(r"^ENTRYPOINT", dockerfile, re.M)  # KubeRay and compose run `ray start` in it
    for folder in ("annotator", "workers", "profiles_db", "prompts", "jobs", "evaluation"):
        assert f"COPY --chown=ray:users {folder} {folder}" in dockerfile


def test_compose_runs_the_same_image_and_keeps_secrets_in_an_env_file():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())["services"]
    head, worker = compose["ray-head"], compose["ray-worker"]
    assert head["image"] == worker["image"] == f"v2s:{VERSION}"
    assert head["build"]["args"]["V2S_VERSION"] == VERSION and "build" not in worker
    assert "--num-cpus=0" in head["command"] and "--head" in head["command"]
    assert "--address=ray-head:6379" in worker["command"]
    for service in compose.values():
        for name, value in (service.get("environment") or {}).items():
            assert not SECRET_WORDS.search(name) or name == "RAY_AUTH_MODE", (name, value)
    assert head["environment"]["RAY_AUTH_MODE"] == "token"
    assert all(s.get("env_file") == ["v2s.env"] for s in (head, worker))
    assert "v2s.env" in (ROOT / "deploy" / ".gitignore").read_text().split()
    example = (ROOT / "deploy" / "v2s.env.example").read_text()
    for line in example.splitlines():  # the template names the secrets and holds none of them
        name, _, value = line.partition("=")
        if line and not line.startswith("#") and SECRET_WORDS.search(name) and "PASSWORD@" not in value:
            assert value == "", line


def test_the_manifests_name_the_project_version():
    for path in sorted(KUBERAY.glob("*.yaml")):
        for doc in load_all(path):
            labels = (doc.get("metadata") or {}).get("labels") or {}
            if "app.kubernetes.io/version" in labels:
                assert labels["app.kubernetes.io/version"] == VERSION, path
    kustomization = yaml.safe_load((KUBERAY / "kustomization.yaml").read_text())
    assert kustomization["images"] == [{"name": "v2s", "newName": "v2s", "newTag": VERSION}]
