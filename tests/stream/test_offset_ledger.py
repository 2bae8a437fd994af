"""The offset ledger without Kafka: restores, assignments, revocations, commits and checkpoint claims."""

from __future__ import annotations

from kafka import TopicPartition

from labelflow.stream.offset_ledger import OffsetLedger, Seek, SeekReason

D0, D1, L0 = ("docs", 0), ("docs", 1), ("labels", 0)


def test_new_ledger_seeks_nothing_and_commits_nothing() -> None:
    ledger = OffsetLedger()
    assert ledger.assign([D0, L0]) == []
    assert ledger.commit_offsets() == {}
    assert ledger.checkpoint_offsets() == {}
    assert not ledger.needs_checkpoint()


def test_restored_offsets_are_sought_once_on_first_assignment() -> None:
    ledger = OffsetLedger()
    ledger.restore({D0: 10, L0: 3})
    assert ledger.assign([D0]) == [Seek(D0, 10, SeekReason.CHECKPOINT)]
    assert ledger.position(D0) == 10
    # Assigned later: still sought (a restore waits for its partition, however late it comes).
    assert ledger.assign([L0]) == [Seek(L0, 3, SeekReason.CHECKPOINT)]
    # Nothing processed yet: nothing to commit, but a checkpoint still claims both.
    assert ledger.commit_offsets() == {}
    assert ledger.checkpoint_offsets() == {D0: 10, L0: 3}


def test_processing_moves_commits_and_the_checkpoint_claim() -> None:
    ledger = OffsetLedger()
    ledger.restore({D0: 10, D1: 4})
    ledger.assign([D0])
    ledger.processed({D0: 15})
    assert ledger.commit_offsets() == {D0: 15}
    # D1 was never assigned here: the checkpoint keeps its restored offset.
    assert ledger.checkpoint_offsets() == {D0: 15, D1: 4}
    assert not ledger.needs_checkpoint(), "D0 is covered by the restored checkpoint"


def test_a_partition_no_checkpoint_covers_needs_one_before_its_commit() -> None:
    ledger = OffsetLedger()
    ledger.assign([D0])
    ledger.processed({D0: 5})
    assert ledger.needs_checkpoint()
    ledger.checkpointed(ledger.checkpoint_offsets())
    assert not ledger.needs_checkpoint()
    ledger.assign([D1])
    ledger.processed({D1: 1})
    assert ledger.needs_checkpoint()


def test_revoked_partitions_are_not_committed_and_unread_restores_wait() -> None:
    ledger = OffsetLedger()
    ledger.restore({D0: 10, D1: 20})
    ledger.assign([D0, D1])
    ledger.processed({D0: 12})
    ledger.revoke([D0, D1])
    assert ledger.commit_offsets() == {}
    assert ledger.assigned == frozenset()
    # D1 was restored but never read here: its restored offset is still what a checkpoint claims.
    assert ledger.checkpoint_offsets() == {D1: 20}
    # A batch assembled before the revocation does not bring a revoked partition back.
    ledger.processed({D0: 14})
    assert ledger.commit_offsets() == {}


def test_partitions_coming_straight_back_resume_where_the_model_left_them() -> None:
    ledger = OffsetLedger()
    ledger.assign([D0, D1])
    ledger.processed({D0: 7, D1: 9})
    ledger.revoke([D0, D1])  # an eager rebalance revokes everything first
    seeks = ledger.assign([D0])
    assert seeks == [Seek(D0, 7, SeekReason.RETURNING)]
    assert ledger.commit_offsets() == {D0: 7}
    # Only the latest revocation counts: D1 comes back after another rebalance and is read from the
    # committed offset like any partition new to this worker.
    assert ledger.assign([D1]) == []


def test_a_reset_log_moves_the_position_back() -> None:
    # A recreated topic (or a broker that lost its data) starts again at 0: the consumer reads from
    # there, and what the worker commits and checkpoints must follow, not stay at the old maximum.
    ledger = OffsetLedger()
    ledger.assign([D0])
    ledger.processed({D0: 5_000})
    ledger.processed({D0: 12})
    assert ledger.commit_offsets() == {D0: 12}
    assert ledger.position(D0) == 12


def test_kafka_topic_partitions_and_plain_pairs_are_the_same_key() -> None:
    ledger = OffsetLedger()
    ledger.restore({TopicPartition("docs", 0): 3})
    seeks = ledger.assign({TopicPartition("docs", 0)})
    assert seeks == [Seek(("docs", 0), 3, SeekReason.CHECKPOINT)]
    ledger.processed({TopicPartition("docs", 0): 4})
    assert ledger.commit_offsets() == {("docs", 0): 4}
    assert type(next(iter(ledger.commit_offsets()))) is tuple
