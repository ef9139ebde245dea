"""Booking throughput side by side on one database, at one concurrency, one phase at a time:

  http    POST /v1/agent/bookings {slot_id} through uvicorn (api.app:create_app): --replicas API
          processes, each client keeping to one of them (client i to replica i mod N), or with
          --no-affinity sending to each replica in turn
  save    bare app.save of what a booking writes: new Appointment, ConfirmationCode and
          IdempotentRequest, +1 event on a ProviderDay and a Patient kept in memory (no reads)
  insert  plain single-row INSERT + COMMIT with psycopg, one connection per thread

--compare-root PATH runs every other replica from another checkout of the project (say
`git worktree add /tmp/base main~1`) and reports each side's bookings/s and CPU per booking: both
sides share the database, the machine and its drift, so their difference is the change's.

Only the ratios mean anything (README.md, "Throughput"). Each phase also reports
the CPU its application processes spent per operation inside the measured window (the uvicorn
replicas; the bare save's own process or processes), and the whole machine's: rates move with
whatever else the machine runs, CPU per operation much less. From the repo root:
    .venv/bin/python benchmarks/booking_rate.py --seconds 10 --clients 16
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import itertools
import multiprocessing
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import msgspec  # noqa: E402
import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402

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
from booking.appointments import Appointment  # noqa: E402
from booking.codes import new_code  # noqa: E402
from booking.days import ProviderDay  # noqa: E402
from booking.indexes import ConfirmationCode, IdempotentRequest  # noqa: E402
from booking.patients import Patient  # noqa: E402
from booking.schema import prepare_database  # noqa: E402
from booking.store import open_store  # noqa: E402

Op = Callable[[], str | None]  # one operation: None on success, else a label for the failure


@dataclass
class Result:
    name: str
    seconds: float
    key: str = ""  # the phase: http, save or insert
    ops: int = 0  # successes that ended inside the measured window
    all_ops: int = 0  # every operation of the phase, warm-up and failures included
    failures: Counter[str] = field(default_factory=Counter)
    xacts: int = 0  # transactions the database served during the phase
    per_op: list[int] = field(default_factory=list)  # successes of each op (client)
    part_cpu: list[float] = field(default_factory=list)  # CPU of each of Load.parts
    app_cpu: float = 0.0  # CPU seconds of the application's processes in the measured window
    machine_cpu: float = 0.0  # CPU seconds of the whole machine (all cores) in that window

    @property
    def rate(self) -> float:
        return self.ops / self.seconds

    def per_op_ms(self, cpu: float) -> float:
        return 1000 * cpu / max(1, self.ops)


Probe = Callable[[], float]  # CPU seconds used so far by the processes a phase measures


def process_cpu(pids: list[int]) -> Probe:
    """User + system CPU seconds of these processes, from /proc (Linux)."""
    tick = os.sysconf("SC_CLK_TCK")

    def probe() -> float:
        total = 0
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / tick

    return probe


def own_cpu() -> float:
    """This process's user + system CPU seconds, every thread."""
    t = os.times()
    return t.user + t.system


