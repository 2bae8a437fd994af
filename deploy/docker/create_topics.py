#!/usr/bin/env python3
"""One-shot topic initialiser (installed in the image as ``labelflow-create-topics``).

    labelflow-create-topics --replication-factor 3 [--topic-config retention.ms=604800000] [--set ...]

Creates every topic a split deployment uses (documents, labels, embedded, predictions, drift,
dead letters and routing topics), named and sized by the same settings and ``LABELFLOW_*`` environment
as the workers, with the replication factor a real cluster needs (workers that create topics
themselves create them with one replica, which is right only for a one-broker cluster; deployments run
them with ``LABELFLOW_CREATE_TOPICS=false``). Existing topics are left alone; their partition counts
are checked: the documents, labels and embedded topics must have the same count, because a document
and its feedback have to reach the same learner.

Exit status: 0 when every topic exists as needed, 1 when the cluster cannot be reached or a topic
has the wrong partition count, 2 for bad arguments or settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka.errors import KafkaError, TopicAlreadyExistsError

from labelflow.stream.commands.common import add_settings_arguments, settings_from_args
from labelflow.stream.config import Settings, SettingsError
from labelflow.stream.kafka_io import BrokerUnavailable, build_admin, worker_topics

logger = logging.getLogger("labelflow.create_topics")


def deployment_topics(settings: Settings) -> dict[str, int]:
    """Every topic of a deployment with embed and learn stages, with the partition count it needs.

    >>> topics = deployment_topics(Settings(topics={"partitions": 6}))
    >>> topics["labelflow.documents"], topics["labelflow.embedded"], topics["labelflow.drift"]
    (6, 6, 1)
    """
    # The embed role's topic list is the learner's plus the embedded topic.
    return worker_topics(settings.model_copy(update={"role": "embed"}))


def copartitioned(settings: Settings) -> tuple[str, ...]:
    """Topics whose partition counts must be equal: a document, its embedding and its feedback share a key."""
    return (settings.topics.documents, settings.topics.labels, settings.topics.embedded)


@dataclass
class TopicPlan:
    """What to do: topics to create, and existing topics whose partition count is not the wanted one.

    >>> plan = TopicPlan.compare({"a": 3, "b": 1}, {"a": 2})
    >>> plan.create, plan.mismatched
    ({'b': 1}, {'a': (2, 3)})
    """

    create: dict[str, int] = field(default_factory=dict)
    mismatched: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (actual, wanted)
    existing: dict[str, int] = field(default_factory=dict)

    @classmethod
    def compare(cls, wanted: Mapping[str, int], existing: Mapping[str, int]) -> TopicPlan:
        plan = cls()
        for name, partitions in wanted.items():
            if name not in existing:
                plan.create[name] = partitions
            else:
                plan.existing[name] = existing[name]
                if existing[name] != partitions:
                    plan.mismatched[name] = (existing[name], partitions)
        return plan


def copartition_errors(counts: Mapping[str, int], names: Sequence[str]) -> list[str]:
    """A message when topics that must be co-partitioned are not.

    >>> copartition_errors({"d": 6, "l": 3, "e": 6}, ["d", "l", "e"])
    ['topics d, l, e must have the same partition count, have 6, 3, 6']
    >>> copartition_errors({"d": 6, "l": 6}, ["d", "l", "e"])
    []
    """
    present = [name for name in names if name in counts]
    if len({counts[name] for name in present}) <= 1:
        return []
    have = ", ".join(str(counts[name]) for name in present)
    return [f"topics {', '.join(present)} must have the same partition count, have {have}"]


def parse_topic_configs(assignments: Sequence[str]) -> dict[str, str]:
    """``["retention.ms=86400000"]`` as ``{"retention.ms": "86400000"}``.

    >>> parse_topic_configs(["retention.ms=86400000", "min.insync.replicas=2"])
    {'retention.ms': '86400000', 'min.insync.replicas': '2'}
    """
    configs: dict[str, str] = {}
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"--topic-config expects KEY=VALUE, got {assignment!r}")
        configs[key.strip()] = value.strip()
    return configs


def _partition_counts(admin: Any, names: Sequence[str]) -> dict[str, int]:
    if not names:
        return {}
    counts = {}
    for info in admin.describe_topics(list(names)):
        name = info.get("name") or info.get("topic")
        if info.get("error_code", 0) == 0 and name:
            counts[str(name)] = len(info.get("partitions") or [])
    return counts


def connect(settings: Settings, wait_s: float) -> Any:
    """An admin client, retrying for up to ``wait_s`` while the cluster comes up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return build_admin(settings, client_id="labelflow-create-topics")
        except (BrokerUnavailable, KafkaError) as exc:
            if time.monotonic() >= deadline:
                raise BrokerUnavailable(
                    f"no Kafka broker answered at {','.join(settings.brokers)} within {wait_s:.0f} s: {exc}"
                ) from None
            logger.info("event=waiting_for_kafka brokers=%s error=%s", ",".join(settings.brokers), exc)
            time.sleep(2.0)


