"""`booking replay window` over a window of --events seeded events against just reading and
decoding that window, on one database, one run:

  seed      --events events of call traffic through bare app.save, several calls in flight per
            tenant and one save per tick: Call (started, tool calls, utterances with the gate's
            verdict: non-claims, backed claims, refused claims and unknown codes, ended), holds
            (ProviderDay + Patient) that are booked, released or left to expire (--hold-ttl),
            bookings (Appointment + ConfirmationCode + ProviderDay + Patient, linked to the call),
            lost slots, idempotent retries and cancels. The window is [seed start, seed end].
  baseline  store.recorder.select_notifications + store.mapper.to_domain_event over the whole log
            in pages of booking.replay.PAGE (events/s), before and after the replays
  replay    `python -m booking.cli replay window --from S --to E --json` as a child process,
            stdout to /dev/null, stderr kept: wall time, peak RSS (VmHWM), whether a progress bar
            was written; once over the whole window, once over about 10% of it, and once over an
            empty window just before the seed (start-up cost and the RSS of an idle replay)

Replay rate = events in the window / (wall - the empty window's wall); its ratio to the baseline,
and peak RSS at 10% against 100% of the window (flat memory: about equal). From the repo root:
    /tmp/venv/bin/python benchmarks/replay_window.py --events 100000
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._common import database  # noqa: E402
from booking import gate  # noqa: E402
from booking.appointments import ACTIVE, Appointment  # noqa: E402
from booking.calls import Call  # noqa: E402
from booking.claims import find_claim, find_codes  # noqa: E402
from booking.codes import new_code  # noqa: E402
from booking.days import ProviderDay  # noqa: E402
from booking.indexes import ConfirmationCode  # noqa: E402
from booking.patients import Patient  # noqa: E402
from booking.replay import PAGE  # noqa: E402
from booking.schema import prepare_database  # noqa: E402
from booking.store import SchedulingApp, open_store  # noqa: E402

TYPE_ID, MINUTES, SLOTS_A_DAY, FIRST_DAY = "checkup", 20, 30, date(2030, 1, 7)
KINDS = {"book": 50, "abandon": 20, "lost": 10, "info": 12, "cancel": 8}  # what a call does
OFFER = "I can offer Tuesday at 3 pm or Wednesday at 10 am. Which works better?"
DETAILS = "Thanks {name}. I have your number as {phone} and your birth date as {dob}, right?"
CLAIMS = ("You're all set for Tuesday at 3 pm.", "Su cita está confirmada para el martes.")
FALSE_CLAIM = "Great news, you're booked for Thursday at 9."  # said with no booking: refused
CODE = "Your confirmation code is {code}."
TOOL: dict[str, Any] = dict.fromkeys(("idempotency_key", "appointment_id", "hold_id", "day_id"))
TOOL["replayed"] = False  # and patient_ref: whose hold or appointment, set per call


def now() -> datetime:
    return datetime.now(UTC)


class Traffic:
    """Calls in flight across tenants; each call is a generator yielding what one step changed."""

    def __init__(self, store: SchedulingApp, args: argparse.Namespace) -> None:
        self.store, self.rng, self.args = store, random.Random(args.seed), args
        self.tenants = [f"rw-{uuid4().hex[:6]}-{t}" for t in range(args.tenants)]
        self.patients: dict[str, list[Patient]] = {t: [] for t in self.tenants}
        self.tokens = {t: [uuid4().hex for _ in range(3)] for t in self.tenants}
        self.days: dict[tuple[str, int], list[Any]] = {}  # (tenant, provider) -> [day, used, n]
        self.recent = {t: deque[tuple[Appointment, ProviderDay]](maxlen=200) for t in self.tenants}
        self.positions: dict[Any, int] = {}  # appointment id -> its Booked event's position
        self.events, self.calls = 0, 0
        self.marks: list[tuple[int, datetime]] = []  # (events stored, time) after each save

    def save(self, *aggregates: Any) -> None:
        for r in self.store.save(*aggregates):
            self.events += 1
            if isinstance(r.domain_event, Appointment.Booked):
                self.positions[r.domain_event.originator_id] = r.notification.id
        self.marks.append((self.events, datetime.now(UTC)))  # the next save's events come after

    def register(self) -> None:
        for tenant in self.tenants:
            first = ("Ana", "Luis", "Mary", "John")
            batch = [
                Patient(tenant, f"p{j}", f"{first[j % 4]} Doe{j}", f"+1 555 {j:07d}",
                        f"19{50 + j % 50}-0{1 + j % 9}-1{j % 10}", "en")
                for j in range(self.args.patients)
            ]  # fmt: skip
            for i in range(0, len(batch), 250):
                self.save(*batch[i : i + 250])
            self.patients[tenant] = batch

    def slot(self, tenant: str) -> tuple[ProviderDay, datetime, datetime]:
        key = (tenant, self.rng.randrange(self.args.providers))
        entry = self.days.setdefault(key, [None, SLOTS_A_DAY, 0])
        if entry[1] == SLOTS_A_DAY:
            on = (FIRST_DAY + timedelta(days=entry[2])).isoformat()
            entry[:] = [ProviderDay(tenant, f"dr-{key[1]}", on, "UTC"), 0, entry[2] + 1]
        day, used = entry[0], entry[1]
        entry[1] += 1
        start = datetime.fromisoformat(day.date).replace(hour=8, tzinfo=UTC)
        start += timedelta(minutes=MINUTES * used)
        return day, start, start + timedelta(minutes=MINUTES)

    def say(self, call: Call, token: str, text: str, booked: Sequence[Appointment] = ()) -> None:
        """Store the text with the verdict the gate would give, knowing the call's bookings."""
        claim, codes = find_claim(text), find_codes(text)
        evidence = {a.confirmation_code: {"appointment_id": str(a.id), "status": a.status,
                    "version": a.version, "position": self.positions.get(a.id)} for a in booked}  # fmt: skip
        if codes:
            backing = [{"code": c, **evidence.get(c, {"status": "unknown"})} for c in codes]
            ok = all(b["status"] == ACTIVE for b in backing)
            reason = gate.BACKED_BY_CODE if ok else gate.CODE_NOT_VERIFIED
        elif claim is None:
            backing, ok, reason = [], True, gate.NO_CLAIM
        else:
            backing = [b for b in evidence.values() if b["status"] == ACTIVE]
            ok = bool(backing)
            reason = gate.BACKED_BY_BOOKING if ok else gate.NO_ACTIVE_BOOKING
            backing = backing or list(evidence.values())
        kind, phrase = (claim.kind, claim.phrase) if claim else (None, None)
        call.uttered(token, text, ok, reason, kind, phrase, codes, backing)

    def call(self, tenant: str) -> Iterator[list[Any]]:
        r = self.rng
        kind = r.choices(list(KINDS), list(KINDS.values()))[0]
        recent, patients = self.recent[tenant], self.patients[tenant]
        cancelling = recent.popleft() if kind == "cancel" and recent else None
        kind = "info" if kind == "cancel" and cancelling is None else kind
        patient = patients[int(cancelling[0].patient_ref[1:])] if cancelling else r.choice(patients)
        token, implicit, ref = r.choice(self.tokens[tenant]), r.random() < 0.1, patient.patient_ref
        self.calls += 1
        call = Call(tenant, f"c{self.calls:07d}", None if implicit else ref, "en", implicit, now())

        def tool(name: str, status: int, outcome: str, **more: Any) -> None:
            given = {"tool": name, "token_id": token, "status": status, "outcome": outcome}
            call.tool_called(**TOOL | given | {"patient_ref": ref} | more)

        yield [call]
        if implicit:
            call.describe(ref, "en")
        tool("availability", 200, f"{r.randint(2, 12)} slots")
        self.say(call, token, OFFER)
        yield [call]
        if kind == "lost":
            tool("hold", 409, "slot-unavailable")
            self.say(call, token, "Sorry, that slot was just taken. Let me find another one.")
            yield [call]
        elif kind in ("book", "abandon"):
            day, start, end = self.slot(tenant)
            hold_id, expires = str(uuid4()), now() + timedelta(seconds=self.args.hold_ttl)
            day.hold(hold_id, TYPE_ID, start, end, ref, call.call_id, expires)
            patient.take_hold(hold_id=hold_id, day_id=str(day.id), expires_at=expires)
            tool("hold", 201, "held", hold_id=hold_id, day_id=str(day.id))
            details = {"name": patient.name, "phone": patient.phone, "dob": patient.birth_date}
            self.say(call, token, DETAILS.format(**details))
            yield [day, patient, call]
            if kind == "abandon":
                self.say(call, token, FALSE_CLAIM)
                if r.random() < 0.5:  # released; the other half expire unused
                    day.release_hold(hold_id=hold_id)
                    patient.end_hold(hold_id=hold_id, outcome="released")
                    tool("release-hold", 200, "released", hold_id=hold_id)
                yield [day, patient, call]
            else:
                code = new_code()
                a = Appointment(tenant, ref, day.provider_id, TYPE_ID, start, end, "UTC", day.id,
                                code, call.call_id, hold_id)  # fmt: skip
                index = ConfirmationCode(tenant_id=tenant, code=code, appointment_id=a.id)
                day.book(appointment_id=str(a.id), start=start, end=end, hold_id=hold_id)
                patient.end_hold(hold_id=hold_id, outcome="converted")
                patient.add_appointment(appointment_id=str(a.id))
                key = str(uuid4())
                tool("book", 201, "booked", idempotency_key=key, appointment_id=str(a.id))
                self.recent[tenant].append((a, day))
                yield [a, index, day, patient, call]
                if r.random() < 0.1:  # the platform retried the tool call
                    tool("book", 201, "replayed", idempotency_key=key, replayed=True,
                         appointment_id=str(a.id))  # fmt: skip
                self.say(call, token, r.choice(CLAIMS), [a])
                yield [call]
                self.say(call, token, CODE.format(code=f"{code[:3]}-{code[3:]}"), [a])
                yield [call]
        elif cancelling:
            a, day = cancelling
            a.cancel(reason="patient asked", by_role="agent", call_id=call.call_id)
            day.release_booking(appointment_id=str(a.id), reason="cancelled")
            tool("cancel", 200, "cancelled", appointment_id=str(a.id))
            yield [a, day, call]
        else:  # a code the patient read from somewhere else: refused
            self.say(call, token, CODE.format(code=new_code()))
            yield [call]
        call.end(r.randint(40, 600), kind, r.randint(5, 90), now())
        yield [call]

    def run(self) -> tuple[datetime, datetime]:
        began, shown, start = time.perf_counter(), time.perf_counter(), datetime.now(UTC)
        self.register()
        flying = [self.call(t) for t in self.tenants for _ in range(self.args.in_flight)]
        while self.events < self.args.events:
            touched: dict[Any, Any] = {}
            for i, script in enumerate(flying):
                step = next(script, None)
                if step is None:
                    flying[i] = self.call(self.tenants[i % len(self.tenants)])
                    step = next(flying[i])
                touched.update((a.id, a) for a in step)
            self.save(*touched.values())
            if time.perf_counter() - shown >= 3:
                shown, rate = time.perf_counter(), self.events / (time.perf_counter() - began)
                print(f"[seed] {self.events:,} events, {self.calls:,} calls, {rate:,.0f} ev/s")
        end = datetime.now(UTC)
        seconds = time.perf_counter() - began
        print(f"[seed] {self.events:,} events in {seconds:.1f}s ({self.events / seconds:,.0f}/s)")
        return start, end

    def time_at(self, share: float) -> datetime:
        return next(at for n, at in self.marks if n >= share * self.events)


