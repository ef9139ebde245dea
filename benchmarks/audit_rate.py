"""AuditLog.append side by side: the version at a git ref (``--base``, default main; several
refs: ``--base main,HEAD~1``) against the working tree's, on one embedded PostgreSQL, alternating rounds so both see the same noise.

Each round runs ``--clients`` concurrent callers on one tenant's chain for ``--seconds``, in the
mode the API uses (``hook``: coroutines on one event loop awaiting the entry, the way
``api/auditing.py`` does it for that version) or plain threads calling ``append`` (``threads``).
It reports appends/s, CPU milliseconds per append of this Python process (every thread) and of
the PostgreSQL server (postmaster and all its children), and verifies every chain at the end.
Only the ratios mean anything (README.md, "Throughput"). From the repo root:

    .venv/bin/python benchmarks/audit_rate.py --rounds 3 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from litestar.concurrency import sync_to_thread  # noqa: E402

from booking import embedded  # noqa: E402
from booking.schema import prepare_database  # noqa: E402
from booking.store import open_store  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def module_at(ref: str) -> types.ModuleType:
    """booking/audit.py as it stands at ``ref`` (or the file at that path), as a module."""
    if Path(ref).is_file():
        source, where = Path(ref).read_text(), ref
    else:
        source = subprocess.run(
            ["git", "show", f"{ref}:booking/audit.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        where = f"{ref}:booking/audit.py"
    module = types.ModuleType(f"audit_at_{len(sys.modules)}")
    module.__file__ = where
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def server_cpu(pgdata: Path) -> float:
    """CPU seconds used so far by the postmaster and its live children."""
    postmaster = int((pgdata / "postmaster.pid").read_text().split()[0])
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid, ppid = int(entry.name), int(fields[1])
        if postmaster in (pid, ppid):
            total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / TICKS


def count_transactions(log: Any) -> list[int]:
    """Count the connections the log checks out of its pool: one per batch it writes."""
    counter, checkout = [0], log.datastore.get_connection

    def counted() -> Any:
        counter[0] += 1
        return checkout()

    log.datastore.get_connection = counted
    return counter


def entry(tenant: str) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "at": datetime.now(UTC),
        "principal": str(uuid4()),
        "role": "agent",
        "action": "POST /v1/agent/bookings",
        "patient_ref": "pat-1",
        "status": 201,
        "request_id": uuid4(),
    }


def run_threads(append: Callable[..., None], tenant: str, clients: int, seconds: float) -> int:
    counts, end = [0] * clients, time.perf_counter() + seconds

    def loop(i: int) -> None:
        while time.perf_counter() < end:
            append(**entry(tenant))
            counts[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def run_hook(log: Any, tenant: str, clients: int, seconds: float) -> int:
    """What api/auditing.py does per request: its own awaitable if the version has one."""
    if hasattr(log, "append_async"):

        async def one() -> None:
            await log.append_async(**entry(tenant))
    else:

        async def one() -> None:
            await sync_to_thread(log.append, **entry(tenant))

    async def main() -> int:
        end, count = time.perf_counter() + seconds, 0

        async def loop() -> None:
            nonlocal count
            while time.perf_counter() < end:
                await one()
                count += 1

        await asyncio.gather(*(loop() for _ in range(clients)))
        return count

    return asyncio.run(main())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--base",
        default="main",
        help="git ref(s) of booking/audit.py to compare, comma-separated; the first is the baseline",
    )
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=5.0, help="per variant per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--mode", choices=("hook", "threads"), default="hook")
    args = p.parse_args()
    key = base64.b64encode(os.urandom(32)).decode()
    from booking import audit as current

    refs = [ref.strip() for ref in args.base.split(",") if ref.strip()]
    variants = {ref: module_at(ref) for ref in refs} | {"working tree": current}
    with ExitStack() as stack:
        home = Path(tempfile.mkdtemp(prefix="audit-bench-"))
        stack.callback(shutil.rmtree, home, ignore_errors=True)
        server = embedded.start(home, delete_on_stop=True)
        stack.callback(server.stop)
        runtime_url, admin_url = embedded.ensure_roles_and_database(server)
        prepare_database(admin_url, runtime_url, key)
        logs, tenants, batches = {}, {}, {}
        for name, module in variants.items():
            store = open_store(runtime_url, key)
            stack.callback(store.close)
            logs[name], tenants[name] = module.AuditLog(store), f"bench-{uuid4().hex[:8]}"
            batches[name] = count_transactions(logs[name])
        # appends, wall, own CPU, server CPU, batches
        totals: dict[str, list[float]] = {name: [0, 0.0, 0.0, 0.0, 0] for name in variants}
        print(f"{args.clients} clients, mode {args.mode}, {args.rounds} rounds x {args.seconds}s")
        for round_ in range(args.rounds + 1):  # round 0 warms up
            for name in variants:
                own, pg, wall = time.process_time(), server_cpu(home / "pgdata"), time.time()
                writes = batches[name][0]
                if args.mode == "hook":
                    n = run_hook(logs[name], tenants[name], args.clients, args.seconds)
                else:
                    n = run_threads(logs[name].append, tenants[name], args.clients, args.seconds)
                wall, own = time.time() - wall, time.process_time() - own
                pg = server_cpu(home / "pgdata") - pg
                writes = batches[name][0] - writes
                print(
                    f"  round {round_} {name:<16} {n / wall:8.0f}/s"
                    f"  python {own / n * 1e3:6.3f} ms/append  postgres {pg / n * 1e3:6.3f} ms/append"
                    f"  {n / writes:5.1f} appends/batch",
                    flush=True,
                )
                if round_:
                    for i, v in enumerate((n, wall, own, pg, writes)):
                        totals[name][i] += v
        print(
            f"\n{'variant':<20}{'appends/s':>10}{'py ms/append':>14}{'pg ms/append':>14}"
            f"{'per batch':>11}"
        )
        for name, (count, seconds, py, pg_cpu, commits) in totals.items():
            print(
                f"{name:<20}{count / seconds:>10.0f}{py / count * 1e3:>14.3f}"
                f"{pg_cpu / count * 1e3:>14.3f}{count / commits:>11.1f}"
            )
        (b, bw, bo, bp, _) = totals[refs[0]]
        for name, (c, cw, co, cp, _) in list(totals.items())[1:]:
            print(
                f"{name} / {refs[0]}: rate {c / cw / (b / bw):.2f}x,"
                f" python CPU per append {co / c / (bo / b):.2f}x,"
                f" postgres CPU per append {cp / c / (bp / b):.2f}x"
            )
        for name, log in logs.items():
            checked, problems = log.verify([tenants[name]])
            print(f"verify {name}: {checked} entries, problems: {problems or 'none'}")
            if problems:
                sys.exit(1)


if __name__ == "__main__":
    main()