def machine_cpu() -> float:
    """CPU seconds all cores spent running this machine's work, from /proc/stat (0.0 where there
    is none): user, nice, system, irq and softirq; not idle, iowait, nor steal (time the
    hypervisor gave a neighbour)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq = fields[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def measure(
    name: str,
    ops: list[Op],
    warmup: float,
    seconds: float,
    begin: float | None = None,
    probe: Probe = own_cpu,
    parts: list[Probe] | None = None,
) -> Result:
    """Loop every op in its own thread; count the successes that end inside the window, and the
    CPU ``probe`` and the machine used inside it.

    ``begin``: when the loops start (``time.time()``), so that several processes share a window.
    """
    result, lock = Result(name, seconds, per_op=[0] * len(ops)), threading.Lock()
    parts = parts or []
    begin = time.time() + 0.2 if begin is None else begin
    start, end = begin + warmup, begin + warmup + seconds

    def sample() -> None:
        try:
            time.sleep(max(0.0, start - time.time()))
            app, machine, each = probe(), machine_cpu(), [part() for part in parts]
            time.sleep(max(0.0, end - time.time()))
            result.app_cpu, result.machine_cpu = probe() - app, machine_cpu() - machine
            result.part_cpu = [part() - was for part, was in zip(parts, each, strict=True)]
        except OSError as exc:  # a server gone: its CPU is unknown, not zero
            result.app_cpu = result.machine_cpu = float("nan")
            print(f"[{name}] CPU not measured: {exc}", flush=True)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()

    def loop(index: int, op: Op) -> None:
        ok, done, failed = 0, 0, Counter[str]()
        time.sleep(max(0.0, begin - time.time()))
        while time.time() < end:
            try:
                label = op()
            except Exception as exc:  # a failure is a result, not a crash
                label = f"{type(exc).__name__}: {str(exc)[:80]}"
            now, done = time.time(), done + 1
            if label is not None:
                failed[label] += 1
            elif start <= now < end:
                ok += 1
        with lock:
            result.per_op[index] = ok
            result.ops, result.all_ops = result.ops + ok, result.all_ops + done
            result.failures.update(failed)

    print(f"[{name}] start: {len(ops)} threads, {warmup:g}s warm-up + {seconds:g}s", flush=True)
    threads = [threading.Thread(target=loop, args=(i, op), daemon=True) for i, op in enumerate(ops)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sampler.join()
    bad = f"; NOT OK: {dict(result.failures)}" if result.failures else ""
    print(f"[{name}] end: {result.ops} ok in {seconds:g}s = {result.rate:.1f}/s{bad}", flush=True)
    return result


def xact_count(admin_url: str) -> int:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


@dataclass
class Load:
    """A phase's client threads, and the CPU probe of the processes that serve them."""

    ops: list[Op]
    probe: Probe = own_cpu
    parts: list[Probe] = field(default_factory=list)  # CPU of each server, for --compare-root


REFERENCE = ("insert",)  # measured once, after the rounds: its writes would weigh on what follows


def run_phases(
    phases: list[tuple[str, str, Callable[[ExitStack], Load | Callable[[], Result]]]],
    admin_url: str,
    args: argparse.Namespace,
) -> list[list[Result]]:
    """Measure the phases one after another, ``args.rounds`` times over. Each measurement builds
    its phase's clients (threads here, or a runner of its own) and closes them after: no phase
    runs beside another's processes (the projection worker would project the bare save's
    events), and every round books for a new tenant, so no round inherits bigger patients.

    Rounds alternate the order of the phases (A B, B A, …), so neither a drift of the
    machine's speed nor what one phase leaves behind (WAL, dirty pages) weighs on one phase
    more than on another. The plain INSERT, a reference only, runs once after the rounds: its
    tens of thousands of commits would weigh on whatever followed it."""
    measured = [p for p in phases if p[0] not in REFERENCE]
    reference = [p for p in phases if p[0] in REFERENCE]
    position = {name: i for i, (name, _, _) in enumerate(phases)}
    rounds: list[list[Result]] = []
    for number in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"--- round {number} of {args.rounds}", flush=True)
        order = measured if number % 2 else measured[::-1]
        if number == args.rounds:
            order = order + reference
        results = []
        for name, label, build in order:
            with ExitStack() as stack:
                load = build(stack)
                before = xact_count(admin_url)
                if isinstance(load, Load):
                    result = measure(
                        name,
                        load.ops,
                        args.warmup,
                        args.seconds,
                        probe=load.probe,
                        parts=load.parts,
                    )
                else:
                    result = load()
            time.sleep(0.5)  # a backend flushes its statistics when it exits
            result.name, result.key = label, name
            result.xacts = xact_count(admin_url) - before
            results.append(result)
        rounds.append(sorted(results, key=lambda r: position[r.key]))
    return rounds


def stop_process(proc: subprocess.Popen[bytes], what: str) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    print(f"{what} process {proc.pid} stopped", flush=True)


