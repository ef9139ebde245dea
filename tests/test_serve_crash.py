"""``booking serve`` killed mid-burst loses no booking it confirmed and leaves nothing half-written.

The real command runs as a process of its own against this module's database. Six clients book
their own slots as fast as they can, each request with an Idempotency-Key; once a dozen bookings
have been answered, the process gets SIGKILL (no shutdown, no flush: whatever a transaction had not
committed is gone). Then it is started again on the same data, and:

- every booking that got a 201 exists exactly once in the event log and its code verifies;
- a request the kill cut off, retried with its key, either replays the booking that did commit or
  books now: each key ends in exactly one booking;
- nothing is half-written: every Appointment.Booked has its ProviderDay.Booked, its confirmation
  code index, its Patient.AppointmentAdded and its idempotency record, and nothing points at an
  appointment that does not exist;
- the projections catch up: the staff board, read at the log's last position, shows exactly the
  booked appointments.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from booking.clock import ManualClock
from booking.settings import Settings
from tests.booking_helpers import APPOINTMENT_BOOKED, EventLog, open_slots, read_model, utc
from tests.support.server import (
    ADMIN_TOKEN,
    LiveServer,
    Practice,
    Tenant,
    bearer,
    business_hours,
    expect,
    seed_tenant,
    setup_practice,
)

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 6
ANSWERED_BEFORE_KILL = 12
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """``python -m booking.cli serve`` on a free port, its output kept in a file."""

    def __init__(self, env: dict[str, str], output: Path) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.output = output
        self._out = output.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "booking.cli", "serve", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_until_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise AssertionError(f"booking serve exited early:\n{self.log_text()}")
                try:
                    if client.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"booking serve did not come up:\n{self.log_text()}")
                time.sleep(0.05)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._out.close()

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")[-4000:]


@pytest.fixture(scope="module")
def environment(
    database: tuple[str, str], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    runtime_url, admin_url = database
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOOKING_")}
    env.update(
        BOOKING_DATABASE_URL=runtime_url,
        BOOKING_ADMIN_DATABASE_URL=admin_url,
        BOOKING_CIPHER_KEY=base64.b64encode(os.urandom(32)).decode(),
        BOOKING_ADMIN_TOKEN=ADMIN_TOKEN,
        BOOKING_HOME=str(tmp_path_factory.mktemp("serve-home")),
        BOOKING_RATE_LIMIT_PER_SECOND="0",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("serve-log") / "serve.log"


@pytest.fixture
def served(environment: dict[str, str], output: Path) -> Iterator[list[Served]]:
    """Processes started by the test; any still running are stopped afterwards."""
    started: list[Served] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def as_live(process: Served, env: dict[str, str]) -> LiveServer:
    """The running process as the test helpers see a server (its settings open the event log)."""
    settings = Settings.from_env(env)
    return LiveServer(
        base_url=process.base_url,
        clock=ManualClock(),  # unused: the process runs on the system clock
        settings=settings,
        admin_headers=bearer(ADMIN_TOKEN),
    )


@dataclass
class Attempt:
    client: int
    key: str
    body: dict[str, Any]
    status: int | None = None  # None: the connection broke before an answer came
    answer: Any = None


@dataclass
class Burst:
    """Clients booking their own slots until the server goes away."""

    server: LiveServer
    tenant: Tenant
    slots: list[dict[str, Any]]
    attempts: list[Attempt] = field(default_factory=list)
    answered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def run_client(self, number: int, headers: dict[str, str]) -> None:
        with httpx.Client(base_url=self.server.base_url, timeout=30) as client:
            for index in range(number, len(self.slots), CLIENTS):
                attempt = Attempt(
                    number,
                    f"burst-{number}-{index}",
                    {"patient_ref": f"pat-{number}", "slot_id": self.slots[index]["slot_id"]},
                )
                with self._lock:
                    self.attempts.append(attempt)
                try:
                    response = client.post(
                        "/v1/agent/bookings",
                        json=attempt.body,
                        headers={**headers, "Idempotency-Key": attempt.key},
                    )
                    while response.status_code == 503:  # busy: nothing written, try again
                        time.sleep(0.05)
                        response = client.post(
                            "/v1/agent/bookings",
                            json=attempt.body,
                            headers={**headers, "Idempotency-Key": attempt.key},
                        )
                except httpx.TransportError:
                    return  # the server is gone; this attempt has no answer
                attempt.status = response.status_code
                attempt.answer = response.json() if response.content else None
                if response.status_code == 201:
                    self.answered.release()


def topics(log: EventLog, *names: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {name: [] for name in names}
    for stored in log.events(topics=tuple(f"booking:{n}" for n in names)):
        found[stored.topic.removeprefix("booking:")].append(stored.event)
    return found


def test_sigkill_mid_burst_loses_no_confirmed_booking_and_half_writes_nothing(
    environment: dict[str, str], output: Path, served: list[Served]
) -> None:
    first = Served(environment, output)
    served.append(first)
    first.wait_until_healthy()
    server = as_live(first, environment)
    tenant = seed_tenant(server, "crash-clinic")
    patients = tuple(f"pat-{n}" for n in range(CLIENTS))
    practice: Practice = setup_practice(
        server, tenant, duration=15, hours=business_hours("08:00", "20:00"), patients=patients
    )
    with server.client() as client:
        slots = [
            slot
            for day in (1, 2, 3)
            for slot in open_slots(client, tenant, practice, days_from=day, days=1, limit=50)
        ]
    slots = list({s["slot_id"]: s for s in slots}.values())  # windows share their edges
    assert len(slots) >= 100, len(slots)

    # -- the burst, and the kill in the middle of it ----------------------------------------
    burst = Burst(server, tenant, slots)
    tokens = [tenant.token("agent", patient_ref=p) for p in patients]
    threads = [
        threading.Thread(target=burst.run_client, args=(n, tokens[n]), daemon=True)
        for n in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    for _ in range(ANSWERED_BEFORE_KILL):
        assert burst.answered.acquire(timeout=60), f"the burst stalled:\n{first.log_text()}"
    first.kill()
    for thread in threads:
        thread.join(60)
    confirmed = [a for a in burst.attempts if a.status == 201]
    cut_off = [a for a in burst.attempts if a.status is None]
    refused = [a for a in burst.attempts if a.status not in (None, 201)]
    assert not refused, [(a.status, a.answer) for a in refused]  # every client has slots of its own
    assert len(confirmed) >= ANSWERED_BEFORE_KILL and cut_off, (len(confirmed), len(cut_off))

    # -- restart on the same data ---------------------------------------------------------------
    second = Served(environment, output)
    served.append(second)
    second.wait_until_healthy()
    server = as_live(second, environment)
    with server.client() as client:
        for attempt in confirmed:
            code = attempt.answer["confirmation_code"]
            verified = expect(
                client.get(f"/v1/agent/confirmations/{code}", headers=tenant.agent_headers), 200
            )
            assert verified["confirmed"] is True, verified
            assert verified["appointment_id"] == attempt.answer["appointment_id"], verified
            assert utc(verified["start"]) == utc(attempt.answer["start"]), verified
        replayed = 0
        for attempt in cut_off:  # the client retries what it never got an answer to
            retry = client.post(
                "/v1/agent/bookings",
                json=attempt.body,
                headers={**tokens[attempt.client], "Idempotency-Key": attempt.key},
            )
            assert retry.status_code == 201, retry.text
            attempt.status, attempt.answer = 201, retry.json()
            replayed += retry.headers.get("Idempotent-Replayed") == "true"

    log = EventLog(server)
    try:
        booked = [
            e
            for e in log.appointment_events(APPOINTMENT_BOOKED)
            if e.event.tenant_id == "crash-clinic"
        ]
        per_id = Counter(str(e.stream_id) for e in booked)
        for attempt in confirmed + cut_off:
            assert per_id[attempt.answer["appointment_id"]] == 1, attempt
        per_slot = Counter(e.event.start for e in booked)
        assert set(per_slot.values()) == {1}, "a slot was booked twice"
        assert len(booked) == len(confirmed) + len(cut_off), "a booking nobody asked for exists"

        # nothing half-written: each booking's events all exist, and nothing points nowhere
        ids = set(per_id)
        written = topics(
            log,
            "ProviderDay.Booked",
            "ConfirmationCode.Issued",
            "Patient.AppointmentAdded",
            "IdempotentRequest.Recorded",
        )
        day_booked = Counter(e.appointment_id for e in written["ProviderDay.Booked"])
        codes = {e.code: str(e.appointment_id) for e in written["ConfirmationCode.Issued"]}
        added = Counter(e.appointment_id for e in written["Patient.AppointmentAdded"])
        recorded = Counter(
            str(e.stream_id)
            for e in written["IdempotentRequest.Recorded"]
            if e.kind == "appointment"
        )
        for event in booked:
            appointment_id = str(event.stream_id)
            assert day_booked[appointment_id] == 1, f"{appointment_id}: no ProviderDay.Booked"
            assert codes.get(event.event.confirmation_code) == appointment_id, appointment_id
            assert added[appointment_id] == 1, f"{appointment_id}: no Patient.AppointmentAdded"
            assert recorded[appointment_id] == 1, f"{appointment_id}: no idempotency record"
        assert set(day_booked) <= ids and set(added) <= ids and set(codes.values()) <= ids
        assert set(recorded) <= ids
        last = log.max_position()
    finally:
        log.close()

    # -- the projections catch up -----------------------------------------------------------
    local_dates = [datetime.fromisoformat(s["start"]).date() for s in slots]  # the clinic's dates
    with server.client() as client:
        board = read_model(
            client,
            "/v1/staff/appointments",
            {"date_from": min(local_dates).isoformat(), "date_to": max(local_dates).isoformat()},
            tenant.staff_headers,
            last,
        )
    assert board["position"] >= last
    assert sorted(a["appointment_id"] for a in board["appointments"]) == sorted(ids)
    print(
        f"\n{len(confirmed)} bookings confirmed before SIGKILL, {len(cut_off)} cut off "
        f"({replayed} of them had committed and were replayed on retry)"
    )
