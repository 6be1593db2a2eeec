"""The Kubernetes manifests under `k8s/` (issue 12, items 4 and 5), checked offline:

- every document validates strictly (unknown fields rejected) against the schema of the
  latest Kubernetes release `kubernetes-validate` ships;
- `kustomization.yaml` names only files that exist, and every manifest is listed;
- every pod template passes the "restricted" Pod Security Standard, checked rule by rule
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted), and
  the other rules the README claims: read-only root filesystem, resources, probes.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parents[2] / "k8s"
VERSION = kubernetes_validate.latest_version()
ALLOWED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                out.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return out


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    return [(name, doc["spec"]["template"]["spec"]) for name, doc in documents() if has_pods(doc)]


def has_pods(doc: dict[str, Any]) -> bool:
    return doc["kind"] in ("Deployment", "Job", "StatefulSet", "DaemonSet")


def restricted_violations(pod: dict[str, Any]) -> list[str]:
    """What keeps a pod spec from the "restricted" Pod Security Standard (and from our own
    rules: read-only root, resources)."""
    problems = []
    pod_sc = pod.get("securityContext", {})
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{flag} is set")
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        if not kinds <= ALLOWED_VOLUMES:
            problems.append(f"volume {volume['name']}: type {sorted(kinds)} not allowed")
    containers = pod.get("containers", []) + pod.get("initContainers", [])
    for c in containers:
        sc = c.get("securityContext", {})
        name = c["name"]
        if sc.get("privileged"):
            problems.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation must be false")
        caps = sc.get("capabilities", {})
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities must drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot must be true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            problems.append(f"{name}: runs as user 0")
        seccomp = sc.get("seccompProfile", pod_sc.get("seccompProfile", {}))
        if seccomp.get("type") not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile must be RuntimeDefault or Localhost")
        if not sc.get("readOnlyRootFilesystem"):
            problems.append(f"{name}: readOnlyRootFilesystem must be true")
        resources = c.get("resources", {})
        if not resources.get("requests") or not resources.get("limits", {}).get("memory"):
            problems.append(f"{name}: needs resource requests and a memory limit")
    return problems


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_every_manifest_validates_strictly(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_and_only_existing_files() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed)
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # templates to copy, not applied
    assert manifests - listed == {"secret.example.yaml", "kafka-secret.example.yaml"}


@pytest.mark.parametrize(("name", "pod"), pod_specs(), ids=[n for n, _ in pod_specs()])
def test_pod_templates_pass_the_restricted_pod_security_standard(
    name: str, pod: dict[str, Any]
) -> None:
    assert restricted_violations(pod) == []


def test_the_worker_is_probed_scraped_spread_and_protected() -> None:
    docs = dict(documents())
    worker = docs["worker-deployment.yaml:Deployment/audience-webhooks-worker"]
    pod = worker["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    assert pod["spec"]["topologySpreadConstraints"]
    pdb = docs["worker-deployment.yaml:PodDisruptionBudget/audience-webhooks-worker"]
    assert pdb["spec"]["selector"] == worker["spec"]["selector"]
    config = docs["configmap.yaml:ConfigMap/audience-webhooks"]["data"]
    port = container["ports"][0]["containerPort"]
    assert config["WEBHOOKS_HTTP_PORT"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)


def test_the_checker_catches_each_broken_rule() -> None:
    """The rules above can fail: break one thing at a time in a copy of the worker's pod."""
    pod = dict(pod_specs())["worker-deployment.yaml:Deployment/audience-webhooks-worker"]
    breaks: dict[str, Callable[[dict[str, Any]], object]] = {
        "hostNetwork": lambda p: p.__setitem__("hostNetwork", True),
        "allowPrivilegeEscalation": lambda p: p["containers"][0]["securityContext"].pop(
            "allowPrivilegeEscalation"
        ),
        "drop ALL": lambda p: p["containers"][0]["securityContext"].pop("capabilities"),
        "runAsNonRoot": lambda p: (
            p["securityContext"].pop("runAsNonRoot"),
            p["containers"][0]["securityContext"].pop("runAsNonRoot"),
        ),
        "seccompProfile": lambda p: (
            p["securityContext"].pop("seccompProfile"),
            p["containers"][0]["securityContext"].pop("seccompProfile"),
        ),
        "readOnlyRootFilesystem": lambda p: p["containers"][0]["securityContext"].pop(
            "readOnlyRootFilesystem"
        ),
        "volume": lambda p: p["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    }
    for rule, breaker in breaks.items():
        broken = copy.deepcopy(pod)
        breaker(broken)
        assert restricted_violations(broken), f"{rule} broken but not caught"
    with pytest.raises(kubernetes_validate.ValidationError):
        worker = dict(documents())["worker-deployment.yaml:Deployment/audience-webhooks-worker"]
        bad = copy.deepcopy(worker)
        bad["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}  # a typo
        kubernetes_validate.validate(bad, VERSION, strict=True)
