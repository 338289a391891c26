"""Offline checks of Kubernetes manifests: the schema a Kubernetes API server applies to a custom resource (the
CRD's openAPIV3Schema, with unknown fields refused as `kubectl apply --validate=strict` and server-side field
validation do), Kubernetes' own schemas of the built-in kinds (kubernetes-validate, strict), and the API
server's rules that no schema states (names, quantities, requests within limits, port names), plus this
project's rule that no secret is ever written into a manifest.

`problems(doc, crds)` lists what is wrong with one manifest; an empty list means it would be accepted.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

KUBERNETES_VERSION = "1.31"  # the oldest Kubernetes the manifests are meant for (KubeRay 1.5 supports it)
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label: container, port, group names
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
PORT_NAME = re.compile(r"^(?=.*[a-z])[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # IANA_SVC_NAME, at most 15 characters
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eE][-+]?[0-9]+|[numkMGTPE]i?|Ki|)$")
SECRET_WORDS = re.compile(r"KEY|SECRET|TOKEN|PASSWORD|CREDENTIAL|DATABASE_URL", re.IGNORECASE)
_SCALE = {"": 1, "n": 1e-9, "u": 1e-6, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15,
          "E": 1e18, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}  # fmt: skip


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


@cache
def _crd_schema(path: Path, version: str) -> dict:
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 1-2 MB of YAML
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    return strict(served[version]["schema"]["openAPIV3Schema"])


def crd_schema(crds: Path, kind: str, api_version: str) -> dict | None:
    group, _, version = api_version.partition("/")
    path = crds / f"{group}_{kind.lower()}s.yaml"
    return _crd_schema(path, version) if path.exists() else None


def strict(schema: dict) -> dict:
    """The schema with unknown fields refused wherever the API server would prune them (every object that lists
    its properties and does not say x-kubernetes-preserve-unknown-fields)."""
    schema = copy.deepcopy(schema)

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def pod_templates(doc: dict) -> Iterator[tuple[str, dict]]:
    """(path, pod template) of every Ray pod a RayCluster or RayJob describes."""
    spec = doc.get("spec") or {}
    cluster, prefix = spec, "spec"
    if doc.get("kind") == "RayJob":
        cluster, prefix = spec.get("rayClusterSpec") or {}, "spec.rayClusterSpec"
        if "submitterPodTemplate" in spec:
            yield "spec.submitterPodTemplate", spec["submitterPodTemplate"]
    if isinstance(cluster.get("headGroupSpec"), dict) and "template" in cluster["headGroupSpec"]:
        yield f"{prefix}.headGroupSpec.template", cluster["headGroupSpec"]["template"]
    for i, group in enumerate(cluster.get("workerGroupSpecs") or []):
        if isinstance(group, dict) and "template" in group:
            yield f"{prefix}.workerGroupSpecs[{i}].template", group["template"]


def quantity(text: object) -> float | None:
    match = QUANTITY.match(str(text))
    if not match:
        return None
    number, suffix = match.groups()
    if suffix[:1] in "eE" and suffix:
        return float(number + suffix)
    return float(number) * _SCALE[suffix]


def _schema_errors(schema: dict, doc: dict, where: str) -> list[str]:
    validator = jsonschema.Draft4Validator(schema)
    return [
        f"{where}{'.'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


def _builtin_errors(doc: dict, where: str) -> list[str]:
    try:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [f"{where}{'.'.join(str(p) for p in error.path)}: {error.message}"]
    except kubernetes_validate.SchemaNotFoundError as error:
        return [f"{where}: {error.message}"]
    return []


def _pod_rules(path: str, template: dict) -> list[str]:
    """The API server's pod rules that its schema does not state."""
    found = []
    spec = template.get("spec") or {}
    containers = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    names = [c.get("name") for c in containers]
    if len(names) != len(set(names)):
        found.append(f"{path}.spec: container names repeat: {names}")
    if spec.get("restartPolicy", "Always") not in ("Always", "OnFailure", "Never"):
        found.append(
            f"{path}.spec.restartPolicy: {spec['restartPolicy']!r} is not Always, OnFailure or Never"
        )
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    for i, container in enumerate(containers):
        where = f"{path}.spec.containers[{container.get('name', i)}]"
        if not DNS_LABEL.match(str(container.get("name", ""))) or len(str(container.get("name"))) > 63:
            found.append(f"{where}.name: {container.get('name')!r} is not a DNS-1123 label")
        for port in container.get("ports") or []:
            name = port.get("name")
            if name is not None and (not PORT_NAME.match(str(name)) or len(str(name)) > 15):
                found.append(f"{where}.ports: {name!r} is not a valid port name (IANA_SVC_NAME)")
        for env in container.get("env") or []:
            if not ENV_NAME.match(str(env.get("name", ""))):
                found.append(f"{where}.env: {env.get('name')!r} is not a valid variable name")
        for mount in container.get("volumeMounts") or []:
            if mount.get("name") not in volumes:
                found.append(f"{where}.volumeMounts: no volume named {mount.get('name')!r}")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource, value in (resources.get(kind) or {}).items():
                if quantity(value) is None:
                    found.append(f"{where}.resources.{kind}.{resource}: {value!r} is not a quantity")
        for resource, request in (resources.get("requests") or {}).items():
            limit = (resources.get("limits") or {}).get(resource)
            bounded = limit is not None and None not in (quantity(request), quantity(limit))
            if bounded and quantity(request) > quantity(limit):
                found.append(f"{where}.resources: the {resource} request {request} exceeds its limit {limit}")
    return found


