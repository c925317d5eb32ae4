"""One whole system (`oppstream up` in a scratch folder) with a small simulated year, shared by
the end-to-end tests of this folder."""

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console

from oppstream.demo import Year, simulate
from oppstream.scenes import demo_rules
from oppstream.up import System, system_up
from tests.support.kafka import TestBroker
from tests.support.processes import consumer_groups


@pytest.fixture(scope="module")
def seeded_year(
    tmp_path_factory: pytest.TempPathFactory, kafka: TestBroker
) -> Iterator[tuple[System, Year]]:
    """The three services on SQLite under a scratch ./var, on the demo's rules, 80 deals, and a
    broker of their own as `oppstream up` starts it (the session's broker holds every other
    test's leads, which would flow in while the tests compare figures), unless the suite was
    given a broker."""
    workdir: Path = tmp_path_factory.mktemp("system")
    before = Path.cwd()
    saved = os.environ.pop("OPPSTREAM_KAFKA_BOOTSTRAP", None)
    rules_file = os.environ.pop("OPPSTREAM_RULES_FILE", None)
    if kafka.kind == "external":
        os.environ["OPPSTREAM_KAFKA_BOOTSTRAP"] = kafka.bootstrap
    os.environ["OPPSTREAM_KAFKA_SESSION_TIMEOUT_MS"] = "3000"
    groups = consumer_groups(str(workdir))
    os.environ.update(groups)
    os.chdir(workdir)
    try:
        rules = demo_rules(workdir / "var")
        with system_up(hold=("reminders",)) as system:
            year = asyncio.run(simulate(system, rules, 80, 0.05, 11, Console(quiet=True)))
            yield system, year
    finally:
        os.chdir(before)
        os.environ.pop("OPPSTREAM_RULES_FILE", None)
        if rules_file is not None:
            os.environ["OPPSTREAM_RULES_FILE"] = rules_file
        os.environ.pop("OPPSTREAM_KAFKA_SESSION_TIMEOUT_MS", None)
        for name in groups:
            os.environ.pop(name, None)
        if saved is None:
            os.environ.pop("OPPSTREAM_KAFKA_BOOTSTRAP", None)
        else:
            os.environ["OPPSTREAM_KAFKA_BOOTSTRAP"] = saved


@pytest.fixture(scope="module")
def seeded(seeded_year: tuple[System, Year]) -> System:
    return seeded_year[0]
