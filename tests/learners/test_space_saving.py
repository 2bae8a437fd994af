"""Space-Saving with a lazy heap counts and evicts exactly as the scan over an insertion-ordered dict."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from labelflow.operators.learners.space_saving import SpaceSaving


def scan_reference(capacity: int, keys: list[int]) -> list[tuple[list[tuple[int, int]], int]]:
    """The former implementation: a dict scanned with ``min`` at every eviction."""
    counts: dict[int, int] = {}
    trace = []
    for key in keys:
        count = counts.get(key)
        if count is None:
            count = 0
            if len(counts) >= capacity:
                evicted = min(counts, key=counts.__getitem__)
                count = counts.pop(evicted)
        counts[key] = count + 1
        trace.append((list(counts.items()), count + 1))
    return trace


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 6), keys=st.lists(st.integers(0, 12), max_size=300))
def test_same_counts_and_evictions_as_a_scan(capacity: int, keys: list[int]) -> None:
    counts = SpaceSaving(capacity)
    trace = []
    for key in keys:
        count = counts.add(key)
        trace.append((list(counts.items()), count))
    assert trace == scan_reference(capacity, keys)


@settings(max_examples=50, deadline=None)
@given(
    capacity=st.integers(1, 5),
    head=st.lists(st.integers(0, 9), max_size=60),
    tail=st.lists(st.integers(0, 9), max_size=60),
)
def test_restored_from_items_continues_as_the_original(
    capacity: int, head: list[int], tail: list[int]
) -> None:
    original = SpaceSaving(capacity)
    for key in head:
        original.add(key)
    restored = SpaceSaving(capacity, list(original.items()))
    assert [restored.add(key) for key in tail] == [original.add(key) for key in tail]
    assert list(restored.items()) == list(original.items())


def test_heap_stays_bounded_on_a_long_stream() -> None:
    counts = SpaceSaving(4)
    for i in range(10_000):
        counts.add(i % 7)
    assert len(counts) == 4
    assert len(counts._heap) <= 4 * 4 + 1


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SpaceSaving(0)
