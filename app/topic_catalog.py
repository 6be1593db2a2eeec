"""The declared topics under `topics/` (name, partitions, cleanup policy, value schema) and
the names of the service's other Kafka things (consumer groups): one home for each name."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.settings import Settings

TOPICS_DIR = Path(__file__).resolve().parent.parent / "topics"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic to create: how many partitions, compacted or not, extra broker configs."""

    name: str
    partitions: int
    cleanup_policy: str
    config: dict[str, str] = field(default_factory=dict)
    description: str = ""
    managed: tuple[str, ...] = ()  # config keys a setting decides, kept in line on existing topics

    def broker_config(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, **self.config}


def load_catalog(settings: Settings, directory: Path = TOPICS_DIR) -> list[TopicSpec]:
    """Every declared topic, with names and partition counts the settings override."""
    specs = []
    for path in sorted(directory.glob("*.json")):
        doc: dict[str, Any] = json.loads(path.read_text())
        if doc.get("pattern"):
            continue  # created per job, not up front
        name = doc["name"]
        if doc.get("setting"):
            name = getattr(settings, doc["setting"])
        elif doc.get("app_id_suffix"):
            name = f"{settings.app_id}{doc['app_id_suffix']}"  # named after the app id
        partitions = int(doc["partitions"])
        if name == settings.input_topic or name == state_changelog_topic(settings):
            partitions = settings.input_partitions  # must stay co-partitioned
        config = {k: str(v) for k, v in doc.get("config", {}).items()}
        managed: tuple[str, ...] = ()
        if doc.get("retention_setting"):
            days = float(getattr(settings, doc["retention_setting"]))
            config["retention.ms"] = str(round(days * 86_400_000))
            managed = ("retention.ms",)
        specs.append(
            TopicSpec(
                name=name,
                partitions=partitions,
                cleanup_policy=doc["cleanup_policy"],
                config=config,
                description=doc.get("description", ""),
                managed=managed,
            )
        )
    return specs


def state_changelog_topic(settings: Settings) -> str:
    """The router's state changelog: `<app id>-user-state-changelog` (the name Faust gave
    it when the state was a Faust table, kept so existing deployments keep their state)."""
    return f"{settings.app_id}-user-state-changelog"


def erasures_topic(settings: Settings) -> str:
    """Erased users by erasure id (`app/domain/erasure.py`): `<app id>-erasures`."""
    return f"{settings.app_id}-erasures"


def delivery_group(settings: Settings, job_id: str) -> str:
    """The consumer group that holds a job's committed queue offsets. It has no members:
    the job's one deliverer (see `app/domain/slots.py`) commits into it directly."""
    return f"{settings.app_id}-delivery-{job_id}"


def delivery_slots_group(settings: Settings) -> str:
    """The group through which worker processes share the delivery slots (which process
    delivers which job). The dot keeps it apart from every job's group: job ids have none."""
    return f"{settings.app_id}-delivery.slots"


def queue_topic_spec(settings: Settings, topic: str) -> TopicSpec:
    """A job's queue: its durable backlog, keyed by user id (`topics/webhook-queue-JOB_ID.json`)."""
    doc = _declared("webhook-queue-JOB_ID.json")
    return TopicSpec(
        name=topic,
        partitions=settings.queue_partitions,
        cleanup_policy=doc["cleanup_policy"],
        config={k: str(v) for k, v in doc.get("config", {}).items()},
        description="per-job queue",
    )


def enrichment_topic_spec(settings: Settings, topic: str) -> TopicSpec:
    """An enrichment job's output stream, created when missing; declared config of
    `topics/webhook_enrichment.json` whatever its name."""
    doc = _declared("webhook_enrichment.json")
    return TopicSpec(
        name=topic,
        partitions=settings.input_partitions,
        cleanup_policy=doc["cleanup_policy"],
        config={k: str(v) for k, v in doc.get("config", {}).items()},
        description="enrichment answers",
    )


def _declared(filename: str, directory: Path = TOPICS_DIR) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((directory / filename).read_text())
    return doc
