"""The Kubernetes manifests under `k8s/` (issue 12, items 4 and 5; issue 23: generated from
the chart), checked offline:

- `k8s/` is `charts/audience-webhooks` rendered with `ci/k8s-values.yaml` by `make k8s`,
  byte for byte: rendered again into a temporary directory, every file must be the same and
  no other file may be there (but the hand-written `*.example.yaml` Secrets), so k8s/ cannot
  drift from the chart. This needs the helm binary `make helm` builds into `.cache/bin/helm`;
- every document validates strictly (unknown fields rejected) against the schema of the
  latest Kubernetes release `kubernetes-validate` ships;
- `kustomization.yaml` names only files that exist, and every manifest but the examples;
- the example Secrets have the names and keys the manifests read;
- every pod template passes the "restricted" Pod Security Standard, checked rule by rule
  (https://kubernetes.io/docs/concepts/security/pod-security-standards/#restricted), and
  the other rules the README claims: read-only root filesystem, resources.
  `test_helm_chart.py` uses the same checker on the chart's other renderings.
"""

from __future__ import annotations

import copy
import difflib
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
HELM = ROOT / ".cache" / "bin" / "helm"
RENDER = ROOT / "scripts" / "render_k8s.py"
CHART = ROOT / "charts" / "audience-webhooks"
K8S_VALUES = CHART / "ci" / "k8s-values.yaml"
SECURED = CHART / "ci" / "secured-values.yaml"
# Where the pods find the service's own secrets (the chart's secrets volume).
SECRET_FILES = Path("/etc/webhooks/secrets")
# Hand-written Secrets to copy and fill in: not chart output, not in the kustomization.
EXAMPLES = {"secret.example.yaml", "kafka-secret.example.yaml"}
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