def baseline(
    store: SchedulingApp, windows: list[tuple[datetime, datetime]]
) -> tuple[float, list[int]]:
    """Events/s reading and decoding the whole log; how many events fall in each window."""
    counts, position, n = [0] * len(windows), 0, 0
    began = time.perf_counter()
    while page := store.recorder.select_notifications(
        start=position, limit=PAGE, inclusive_of_start=False
    ):
        for note in page:
            at = store.mapper.to_domain_event(note).timestamp  # type: ignore[attr-defined]
            for i, (start, end) in enumerate(windows):
                counts[i] += start <= at < end
        n, position = n + len(page), page[-1].id
    return n / (time.perf_counter() - began), counts


def replay(env: dict[str, str], start: datetime, end: datetime) -> dict[str, Any]:
    """Run `booking replay window` in a child; its wall time, memory and what it wrote."""
    argv = [sys.executable, "-m", "booking.cli", "replay", "window", "--json"]
    argv += ["--from", start.isoformat(), "--to", end.isoformat()]
    rss: list[int] = [0]  # the child's VmRSS every 50 ms, kB
    peak = 0  # its VmHWM: ru_maxrss would not do, Linux keeps the forking parent's RSS in it
    with tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        while child.poll() is None:
            with suppress(OSError, IndexError, ValueError):
                status = Path(f"/proc/{child.pid}/status").read_text()
                rss.append(int(status.split("VmRSS:")[1].split()[0]))
                peak = max(peak, int(status.split("VmHWM:")[1].split()[0]))
            time.sleep(0.05)
        wall = time.perf_counter() - began
        err.seek(0)
        text = err.read().decode(errors="replace")
    if child.returncode != 0:
        raise SystemExit(f"replay failed ({child.returncode}):\n{text[-2000:]}")
    lines = re.search(r"([\d,]+) lines", text)
    return {
        "wall": wall,
        "peak_mb": peak / 1024,
        "rss_mb_by_quarter": [round(rss[len(rss) * q // 4 - 1] / 1024) for q in (1, 2, 3, 4)],
        "lines": int(lines.group(1).replace(",", "")) if lines else -1,
        "bar": text.count("\r") if "replay [" in text else 0,
        "last": text.rsplit("\r", 1)[-1].splitlines()[0].strip() if "\r" in text else "",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--events", type=int, default=100_000, help="events to seed (about)")
    p.add_argument("--tenants", type=int, default=3)
    p.add_argument("--patients", type=int, default=1000, help="patients per tenant")
    p.add_argument("--providers", type=int, default=12, help="providers per tenant")
    p.add_argument("--in-flight", type=int, default=15, help="calls in flight per tenant")
    p.add_argument("--hold-ttl", type=float, default=5.0, help="seconds (short: they expire)")
    p.add_argument("--seed", type=int, default=7, help="random seed")
    p.add_argument("--database-url", default=os.environ.get("BOOKING_DATABASE_URL"))
    p.add_argument("--admin-database-url", default=os.environ.get("BOOKING_ADMIN_DATABASE_URL"))
    args = p.parse_args()
    key = base64.b64encode(os.urandom(32)).decode()
    with ExitStack() as stack:
        runtime_url, admin_url, _ = database(stack, args, "replay")
        prepare_database(admin_url, runtime_url, key)
        store = open_store(runtime_url, key)
        stack.callback(store.close)
        traffic = Traffic(store, args)
        start, end = traffic.run()
        end += timedelta(milliseconds=1)  # --to is exclusive
        windows = {
            "empty": (start - timedelta(seconds=2), start - timedelta(seconds=1)),
            "whole": (start, end),
            "10%": (traffic.time_at(0.45), traffic.time_at(0.55)),
        }
        home = stack.enter_context(tempfile.TemporaryDirectory(prefix="booking-replay-home-"))
        env = os.environ | {"BOOKING_HOME": home, "BOOKING_CIPHER_KEY": key}
        env |= {"BOOKING_DATABASE_URL": runtime_url, "BOOKING_ADMIN_DATABASE_URL": admin_url}
        baseline(store, [])  # warm the buffer cache, untimed
        before, counts = baseline(store, list(windows.values()))
        print(f"[baseline] {before:,.0f} events/s; replaying windows {list(windows)}", flush=True)
        runs = {name: replay(env, *window) for name, window in windows.items()}
        after, _ = baseline(store, [])
    base, idle = (before + after) / 2, runs["empty"]
    print(f"\nbaseline read+decode: {base:,.0f} events/s (before {before:,.0f}, after {after:,.0f})")  # fmt: skip
    print(f"{'window':<7}{'events':>9}{'lines':>8}{'wall s':>8}{'net s':>7}{'lines/s':>9}"
          f"{'events/s':>10}{'/base':>7}{'peak RSS':>10}  RSS by quarter of the run  bar")  # fmt: skip
    for (name, run), events in zip(runs.items(), counts, strict=True):
        net = max(run["wall"] - idle["wall"], 1e-9) if name != "empty" else run["wall"]
        print(
            f"{name:<7}{events:>9,}{run['lines']:>8,}{run['wall']:>8.1f}{net:>7.1f}"
            f"{run['lines'] / net:>9,.0f}{events / net:>10,.0f}{events / net / base:>7.0%}"
            f"{run['peak_mb']:>8.0f}MB  {str(run['rss_mb_by_quarter']) + ' MB':<26}"
            f"{run['bar']:>4} updates"
        )
    print(f"net s: wall minus the empty window's (start-up); last bar: {runs['whole']['last']!r}")
    s, e = windows["whole"]
    print(f"command: python -m booking.cli replay window --json --from {s.isoformat()} --to"
          f" {e.isoformat()} >/dev/null  (BOOKING_DATABASE_URL, BOOKING_ADMIN_DATABASE_URL,"
          f" BOOKING_CIPHER_KEY, BOOKING_HOME set)")  # fmt: skip


if __name__ == "__main__":
    main()