def ensure_deployment_topics(
    settings: Settings,
    *,
    replication_factor: int,
    topic_configs: Mapping[str, str] | None = None,
    wait_s: float = 60.0,
    timeout_s: float = 30.0,
) -> TopicPlan:
    """Create the missing topics of a deployment; raise ``RuntimeError`` naming partition-count problems."""
    wanted = deployment_topics(settings)
    admin = connect(settings, wait_s)
    try:
        existing_names = set(admin.list_topics())
        plan = TopicPlan.compare(wanted, _partition_counts(admin, sorted(existing_names & set(wanted))))
        for name, partitions in plan.create.items():
            try:
                admin.create_topics(
                    {
                        name: {
                            "num_partitions": partitions,
                            "replication_factor": replication_factor,
                            "configs": dict(topic_configs or {}),
                        }
                    },
                    timeout_ms=int(timeout_s * 1000),
                )
                logger.info(
                    "event=topic_created topic=%s partitions=%d replication_factor=%d",
                    name,
                    partitions,
                    replication_factor,
                )
            except TopicAlreadyExistsError:
                logger.info("event=topic_exists topic=%s (created concurrently)", name)
        after = _wait_for(admin, list(wanted), timeout_s)
    finally:
        admin.close()
    problems = copartition_errors(after, copartitioned(settings))
    for name, (actual, wanted_count) in plan.mismatched.items():
        logger.warning(
            "event=topic_partitions_differ topic=%s partitions=%d settings=%d", name, actual, wanted_count
        )
    if problems:
        raise RuntimeError(
            "; ".join(problems) + " (add partitions with kafka-topics.sh --alter --partitions N)"
        )
    return plan


def _wait_for(admin: Any, names: list[str], timeout_s: float) -> dict[str, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        counts = _partition_counts(admin, names)
        missing = [name for name in names if counts.get(name, 0) == 0]
        if not missing:
            return counts
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(f"topics {missing} did not appear within {timeout_s:.0f} s")
        time.sleep(0.2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="labelflow-create-topics", description="Create the topics of a labelflow deployment."
    )
    parser.add_argument(
        "--replication-factor",
        type=int,
        required=True,
        help="replicas per partition: 1 for a one-broker cluster, usually 3 in production",
    )
    parser.add_argument(
        "--topic-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a topic-level config for the topics it creates, e.g. retention.ms=604800000 (repeatable)",
    )
    parser.add_argument(
        "--wait-s", type=float, default=60.0, help="how long to wait for the cluster to answer (default 60)"
    )
    add_settings_arguments(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    if args.replication_factor < 1:
        print(
            f"labelflow-create-topics: error: --replication-factor must be at least 1, got {args.replication_factor}",
            file=sys.stderr,
        )
        return 2
    try:
        settings = settings_from_args(args)
        configs = parse_topic_configs(args.topic_config)
    except SettingsError as exc:
        print(f"labelflow-create-topics: error: {exc}", file=sys.stderr)
        return 2
    try:
        plan = ensure_deployment_topics(
            settings, replication_factor=args.replication_factor, topic_configs=configs, wait_s=args.wait_s
        )
    except (BrokerUnavailable, KafkaError, RuntimeError) as exc:
        print(f"labelflow-create-topics: error: {exc}", file=sys.stderr)
        return 1
    print(
        f"topics ready: created {sorted(plan.create) or 'none'}, already there {sorted(plan.existing) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
