"""Root of the test tree: fixtures every suite shares.

With --import-mode=importlib and the repo root on sys.path, pytest would take the folder
`contracts/` for the package `contracts`; importing the installed package first keeps
`contracts` meaning contracts/src/contracts for every suite.
"""

from collections.abc import Iterator

import pytest

import contracts  # noqa: F401
from tests.support.kafka import TestBroker, test_broker


@pytest.fixture(scope="session")
def kafka() -> Iterator[TestBroker]:
    """One real Kafka-protocol broker for the whole test session."""
    with test_broker() as broker:
        yield broker