def start_servers(
    stack: ExitStack,
    urls: tuple[str, str],
    key: str,
    token: str,
    replicas: int,
    separate_projector: bool,
    roots: tuple[Path, ...] = (ROOT,),
) -> list[tuple[str, int]]:
    """``replicas`` single-process uvicorn servers, as production scales the API; their base
    URLs and process ids. Replica i runs the code of ``roots[i % len(roots)]``."""
    env = {
        **os.environ,
        "BOOKING_DATABASE_URL": urls[0],
        "BOOKING_ADMIN_DATABASE_URL": urls[1],
        "BOOKING_CIPHER_KEY": key,
        "BOOKING_ADMIN_TOKEN": token,
        "PYTHONPATH": str(ROOT),
        "BOOKING_RATE_LIMIT_PER_SECOND": "1000000",  # the limiter runs but never refuses
        # production's shape: API processes only, the read models kept by `booking project`
        "BOOKING_RUN_PROJECTIONS": "false" if separate_projector else "true",
    }
    if separate_projector:
        projector = subprocess.Popen(
            [sys.executable, "-m", "booking.cli", "project"], cwd=ROOT, env=env
        )
        stack.callback(stop_process, projector, "projection worker")
    servers = []
    for index in range(replicas):
        root = roots[index % len(roots)]
        port = free_port()
        proc = subprocess.Popen(
            uvicorn_argv("api.app:app_from_env", port),
            cwd=root,
            env={**env, "PYTHONPATH": str(root)},
        )
        stack.callback(stop_process, proc, "server")
        servers.append((proc, f"http://127.0.0.1:{port}", root))
    deadline = time.monotonic() + 60
    for proc, base, root in servers:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server did not come up (exit status {proc.poll()})")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {proc.pid} did not answer /health in 60s")
            try:
                if httpx.get(base + "/health", timeout=2).status_code == 200:
                    print(f"server process {proc.pid} ({root}) listening on {base}", flush=True)
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
    return [(base, proc.pid) for proc, base, _ in servers]


def setup_tenant(base: str, admin_token: str, clients: int, first: date) -> list[str]:
    """A tenant with provider dr-<i> and patient pat-<i> per client; one agent token each."""
    c = httpx.Client(base_url=base, timeout=30)

    def call(method: str, path: str, token: str, body: object) -> Any:
        r = c.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
        if r.status_code not in (200, 201):
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    tid, admin = "bench-" + secrets.token_hex(4), admin_token
    call("POST", "/v1/admin/tenants", admin, {"tenant_id": tid, "name": "B", "timezone": "UTC"})
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
        {"type_id": TYPE_ID, "name": "Bench", "duration_minutes": MINUTES},
    )
    hours = [{"weekday": d, "start": f"{OPEN:02}:00", "end": f"{CLOSE:02}:00"} for d in range(7)]
    for i in range(clients):
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


def http_op(stack: ExitStack, bases: list[str], agent: str, i: int, first: date) -> Op:
    """Keep-alive connections through the standard library's HTTP client: one to each of
    ``bases``, taken in turn (one base: every request to the same replica).

    The load generator shares the machine with the server and the database: a lighter client
    (http.client costs a fraction of httpx per request) leaves the CPU to what is measured.
    """
    conns = []
    for base in bases:
        url = urlsplit(base)
        c = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=60)
        c.connect()
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        stack.callback(c.close)
        conns.append(c)
    turns = itertools.cycle(conns)
    slots = slot_ids(f"dr-{i}", first)
    encoder = msgspec.json.Encoder()

    def op() -> str | None:
        conn = next(turns)
        body = encoder.encode({"patient_ref": f"pat-{i}", "slot_id": next(slots)})
        headers = {
            "Authorization": f"Bearer {agent}",
            "Content-Type": "application/json",
            "Idempotency-Key": str(uuid4()),
        }
        conn.request("POST", "/v1/agent/bookings", body=body, headers=headers)
        r = conn.getresponse()
        content = r.read()
        if r.status == 201:
            return None
        title = ""
        if "json" in (r.getheader("content-type") or ""):
            title = msgspec.json.decode(content).get("title", "")
        return f"{r.status} {title}".strip()

    return op


def save_ops(stack: ExitStack, runtime_url: str, key: str, clients: int) -> list[Op]:
    """The bare save's clients; the process running them is the application it measures."""
    store = open_store(runtime_url, key)
    stack.callback(store.close)
    tenant, scope = "bare-" + secrets.token_hex(4), str(uuid4())

    def chain(i: int) -> Op:
        day = ProviderDay(
            tenant_id=tenant, provider_id=f"dr-{i}", date="2030-01-01", timezone="UTC"
        )
        patient = Patient(
            tenant_id=tenant,
            patient_ref=f"pat-{i}",
            name=f"P {i}",
            phone=None,
            birth_date=None,
            language=None,
        )
        store.save(day, patient)
        starts = (
            datetime(2030, 1, 1, tzinfo=UTC) + timedelta(minutes=MINUTES * n)
            for n in itertools.count()
        )

        def op() -> None:
            start, code = next(starts), new_code()
            end = start + timedelta(minutes=MINUTES)
            appointment = Appointment(
                tenant_id=tenant,
                patient_ref=patient.patient_ref,
                provider_id=day.provider_id,
                type_id=TYPE_ID,
                start=start,
                end=end,
                timezone="UTC",
                day_id=day.id,
                confirmation_code=code,
                call_id=None,
                hold_id=None,
            )
            index = ConfirmationCode(tenant_id=tenant, code=code, appointment_id=appointment.id)
            day.book(appointment_id=str(appointment.id), start=start, end=end, hold_id=None)
            patient.add_appointment(appointment_id=str(appointment.id))
            request = IdempotentRequest(
                tenant_id=tenant,
                scope=scope,
                key=str(uuid4()),
                fingerprint=hashlib.sha256(b"body").hexdigest(),
                status_code=201,
                kind="appointment",
                stream_id=appointment.id,
                version=appointment.version,
                ref=None,
            )
            store.save(appointment, day, patient, index, request)

        return op

    return [chain(i) for i in range(clients)]


