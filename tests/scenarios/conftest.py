"""Each scenario gets a clinic of its own (a fresh tenant on the module's live server), so a call
never sees another scenario's bookings; and a scenario must be a conversation of at least
MIN_TURNS turns. ``SCENARIO_TRANSCRIPTS=1 pytest -s tests/scenarios`` prints every call."""

from __future__ import annotations

import itertools
import os
from collections.abc import Generator, Iterator

import pytest

from tests.booking_helpers import EventLog, event_log
from tests.scenarios.script import MIN_TURNS, Clinic, open_clinic
from tests.support.server import LiveServer

_numbers = itertools.count(1)
_PASSED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item,
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[_PASSED] = report.passed
    return report


@pytest.fixture
def clinic(live_server: LiveServer, request: pytest.FixtureRequest) -> Iterator[Clinic]:
    stem = request.node.name.removeprefix("test_").replace("_", "-")[:40].rstrip("-")
    opened = open_clinic(live_server, f"{stem}-{next(_numbers)}")
    try:
        yield opened
    finally:
        opened.close()
        if os.environ.get(
            "SCENARIO_TRANSCRIPTS"
        ):  # `SCENARIO_TRANSCRIPTS=1 pytest -s tests/scenarios`
            print(f"\n\n=== {request.node.name} ===")
            for call in opened.calls:
                print("\n".join(call.transcript), end="\n\n")
    if request.node.stash.get(_PASSED, False) and opened.turns < MIN_TURNS:
        pytest.fail(f"a scenario is a conversation: {opened.turns} turns, at least {MIN_TURNS}")


@pytest.fixture(scope="module")
def log(live_server: LiveServer) -> Iterator[EventLog]:
    """The app's own event store, read back (to check what a call wrote, and what it did not)."""
    yield from event_log(live_server)