def _secret_rules(doc: dict) -> list[str]:
    """No secret value in a manifest: secret-looking variables come from Secrets, never as literal values, and
    a RayJob's runtimeEnvYAML (shown in Ray's dashboard) sets no such variable at all."""
    found = []
    for path, template in pod_templates(doc):
        for container in (template.get("spec") or {}).get("containers") or []:
            for env in container.get("env") or []:
                if SECRET_WORDS.search(str(env.get("name"))) and "value" in env:
                    found.append(f"{path}: {env['name']} is written in the manifest; take it from a Secret")
    runtime_env = (doc.get("spec") or {}).get("runtimeEnvYAML")
    if doc.get("kind") == "RayJob" and runtime_env:
        env_vars = (yaml.safe_load(runtime_env) or {}).get("env_vars") or {}
        for name in env_vars:
            if SECRET_WORDS.search(name):
                found.append(f"spec.runtimeEnvYAML: {name} would be shown in the Ray dashboard")
    if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
        found.append(f"Secret {doc['metadata'].get('name')}: secret values do not belong in the repository")
    return found


def problems(doc: dict, crds: Path) -> list[str]:
    """Everything a Kubernetes API server (with KubeRay's CRDs installed) would refuse in `doc`, and secrets."""
    if not isinstance(doc, dict) or not {"apiVersion", "kind", "metadata"} <= set(doc):
        return ["not a Kubernetes object: apiVersion, kind and metadata are required"]
    found = []
    name = str((doc.get("metadata") or {}).get("name", ""))
    if not DNS_SUBDOMAIN.match(name) or len(name) > 253:
        found.append(f"metadata.name: {name!r} is not a DNS-1123 subdomain")
    if doc["kind"] in ("RayCluster", "RayJob") and len(name) > 63:
        found.append(f"metadata.name: {name!r} is longer than 63 characters (it names Services)")
    if str(doc["apiVersion"]).startswith("ray.io/"):
        schema = crd_schema(crds, doc["kind"], doc["apiVersion"])
        if schema is None:
            return [*found, f"no CRD for {doc['kind']} {doc['apiVersion']} in {crds}"]
        found += _schema_errors(schema, doc, "")
        for path, template in pod_templates(doc):  # the pods as Kubernetes itself checks a PodTemplate
            wrapped = {
                "apiVersion": "v1",
                "kind": "PodTemplate",
                "metadata": {"name": "t"},
                "template": template,
            }
            found += [e.replace("template.", f"{path}.", 1) for e in _builtin_errors(wrapped, "")]
            found += _pod_rules(path, template)
        for i, group in enumerate(_cluster_spec(doc).get("workerGroupSpecs") or []):
            if not DNS_LABEL.match(str(group.get("groupName", ""))):
                found.append(
                    f"workerGroupSpecs[{i}].groupName: {group.get('groupName')!r} is not a DNS-1123 label"
                )
            low, high, replicas = (group.get(k) for k in ("minReplicas", "maxReplicas", "replicas"))
            if isinstance(low, int) and isinstance(high, int) and low > high:
                found.append(f"workerGroupSpecs[{i}]: minReplicas {low} > maxReplicas {high}")
            numbers = all(isinstance(n, int) for n in (low, high, replicas))
            if numbers and not low <= replicas <= high:
                found.append(f"workerGroupSpecs[{i}]: replicas {replicas} outside [{low}, {high}]")
    else:
        found += _builtin_errors(doc, "")
    return found + _secret_rules(doc)


def _cluster_spec(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    return (spec.get("rayClusterSpec") or {}) if doc.get("kind") == "RayJob" else spec