def _save_child(
    runtime_url: str,
    key: str,
    threads: int,
    warmup: float,
    seconds: float,
    begin: float,
    results: Any,
) -> None:
    """One process of the multi-process bare save: its own store and ``threads`` clients."""
    with ExitStack() as stack:
        ops = save_ops(stack, runtime_url, key, threads)
        r = measure(f"save/{os.getpid()}", ops, warmup, seconds, begin)
    results.put((r.ops, r.all_ops, dict(r.failures), r.app_cpu, r.machine_cpu))


def save_processes(
    runtime_url: str, key: str, args: argparse.Namespace, processes: int
) -> Callable[[ExitStack], Callable[[], Result]]:
    """The bare save from ``processes`` processes sharing the 16 clients: as many interpreters
    (and GILs) as the HTTP phase's API replicas, for a like-for-like comparison."""

    def run() -> Result:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        begin = time.time() + 3.0  # time for the children to start and connect
        shares = [
            args.clients // processes + (i < args.clients % processes) for i in range(processes)
        ]
        children = [
            context.Process(
                target=_save_child,
                args=(runtime_url, key, n, args.warmup, args.seconds, begin, results),
            )
            for n in shares
        ]
        for child in children:
            child.start()
        result = Result("save", args.seconds)
        for _ in children:
            ops, all_ops, failures, app, machine = results.get(
                timeout=args.warmup + args.seconds + 120
            )
            result.ops, result.all_ops = result.ops + ops, result.all_ops + all_ops
            result.failures.update(failures)
            result.app_cpu += app
            result.machine_cpu = max(result.machine_cpu, machine)  # one window, seen by each
        for child in children:
            child.join()
        bad = f"; NOT OK: {dict(result.failures)}" if result.failures else ""
        print(f"[save x{processes}] end: {result.ops} ok = {result.rate:.1f}/s{bad}", flush=True)
        return result

    return lambda stack: run


def insert_ops(stack: ExitStack, runtime_url: str, admin_url: str, clients: int) -> list[Op]:
    role = conninfo_to_dict(runtime_url)["user"]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_scratch")  # left over by a killed run
        conn.execute("CREATE TABLE bench_scratch (id bigserial PRIMARY KEY, payload text)")
        conn.execute(f'GRANT INSERT ON bench_scratch TO "{role}"')
        conn.execute(f'GRANT USAGE ON SEQUENCE bench_scratch_id_seq TO "{role}"')

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute("DROP TABLE bench_scratch")

    stack.callback(drop)

    def client() -> Op:
        conn = stack.enter_context(psycopg.connect(runtime_url, autocommit=False))

        def op() -> None:
            conn.execute("INSERT INTO bench_scratch (payload) VALUES (%s)", ("x" * 100,))
            conn.commit()

        return op

    return [client() for _ in range(clients)]


