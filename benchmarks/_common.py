"""What the benchmark scripts share: their database (the one given, or an embedded server of
their own), how they start an API server, and the bench tenant's slots. Import after the script has put the repo root on
``sys.path``."""

from __future__ import annotations

import argparse
import itertools
import shutil
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from booking import embedded
from booking.calendar import Slot

TYPE_ID, MINUTES, OPEN, CLOSE = "bench", 15, 8, 20  # 48 slots a day, 08:00-20:00 UTC


def database(stack: ExitStack, args: argparse.Namespace, name: str) -> tuple[str, str, int | None]:
    """(runtime URL, admin URL, the embedded postmaster's pid or None for a server given by
    ``--database-url`` and ``--admin-database-url``); an embedded one is removed at the end."""
    if args.database_url or args.admin_database_url:
        if not (args.database_url and args.admin_database_url):
            raise SystemExit("give both --database-url and --admin-database-url, or neither")
        return str(args.database_url), str(args.admin_database_url), None
    home = Path(tempfile.mkdtemp(prefix=f"booking-{name}-"))
    print(f"starting embedded PostgreSQL in {home}", flush=True)
    server = embedded.start(home, delete_on_stop=True)
    stack.callback(print, "embedded PostgreSQL stopped", flush=True)  # callbacks run last first
    stack.callback(shutil.rmtree, home, ignore_errors=True)
    stack.callback(server.stop)
    runtime_url, admin_url = embedded.ensure_roles_and_database(server)
    pid = int((home / "pgdata" / "postmaster.pid").read_text().split()[0])
    return runtime_url, admin_url, pid


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def uvicorn_argv(factory: str, port: int, *extra: str) -> list[str]:
    """The command line of a quiet uvicorn serving an ASGI app factory on 127.0.0.1:port."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        factory,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        *extra,
    ]


def slot_ids(provider_id: str, first: date) -> Iterator[str]:
    """Every slot of ``provider_id`` from ``first`` on, given the weekly hours the benchmarks
    set (OPEN to CLOSE, every day)."""
    for day in (first + timedelta(days=n) for n in itertools.count()):
        opening = datetime(day.year, day.month, day.day, OPEN, tzinfo=UTC)
        for i in range((CLOSE - OPEN) * 60 // MINUTES):
            s = opening + timedelta(minutes=i * MINUTES)
            yield Slot(provider_id, TYPE_ID, s, s + timedelta(minutes=MINUTES)).slot_id