def render_k8s(into: Path) -> dict[str, str]:
    """k8s/ as `make k8s` would write it now: the same script, run into `into`."""
    if not HELM.is_file():
        pytest.fail(f"no helm binary at {HELM}: run `make helm` (it builds helm v4.3.2 there)")
    done = subprocess.run(
        [sys.executable, str(RENDER), f"--helm={HELM}", f"--values={K8S_VALUES}", str(into)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return generated_files(into)


def generated_files(directory: Path) -> dict[str, str]:
    """The files of `directory` that `make k8s` owns: all but the hand-written examples."""
    return {
        path.name: path.read_text()
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name not in EXAMPLES
    }


def first_difference(name: str, expected: dict[str, str], actual: dict[str, str]) -> str:
    """What differs in one file, as a short unified diff (k8s/ against a fresh rendering)."""
    diff = difflib.unified_diff(
        actual.get(name, "").splitlines(),
        expected.get(name, "").splitlines(),
        f"k8s/{name}" if name in actual else "(missing)",
        f"rendered/{name}" if name in expected else "(not rendered)",
        lineterm="",
    )
    return "\n".join(list(diff)[:40])


def secret_doc(name: str) -> dict[str, Any]:
    """The one Secret of a hand-written example file."""
    docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    (doc,) = docs
    assert doc["kind"] == "Secret", name
    return doc


def mounted_secret(pod: dict[str, Any], container: dict[str, Any], directory: str) -> Any:
    """The `secret` of the volume `container` mounts at `directory`."""
    mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    return volumes[mounts[directory]]["secret"]


def test_k8s_is_the_charts_current_rendering(tmp_path: Path) -> None:
    """k8s/ is generated, never edited: a chart change without `make k8s`, an edit in k8s/,
    or a file the chart no longer renders fails here."""
    expected = render_k8s(tmp_path)
    actual = generated_files(K8S)
    differing = sorted(
        n for n in expected.keys() | actual.keys() if expected.get(n) != actual.get(n)
    )
    assert not differing, (
        f"k8s/ is not the chart's current rendering ({', '.join(differing)}): run `make k8s`\n"
        + first_difference(differing[0], expected, actual)
    )


def test_every_generated_file_says_where_it_comes_from() -> None:
    header = (
        "# Generated by `make k8s` from charts/audience-webhooks with "
        "charts/audience-webhooks/ci/k8s-values.yaml; do not edit.\n"
    )
    files = generated_files(K8S)
    assert "kustomization.yaml" in files
    assert [n for n, text in files.items() if not text.startswith(header)] == []
    examples = [(K8S / n).read_text() for n in EXAMPLES]
    assert not any("Generated by" in text for text in examples), "the examples are hand-written"


def test_k8s_deploys_the_workers_the_api_and_the_topics_job_and_no_secret() -> None:
    """The resources and names the hand-written k8s/ had (users' scripts name them), from
    the fixed release name; the service's secrets stay out of the repository: the Secret is
    the user's (`secret.example.yaml`), never a manifest here."""
    applied = {name.split(":")[1] for name, _ in documents() if name.split(":")[0] not in EXAMPLES}
    assert applied == {
        "ConfigMap/audience-webhooks",
        "Deployment/audience-webhooks-worker",
        "PodDisruptionBudget/audience-webhooks-worker",
        "Deployment/audience-webhooks-api",
        "Service/audience-webhooks-api",
        "Job/audience-webhooks-topics",
    }


@pytest.mark.parametrize(("name", "doc"), documents(), ids=[n for n, _ in documents()])
def test_every_manifest_validates_strictly(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, VERSION, strict=True)


def test_the_kustomization_lists_every_manifest_and_only_existing_files() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    assert all((K8S / name).is_file() for name in listed)
    manifests = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # templates to copy, not applied
    assert manifests - listed == EXAMPLES


@pytest.mark.parametrize(("name", "pod"), pod_specs(), ids=[n for n, _ in pod_specs()])
def test_pod_templates_pass_the_restricted_pod_security_standard(
    name: str, pod: dict[str, Any]
) -> None:
    assert restricted_violations(pod) == []


def test_the_secret_example_is_the_secret_the_pods_read() -> None:
    """The pods read the service's secrets as files (WEBHOOKS_*_FILE) of one Secret the user
    creates from `secret.example.yaml`: the example must have that name and exactly the keys
    read (a renamed key would leave the workers without their key, the API without its
    token)."""
    example = secret_doc("secret.example.yaml")
    read: set[str] = set()
    for name, pod in pod_specs():
        for c in pod["containers"]:
            files = [Path(e["value"]) for e in c.get("env", []) if e["name"].endswith("_FILE")]
            for path in (f for f in files if f.parent == SECRET_FILES):
                secret = mounted_secret(pod, c, str(SECRET_FILES))
                assert secret["secretName"] == example["metadata"]["name"], name
                read.add(path.name)
    assert read == {"secret-key", "api-token"}
    assert set(example["stringData"]) == read


def test_the_kafka_secret_example_is_the_optional_secret_every_pod_mounts() -> None:
    """Every pod (workers, API, topics Job) mounts the Kafka credentials, optional, so a
    PLAINTEXT cluster needs no Secret; the example has that name and every file the chart's
    secured example (SASL_SSL) points at."""
    example = secret_doc("kafka-secret.example.yaml")
    pods = pod_specs()
    assert len(pods) == 3
    for name, pod in pods:
        secret = mounted_secret(pod, pod["containers"][0], "/etc/webhooks/kafka")
        assert secret["secretName"] == example["metadata"]["name"], name
        assert secret["optional"] is True, name
    settings = yaml.safe_load(SECURED.read_text())["settings"]
    files = {
        Path(value).name
        for key, value in settings.items()
        if key.endswith("_FILE") and value.startswith("/etc/webhooks/kafka/")
    }
    assert files
    assert files <= set(example["stringData"])


def test_the_topics_job_deletes_itself_once_finished() -> None:
    """With kubectl the Job's Helm hook annotations do nothing. A finished Job that stayed
    would make the next `kubectl apply -k k8s/` with a new image fail (a Job's pod template
    cannot change); deleted once finished, it is created, and run, again."""
    (job,) = (doc for _, doc in documents() if doc["kind"] == "Job")
    assert job["spec"].get("ttlSecondsAfterFinished") is not None
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["topics", "create"]


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