def report(results: list[Result], replicas: int) -> None:
    print(
        f"\n{'phase':<32}{'ops':>7}{'ops/s':>9}{'tx/op':>7}"
        f"{'app CPU ms/op':>15}{'machine CPU ms/op':>19}"
    )
    for r in results:
        print(
            f"{r.name:<32}{r.ops:>7}{r.rate:>9.1f}{r.xacts / max(1, r.all_ops):>7.1f}"
            f"{r.per_op_ms(r.app_cpu):>15.2f}{r.per_op_ms(r.machine_cpu):>19.2f}"
        )
    by_key = {r.key: r for r in results}
    pairs = [
        ("http", "save", "HTTP / bare-save", f"(API: {replicas} replica(s); bare save: 1 process)"),
        ("http", "save-procs", f"HTTP / bare-save x{replicas}", f"({replicas} processes each)"),
        ("save", "insert", "bare-save / insert", ""),
        ("http", "insert", "HTTP / insert", ""),
    ]
    print(f"\n{'':<22}{'rate':>7}{'app ops/CPU-s':>15}{'machine ops/CPU-s':>19}")
    for a, b, label, note in pairs:
        if a in by_key and b in by_key:
            x, y = by_key[a], by_key[b]
            rate = x.rate / max(y.rate, 1e-9)
            # the inverse of the CPU per op: how many ops the same CPU buys, as the rate is
            app = y.per_op_ms(y.app_cpu) / max(x.per_op_ms(x.app_cpu), 1e-9)
            machine = y.per_op_ms(y.machine_cpu) / max(x.per_op_ms(x.machine_cpu), 1e-9)
            print(f"{label:<22}{rate:7.3f}{app:15.3f}{machine:19.3f}   {note}")
    print(
        "(target: HTTP / bare-save >= 0.70. ops/CPU-s: operations per CPU second, as ratios like"
        " the rate's\n (the inverse of CPU ms/op): of the application's processes, and of the"
        " whole machine (the database,\n the projection worker and the load generator included)."
        " tx/op: database transactions per operation,\n warm-up included.)"
    )


def summary(rounds: list[list[Result]]) -> None:
    """HTTP over the bare save, round by round and their median: the figure to quote."""
    rate, per_cpu = [], []
    for results in rounds:
        by_key = {r.key: r for r in results}
        if "http" not in by_key or "save" not in by_key:
            return
        x, y = by_key["http"], by_key["save"]
        rate.append(x.rate / max(y.rate, 1e-9))
        per_cpu.append(y.per_op_ms(y.app_cpu) / max(x.per_op_ms(x.app_cpu), 1e-9))
    print("\nHTTP / bare-save, round by round (API: 1 process or --replicas; bare save: 1 process)")
    for label, values in (("rate", rate), ("app ops/CPU-s", per_cpu)):
        shown = " ".join(f"{v:.3f}" for v in values)
        print(f"  {label:<14} {shown}   median {statistics.median(values):.3f}")


