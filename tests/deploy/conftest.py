"""Fixtures of the deployment tests: one embedded broker for those that talk to Kafka."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from labelflow.stream.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as running:
        yield running
