"""The Helm chart `charts/audience-webhooks` (issue 23, item 1), checked offline with the
helm binary `make helm` builds into `.cache/bin/helm`:

- `helm lint` passes, with the default values, `ci/secured-values.yaml` and
  `ci/k8s-values.yaml` (the values `make k8s` renders k8s/ with);
- rendered with the default values, the secured example, and every optional resource on
  (ServiceMonitor, KEDA ScaledObject, Grafana dashboard), each document validates strictly
  against the Kubernetes schema (as `test_manifests.py` does for `k8s/`); the two custom
  resources, which `kubernetes-validate` does not know, are checked field by field;
- every pod template passes the "restricted" Pod Security Standard (`test_manifests`'s
  checker), secrets reach the pods as read-only files, never as environment values;
- `values.schema.json` makes a wrong value fail `helm template`, naming it;
- `helm show values` prints `values.yaml` (its comments are the chart's documentation), and
  the chart's dashboard is the repository's dashboard, byte for byte.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.unit.test_manifests import VERSION, has_pods, restricted_violations

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "audience-webhooks"
HELM = ROOT / ".cache" / "bin" / "helm"
RELEASE = "webhooks"
NAMESPACE = "audience"
FULLNAME = "webhooks-audience-webhooks"
SECURED = CHART / "ci" / "secured-values.yaml"
K8S_VALUES = CHART / "ci" / "k8s-values.yaml"
# Every optional resource on, with the secrets given as values (the chart creates the Secret).
EVERYTHING = [
    "--set=api.enabled=true",
    "--set=api.podDisruptionBudget.enabled=true",
    "--set=secrets.secretKey=awk1:not-a-real-key",
    "--set=secrets.secretKeyPrevious=awk1:an-older-key",
    "--set=secrets.apiToken=not-a-real-token",
    "--set=kafkaCredentials.existingSecret=audience-webhooks-kafka",
    "--set=kafkaCredentials.optional=true",
    "--set=topicsJob.ttlSecondsAfterFinished=60",
    "--set=serviceMonitor.enabled=true",
    "--set=serviceMonitor.labels.release=prometheus",
    "--set=keda.enabled=true",
    "--set=keda.prometheus.enabled=true",
    "--set=keda.prometheus.serverAddress=http://prometheus.monitoring:9090",
    "--set=grafanaDashboard.enabled=true",
    "--set=otel.OTEL_EXPORTER_OTLP_ENDPOINT=http://otel-collector.observability:4318",
    "--set=otel.OTEL_TRACES_SAMPLER_ARG=0.25",
]
# The secured example with KEDA authenticating from the workers' own Kafka Secret.
SECURED_KEDA = [
    f"--values={SECURED}",
    "--set=keda.enabled=true",
    "--set=keda.kafka.triggerAuthentication=true",
]
VARIANTS: dict[str, list[str]] = {
    "defaults": [],
    "secured": [f"--values={SECURED}"],
    "secured-keda": SECURED_KEDA,
    "everything": EVERYTHING,
}
# Custom resources kubernetes-validate has no schema for: checked by hand below.
CUSTOM = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not HELM.is_file():
        pytest.fail(f"no helm binary at {HELM}: run `make helm` (it builds helm v4.3.2 there)")
    return subprocess.run(
        [str(HELM), *args], cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )


def render(*args: str) -> list[dict[str, Any]]:
    done = helm("template", RELEASE, str(CHART), f"--namespace={NAMESPACE}", *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_name(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{d['kind']}/{d['metadata']['name']}": d for d in docs}


def container(doc: dict[str, Any]) -> dict[str, Any]:
    first: dict[str, Any] = doc["spec"]["template"]["spec"]["containers"][0]
    return first


@pytest.fixture(scope="module")
def everything() -> dict[str, dict[str, Any]]:
    return by_name(render(*EVERYTHING))


@pytest.mark.parametrize(
    "args", [[], [f"--values={SECURED}"], [f"--values={K8S_VALUES}"], SECURED_KEDA, EVERYTHING]
)
def test_helm_lint_passes(args: list[str]) -> None:
    done = helm("lint", "--strict", str(CHART), *args)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_rendered_document_validates_strictly(variant: str) -> None:
    docs = render(*VARIANTS[variant])
    kinds = {d["kind"] for d in docs}
    assert {"ConfigMap", "Deployment", "PodDisruptionBudget", "Job"} <= kinds
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM:
            continue
        try:
            kubernetes_validate.validate(doc, VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{variant}: {doc['kind']}/{doc['metadata']['name']}: {exc}")


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_pod_template_passes_the_restricted_pod_security_standard(variant: str) -> None:
    pods = [d for d in render(*VARIANTS[variant]) if has_pods(d)]
    assert len(pods) >= 2
    for doc in pods:
        pod = doc["spec"]["template"]["spec"]
        assert restricted_violations(pod) == [], f"{variant}: {doc['metadata']['name']}"
        assert pod["automountServiceAccountToken"] is False


def test_the_custom_resources_have_their_required_fields(
    everything: dict[str, dict[str, Any]],
) -> None:
    monitor = everything[f"ServiceMonitor/{FULLNAME}-worker"]
    assert (monitor["apiVersion"], monitor["kind"]) in CUSTOM
    metrics = everything[f"Service/{FULLNAME}-metrics"]
    assert metrics["spec"]["clusterIP"] == "None"
    labels = metrics["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    ports = {p["name"]: p for p in metrics["spec"]["ports"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in ports and endpoint["path"] == "/metrics"
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [NAMESPACE]
    worker = everything[f"Deployment/{FULLNAME}-worker"]
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    assert metrics["spec"]["selector"].items() <= pod_labels.items()
    assert ports[endpoint["port"]]["port"] == container(worker)["ports"][0]["containerPort"]

    scaled = everything[f"ScaledObject/{FULLNAME}-worker"]
    assert (scaled["apiVersion"], scaled["kind"]) in CUSTOM
    spec = scaled["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": f"{FULLNAME}-worker",
    }
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    triggers = {t["type"]: t["metadata"] for t in spec["triggers"]}
    assert triggers["kafka"] == {
        "bootstrapServers": "kafka-bootstrap.kafka.svc:9092",
        "consumerGroup": "audience-webhooks-router",
        "topic": "audience-events",
        "lagThreshold": "1000",
        "offsetResetPolicy": "earliest",
    }
    assert triggers["prometheus"]["query"] == "sum(webhooks_job_backlog_records)"
    assert triggers["prometheus"]["serverAddress"] == "http://prometheus.monitoring:9090"
    assert int(triggers["prometheus"]["threshold"]) > 0
    # KEDA owns the replica count of the Deployment it scales.
    assert "replicas" not in worker["spec"]


def test_keda_follows_the_router_group_of_the_app_id_and_the_input_topic() -> None:
    docs = by_name(
        render(
            "--set=keda.enabled=true",
            "--set=settings.WEBHOOKS_APP_ID=tenant-a",
            "--set=settings.WEBHOOKS_INPUT_TOPIC=tenant-a-events",
            "--set=keda.kafka.authenticationRef=kafka-scram",
        )
    )
    (trigger,) = docs[f"ScaledObject/{FULLNAME}-worker"]["spec"]["triggers"]
    assert trigger["metadata"]["consumerGroup"] == "tenant-a-router"
    assert trigger["metadata"]["topic"] == "tenant-a-events"
    assert trigger["authenticationRef"] == {"name": "kafka-scram"}


def kafka_trigger(docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    triggers = docs[f"ScaledObject/{FULLNAME}-worker"]["spec"]["triggers"]
    found: dict[str, Any] = next(t for t in triggers if t["type"] == "kafka")
    return found


def test_keda_authenticates_with_the_workers_kafka_secret() -> None:
    """SASL_SSL + SCRAM-SHA-512 (the secured example): KEDA reads the same Secret keys the
    workers read as files, and the trigger says how to use them."""
    docs = by_name(render(*SECURED_KEDA))
    auth = docs[f"TriggerAuthentication/{FULLNAME}-kafka"]
    assert (auth["apiVersion"], auth["kind"]) in CUSTOM
    assert set(auth["spec"]) == {"secretTargetRef"}
    refs = {r["parameter"]: r for r in auth["spec"]["secretTargetRef"]}
    assert {p: (r["name"], r["key"]) for p, r in refs.items()} == {
        "username": ("audience-webhooks-kafka", "sasl-username"),
        "password": ("audience-webhooks-kafka", "sasl-password"),
        "ca": ("audience-webhooks-kafka", "ca.pem"),
    }
    assert all(set(r) == {"parameter", "name", "key"} for r in refs.values())
    worker = docs[f"Deployment/{FULLNAME}-worker"]
    volumes = worker["spec"]["template"]["spec"]["volumes"]
    kafka = next(v for v in volumes if v["name"] == "kafka-credentials")
    assert kafka["secret"]["secretName"] == "audience-webhooks-kafka"  # the workers' Secret
    trigger = kafka_trigger(docs)
    assert trigger["metadata"]["sasl"] == "scram_sha512"
    assert trigger["metadata"]["tls"] == "enable"
    assert trigger["authenticationRef"] == {"name": f"{FULLNAME}-kafka"}


def test_keda_authenticates_with_a_client_certificate() -> None:
    docs = by_name(
        render(
            "--set=keda.enabled=true",
            "--set=keda.kafka.triggerAuthentication=true",
            "--set=kafkaCredentials.existingSecret=kafka-mtls",
            "--set=settings.WEBHOOKS_KAFKA_SECURITY_PROTOCOL=SSL",
            "--set=settings.WEBHOOKS_KAFKA_SSL_CA_FILE=/etc/webhooks/kafka/ca.pem",
            "--set=settings.WEBHOOKS_KAFKA_SSL_CERT_FILE=/etc/webhooks/kafka/client.pem",
            "--set=settings.WEBHOOKS_KAFKA_SSL_KEY_FILE=/etc/webhooks/kafka/client.key",
        )
    )
    refs = docs[f"TriggerAuthentication/{FULLNAME}-kafka"]["spec"]["secretTargetRef"]
    assert {r["parameter"]: r["key"] for r in refs} == {
        "ca": "ca.pem",
        "cert": "client.pem",
        "key": "client.key",
    }
    metadata = kafka_trigger(docs)["metadata"]
    assert metadata["tls"] == "enable" and "sasl" not in metadata


def test_no_trigger_authentication_unless_asked() -> None:
    docs = by_name(render(f"--values={SECURED}", "--set=keda.enabled=true"))
    assert not [name for name in docs if name.startswith("TriggerAuthentication/")]
    assert "sasl" not in kafka_trigger(docs)["metadata"]


def test_the_worker_is_probed_scraped_spread_and_protected() -> None:
    docs = by_name(render())
    worker = docs[f"Deployment/{FULLNAME}-worker"]
    pod = worker["spec"]["template"]
    c = container(worker)
    assert worker["spec"]["replicas"] == 2
    assert c["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    port = c["ports"][0]["containerPort"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    zones = {t["topologyKey"] for t in pod["spec"]["topologySpreadConstraints"]}
    assert zones == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    pdb = docs[f"PodDisruptionBudget/{FULLNAME}-worker"]
    assert pdb["spec"]["selector"] == worker["spec"]["selector"]
    assert worker["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    config = docs[f"ConfigMap/{FULLNAME}"]["data"]
    assert config["WEBHOOKS_HTTP_PORT"] == str(port)
    assert config["WEBHOOKS_DATA_DIR"] in {m["mountPath"] for m in c["volumeMounts"]}
    assert c["envFrom"] == [{"configMapRef": {"name": FULLNAME}}]


def test_secrets_reach_the_pods_as_read_only_files(everything: dict[str, dict[str, Any]]) -> None:
    secret = everything[f"Secret/{FULLNAME}"]
    assert set(secret["data"]) == {"secret-key", "secret-key-previous", "api-token"}
    config = everything[f"ConfigMap/{FULLNAME}"]["data"]
    assert not any(name in config for name in ("WEBHOOKS_SECRET_KEY", "WEBHOOKS_API_TOKEN")), (
        "a secret in the ConfigMap"
    )
    expected = {
        "worker": {"WEBHOOKS_SECRET_KEY_FILE", "WEBHOOKS_SECRET_KEY_PREVIOUS_FILE"},
        "api": {
            "WEBHOOKS_SECRET_KEY_FILE",
            "WEBHOOKS_SECRET_KEY_PREVIOUS_FILE",
            "WEBHOOKS_API_TOKEN_FILE",
        },
    }
    for component, names in expected.items():
        deployment = everything[f"Deployment/{FULLNAME}-{component}"]
        c = container(deployment)
        env = {e["name"]: e["value"] for e in c["env"] if e["name"].startswith("WEBHOOKS_")}
        assert set(env) == names, component
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        for path in env.values():
            mount = mounts[str(Path(path).parent)]
            assert mount["readOnly"] is True
            volume = volumes[mount["name"]]
            assert volume["secret"]["secretName"] == FULLNAME
            assert Path(path).name in secret["data"]
        kafka = mounts["/etc/webhooks/kafka"]
        assert kafka["readOnly"] is True
        assert volumes[kafka["name"]]["secret"]["secretName"] == "audience-webhooks-kafka"


def test_otel_variables_reach_the_workers_only(everything: dict[str, dict[str, Any]]) -> None:
    """Traces are made by the workers: the OTEL_* values are their env, as strings; the API
    and the topics Job do not get them, and by default nobody does (traces off)."""
    worker_env = container(everything[f"Deployment/{FULLNAME}-worker"])["env"]
    otel = {e["name"]: e["value"] for e in worker_env if e["name"].startswith("OTEL_")}
    assert otel == {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
        "OTEL_TRACES_SAMPLER_ARG": "0.25",
    }
    assert any(e["name"] == "WEBHOOKS_SECRET_KEY_FILE" for e in worker_env)
    for name in (f"Deployment/{FULLNAME}-api", f"Job/{FULLNAME}-topics"):
        env = container(everything[name]).get("env", [])
        assert not [e for e in env if e["name"].startswith("OTEL_")], name
    defaults = by_name(render())
    env = container(defaults[f"Deployment/{FULLNAME}-worker"]).get("env", [])
    assert not [e for e in env if e["name"].startswith("OTEL_")]


def test_the_secured_example_mounts_the_kafka_credentials_it_names() -> None:
    docs = by_name(render(f"--values={SECURED}"))
    assert not any(kind.startswith("Secret/") for kind in docs), "existingSecret: none created"
    config = docs[f"ConfigMap/{FULLNAME}"]["data"]
    assert config["WEBHOOKS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert config["WEBHOOKS_KAFKA_SASL_MECHANISM"].startswith("SCRAM-")
    files = [v for k, v in config.items() if k.endswith("_FILE")]
    assert files and all(f.startswith("/etc/webhooks/kafka/") for f in files)
    for doc in docs.values():
        if not has_pods(doc):
            continue
        pod = doc["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
        kafka = mounts["/etc/webhooks/kafka"]
        assert kafka["readOnly"] is True, doc["metadata"]["name"]
        assert volumes[kafka["name"]]["secret"]["secretName"] == "audience-webhooks-kafka"
    api = container(docs[f"Deployment/{FULLNAME}-api"])
    token = {e["name"]: e["value"] for e in api["env"]}["WEBHOOKS_API_TOKEN_FILE"]
    assert token == "/etc/webhooks/secrets/api-token"


def test_the_topics_job_runs_as_a_hook_before_install_and_upgrade() -> None:
    docs = by_name(render(f"--values={SECURED}"))
    job = docs[f"Job/{FULLNAME}-topics"]
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    # Helm deletes the hook once it succeeded; a TTL (topicsJob.ttlSecondsAfterFinished, for
    # kubectl) is off by default, and the Kafka credentials, when named, must exist.
    assert "ttlSecondsAfterFinished" not in job["spec"]
    kafka = job["spec"]["template"]["spec"]["volumes"][0]["secret"]
    assert kafka["secretName"] == "audience-webhooks-kafka" and "optional" not in kafka
    c = container(job)
    assert c["args"] == ["topics", "create"]
    # At pre-install the release's ConfigMap does not exist yet: the settings come inline.
    assert "envFrom" not in c
    env = {e["name"]: e["value"] for e in c["env"]}
    config = docs[f"ConfigMap/{FULLNAME}"]["data"]
    assert env.items() <= config.items()
    assert env["WEBHOOKS_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"


def test_the_dashboard_config_map_holds_the_dashboard(
    everything: dict[str, dict[str, Any]],
) -> None:
    dashboard = everything[f"ConfigMap/{FULLNAME}-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    (text,) = dashboard["data"].values()
    repository = ROOT / "deploy" / "grafana" / "audience-webhooks.json"
    assert json.loads(text) == json.loads(repository.read_text())


def test_the_chart_dashboard_is_a_byte_identical_copy_of_the_repository_one() -> None:
    copy = CHART / "dashboards" / "audience-webhooks.json"
    original = ROOT / "deploy" / "grafana" / "audience-webhooks.json"
    assert copy.read_bytes() == original.read_bytes(), (
        f"cp {original.relative_to(ROOT)} {copy.relative_to(ROOT)}"
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--set=worker.replicas=-1"], "/worker/replicas"),
        (["--set=worker.replica=2"], "'replica'"),
        (["--set=keda.kafka.lagThreshold=0"], "/keda/kafka/lagThreshold"),
        (["--set=keda.minReplicas=0"], "/keda/minReplicas"),
        (["--set=topicsJob.ttlSecondsAfterFinished=-1"], "/topicsJob/ttlSecondsAfterFinished"),
        (["--set=kafkaCredentials.optional=yes"], "/kafkaCredentials/optional"),
        (["--set=image.pullPolicy=Sometimes"], "/image/pullPolicy"),
        (["--set=worker.port=not-a-port"], "/worker/port"),
        (["--set=settings.WEBHOOKS_API_TOKEN=in-the-config-map"], "/settings/WEBHOOKS_API_TOKEN"),
        (["--set=settings.WEBHOOKS_HTTP_PORT=9000"], "/settings/WEBHOOKS_HTTP_PORT"),
        (["--set=settings.KAFKA_BOOTSTRAP=x:9092"], "'KAFKA_BOOTSTRAP'"),
        (["--set=api.enabled=true"], "secrets.apiToken"),
        (["--set=otel.OTEL_EXPORTER_OTLP_HEADERS=x-api-key=k"], "/otel/OTEL_EXPORTER_OTLP_HEADERS"),
        (["--set=otel.WEBHOOKS_INPUT_TOPIC=x"], "'WEBHOOKS_INPUT_TOPIC'"),
        (["--set=keda.kafka.triggerAuthentication=1"], "/keda/kafka/triggerAuthentication"),
        (
            ["--set=keda.enabled=true", "--set=keda.kafka.triggerAuthentication=true"],
            "needs kafkaCredentials.existingSecret",
        ),
        (
            [*SECURED_KEDA, "--set=keda.kafka.authenticationRef=mine"],
            "triggerAuthentication and keda.kafka.authenticationRef",
        ),
        (
            [
                *SECURED_KEDA,
                "--set=settings.WEBHOOKS_KAFKA_SECURITY_PROTOCOL=PLAINTEXT",
            ],
            "is PLAINTEXT, there is nothing to authenticate",
        ),
        (
            [*SECURED_KEDA, "--set=settings.WEBHOOKS_KAFKA_SASL_MECHANISM=OAUTHBEARER"],
            "WEBHOOKS_KAFKA_SASL_MECHANISM=OAUTHBEARER is not one KEDA",
        ),
        (
            [*SECURED_KEDA, "--set=settings.WEBHOOKS_KAFKA_SASL_USERNAME_FILE="],
            "needs settings.WEBHOOKS_KAFKA_SASL_USERNAME_FILE",
        ),
        (
            [*SECURED_KEDA, "--set=settings.WEBHOOKS_KAFKA_SSL_CA_FILE=/etc/ssl/ca.pem"],
            "settings.WEBHOOKS_KAFKA_SSL_CA_FILE=/etc/ssl/ca.pem: keda.kafka",
        ),
        (["--set=keda.enabled=true", "--set=keda.prometheus.enabled=true"], "serverAddress"),
        (["--set=keda.enabled=true", "--set=keda.maxReplicas=1"], "keda.maxReplicas"),
    ],
)
def test_a_wrong_value_fails_helm_template_naming_it(args: list[str], named: str) -> None:
    done = helm("template", RELEASE, str(CHART), *args)
    assert done.returncode != 0, f"{args} rendered"
    assert named in done.stderr, done.stderr


def test_helm_show_values_prints_the_documented_values_file() -> None:
    done = helm("show", "values", str(CHART))
    assert done.returncode == 0, done.stderr
    text = (CHART / "values.yaml").read_text()
    assert done.stdout.rstrip("\n") == text.rstrip("\n")  # helm adds a newline
    # Every value is documented: a key line follows a comment, or its parent key or a
    # sibling key (a group of values under one comment); a blank line or the end of a nested
    # block before a key needs a new comment.
    lines = text.splitlines()
    undocumented = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "- ")):
            continue
        above = lines[i - 1] if i else ""
        comment = above.strip().startswith("#")
        sibling = bool(above.strip()) and indent(above) == indent(line)
        parent = above.rstrip().endswith(":") and indent(above) < indent(line)
        if not (comment or sibling or parent):
            undocumented.append(f"values.yaml:{i + 1}: {line}")
    assert undocumented == []


def indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def test_the_schema_is_draft_07_and_closed_at_every_level() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    stack = [("", schema)]
    while stack:
        where, node = stack.pop()
        if "properties" in node:
            assert node.get("additionalProperties") is False, where or "top level"
            stack.extend((f"{where}/{k}", v) for k, v in node["properties"].items())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values) <= set(schema["properties"])