def compare(result: Result, roots: tuple[Path, ...], replicas: int) -> None:
    """Each side of --compare-root: its replicas' bookings (client i went to replica
    i mod replicas, which runs roots[replica mod len(roots)]) and their CPU."""
    sides = []
    for side, root in enumerate(roots):
        mine = [r for r in range(replicas) if r % len(roots) == side]
        ops = sum(n for i, n in enumerate(result.per_op) if i % replicas in mine)
        cpu = sum(result.part_cpu[r] for r in mine) if result.part_cpu else float("nan")
        sides.append((root, ops / result.seconds, 1000 * cpu / ops if ops else float("nan")))
    print(f"\nside by side{'':<38}{'bookings/s':>11}{'API CPU ms/booking':>20}")
    for root, rate, cpu in sides:
        print(f"{root!s:<50}{rate:11.1f}{cpu:20.2f}")
    (_, rate_a, cpu_a), (_, rate_b, cpu_b) = sides[0], sides[1]
    print(
        f"this checkout / the other: rate {rate_a / max(rate_b, 1e-9):.3f},"
        f" CPU per booking {cpu_a / max(cpu_b, 1e-9):.3f}"
    )


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--clients", type=int, default=16, help="client threads in every phase")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per phase")
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="measure the phases this many times over, alternating, and report the median"
        " HTTP / bare-save ratio (the machine's speed drifts between phases)",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=1,
        help="API processes (single-process uvicorn servers, as production scales); client i"
        " keeps to replica i mod N",
    )
    p.add_argument(
        "--no-affinity",
        action="store_true",
        help="each client sends its requests to every replica in turn, as a load balancer"
        " without affinity would: a replica's caches then lag the other's writes",
    )
    p.add_argument(
        "--projector",
        choices=("separate", "in-api"),
        default="separate",
        help="projection worker: its own process as in production (default), or in the API",
    )
    p.add_argument(
        "--phases",
        default=None,
        help="comma-separated phases: http, save, insert, and save-procs (the bare save from as"
        " many processes as --replicas); default: all three, and save-procs with --replicas > 1",
    )
    p.add_argument(
        "--compare-root",
        type=Path,
        default=None,
        help="another checkout of the project (git worktree add PATH REV): every other replica"
        " runs its code, side by side with this one's on the same database and machine; each"
        " side's bookings/s and CPU per booking are reported (implies --replicas 2 at least and"
        " --phases http)",
    )
    p.add_argument("--database-url", default=os.environ.get("BOOKING_DATABASE_URL"))
    p.add_argument("--admin-database-url", default=os.environ.get("BOOKING_ADMIN_DATABASE_URL"))
    args = p.parse_args()
    if args.rounds < 1:
        raise SystemExit("--rounds must be 1 or more")
    roots: tuple[Path, ...] = (ROOT,)
    if args.compare_root is not None:
        if not (args.compare_root / "api" / "app.py").is_file():
            raise SystemExit(f"--compare-root {args.compare_root}: not a checkout of this project")
        if args.no_affinity:
            raise SystemExit("--compare-root needs each client to keep to one replica")
        roots = (ROOT, args.compare_root.resolve())
        args.replicas = max(2, args.replicas)
        if args.replicas % len(roots) or args.clients % args.replicas:
            raise SystemExit(
                "--compare-root needs as many replicas of each side and clients of each replica"
                " (an even --replicas dividing --clients): the rates compare equal shares"
            )
        args.phases = args.phases or "http"
    signal.signal(signal.SIGTERM, interrupt)
    key = os.environ.get("BOOKING_CIPHER_KEY") or base64.b64encode(os.urandom(32)).decode()
    cpus = f"{os.cpu_count()} (usable {len(os.sched_getaffinity(0))})"
    print(
        f"CPUs: {cpus}; clients: {args.clients}; API replicas: {args.replicas}"
        f" ({'no affinity' if args.no_affinity else 'each client to one'});"
        f" projection worker: {args.projector}",
        flush=True,
    )
    with ExitStack() as stack:
        runtime_url, admin_url, _ = database(stack, args, "bench")
        urls = runtime_url, admin_url
        prepare_database(admin_url, runtime_url, key)
        with psycopg.connect(admin_url) as conn:
            shown = [
                conn.execute(q).fetchone()[0]  # type: ignore[index]
                for q in (
                    "SELECT version()",
                    "SHOW fsync",
                    "SHOW synchronous_commit",
                )
            ]
        print("{}\nfsync={} synchronous_commit={}".format(*shown), flush=True)
        admin_token = "adm_" + secrets.token_urlsafe(24)
        first = datetime.now(UTC).date() + timedelta(days=2)

        def http_clients(stack: ExitStack) -> Load:
            servers = start_servers(
                stack, urls, key, admin_token, args.replicas, args.projector == "separate", roots
            )
            agents = setup_tenant(servers[0][0], admin_token, args.clients, first)
            print("setup done; waiting 11s for idle backends to flush their statistics", flush=True)
            time.sleep(11)
            everyone = [base for base, _ in servers]
            bases = [
                everyone[i % len(everyone) :] + everyone[: i % len(everyone)]
                if args.no_affinity
                else [everyone[i % len(everyone)]]
                for i in range(args.clients)
            ]
            ops = [http_op(stack, bases[i], agents[i], i, first) for i in range(args.clients)]
            pids = [pid for _, pid in servers]
            return Load(ops, process_cpu(pids), [process_cpu([pid]) for pid in pids])

        Build = Callable[[ExitStack], Load | Callable[[], Result]]
        builders: dict[str, tuple[str, Build]] = {
            "http": ("HTTP POST /v1/agent/bookings", http_clients),
            "save": (
                "bare app.save (5 aggregates)",
                lambda s: Load(save_ops(s, runtime_url, key, args.clients)),
            ),
            "save-procs": (
                f"bare app.save, {args.replicas} processes",
                save_processes(runtime_url, key, args, args.replicas),
            ),
            "insert": (
                "plain INSERT + COMMIT",
                lambda s: Load(insert_ops(s, runtime_url, admin_url, args.clients)),
            ),
        }
        phases = args.phases or (
            "http,save,save-procs,insert" if args.replicas > 1 else "http,save,insert"
        )
        wanted = [name.strip() for name in phases.split(",") if name.strip()]
        unknown = sorted(set(wanted) - set(builders))
        if unknown:
            raise SystemExit(f"unknown phase(s) {', '.join(unknown)}; choose from {list(builders)}")
        rounds = run_phases([(name, *builders[name]) for name in wanted], admin_url, args)
        for number, results in enumerate(rounds, 1):
            if args.rounds > 1:
                print(f"\n=== round {number}")
            report(results, args.replicas)
            if len(roots) > 1:
                compare(next(r for r in results if r.key == "http"), roots, args.replicas)
        if args.rounds > 1:
            summary(rounds)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
