"""The real HTTP app on a real port, and helpers that set a tenant up through the public API only."""

from __future__ import annotations

import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from booking.clock import ManualClock
from booking.settings import Settings

ADMIN_TOKEN = "admin-test-token"
STARTUP_TIMEOUT_SECONDS = 30.0


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def expect(response: httpx.Response, *statuses: int) -> Any:
    """The JSON body of ``response``, after checking its status (the body is in the message)."""
    if response.status_code not in statuses:
        raise AssertionError(
            f"{response.request.method} {response.request.url.path} answered "
            f"{response.status_code}, expected {' or '.join(map(str, statuses))}: {response.text}"
        )
    return response.json() if response.content else None


@dataclass
class LiveServer:
    base_url: str
    clock: ManualClock
    settings: Settings
    admin_headers: dict[str, str] = field(default_factory=lambda: bearer(ADMIN_TOKEN))
    app: Any = None  # the Litestar app being served: app.state.services once started

    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 30)
        return httpx.Client(base_url=self.base_url, **kwargs)


class _Collect(logging.Handler):
    """Keeps what uvicorn logs, so a failed startup reports why instead of just timing out."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.lines.append(text)


class RunningServer:
    """uvicorn serving ``app`` from a daemon thread on a free local port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP,
        # and accepted connections inherit it. Without it every answer written in two parts (head,
        # body) waited for the client's delayed ACK: ~40 ms per request instead of ~2 ms.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._error: BaseException | None = None
        self._log = _Collect()
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    def _run(self) -> None:
        try:
            # handing uvicorn a bound socket means the port cannot be taken between choosing and using it
            self._server.run(sockets=[self._socket])
        except BaseException as exc:
            self._error = exc

    def start(self, timeout: float = STARTUP_TIMEOUT_SECONDS) -> None:
        logging.getLogger("uvicorn.error").addHandler(self._log)  # lifespan errors land here
        self._thread.start()
        deadline = time.monotonic() + timeout
        last: str = "no answer yet"
        with httpx.Client(base_url=self.base_url, timeout=2) as client:
            while True:
                if not self._thread.is_alive():
                    self._release_socket()
                    raise RuntimeError(f"the live server stopped during startup: {self._why()}")
                try:
                    response = client.get("/health")
                    if response.status_code == 200:
                        return
                    last = f"GET /health answered {response.status_code}: {response.text[:500]}"
                except httpx.TransportError as exc:
                    last = f"GET /health failed: {exc!r}"
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"the live server did not answer GET /health with 200 within {timeout:.0f} s "
                        f"({last}); {self._why()}"
                    )
                time.sleep(0.05)

    def _why(self) -> str:
        parts = []
        if isinstance(
            self._error, SystemExit
        ):  # uvicorn's way to say startup failed; its log says why
            parts.append(f"uvicorn exited with status {self._error.code}")
        elif self._error is not None:
            parts.append("".join(traceback.format_exception(self._error)).strip())
        parts.extend(self._log.lines)
        return "\n".join(parts) or "nothing was logged"

    def _release_socket(self) -> None:
        logging.getLogger("uvicorn.error").removeHandler(self._log)
        self._socket.close()

    def stop(self, timeout: float = 30) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)
        self._release_socket()
        if self._thread.is_alive():
            raise RuntimeError(f"the live server did not stop within {timeout:.0f} s")


@dataclass
class Tenant:
    server: LiveServer
    tenant_id: str
    staff_headers: dict[str, str]
    agent_headers: dict[str, str]

    def token(
        self,
        role: str,
        patient_ref: str | None = None,
        call_id: str | None = None,
        ttl_seconds: int | None = None,
    ) -> dict[str, str]:
        """Headers carrying a new token of ``role`` for this tenant, issued by the platform admin."""
        body: dict[str, Any] = {"role": role}
        if patient_ref is not None:
            body["patient_ref"] = patient_ref
        if call_id is not None:
            body["call_id"] = call_id
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        with self.server.client() as client:
            answer = expect(
                client.post(
                    f"/v1/admin/tenants/{self.tenant_id}/tokens",
                    json=body,
                    headers=self.server.admin_headers,
                ),
                201,
            )
        return bearer(answer["token"])


def seed_tenant(server: LiveServer, tenant_id: str, timezone: str = "America/New_York") -> Tenant:
    """Create a tenant and a staff and an agent token for it, as the platform admin would."""
    with server.client() as client:
        expect(
            client.post(
                "/v1/admin/tenants",
                json={"tenant_id": tenant_id, "name": f"Clinic {tenant_id}", "timezone": timezone},
                headers=server.admin_headers,
            ),
            201,
        )
    tenant = Tenant(server=server, tenant_id=tenant_id, staff_headers={}, agent_headers={})
    tenant.staff_headers = tenant.token("staff")
    tenant.agent_headers = tenant.token("agent")
    return tenant


def business_hours(
    start: str = "09:00", end: str = "12:00", weekdays: Iterable[int] = range(7)
) -> list[dict[str, Any]]:
    return [{"weekday": day, "start": start, "end": end} for day in weekdays]


@dataclass(frozen=True)
class Practice:
    provider_id: str
    type_id: str
    duration: int
    patients: tuple[str, ...]


def setup_practice(
    server: LiveServer,
    tenant: Tenant,
    provider_id: str = "dr-a",
    type_id: str = "checkup",
    duration: int = 30,
    hours: Sequence[Mapping[str, Any]] | None = None,
    patients: Sequence[str] = ("pat-1", "pat-2"),
) -> Practice:
    """A provider with weekly hours (every day 09:00-12:00 unless told), one type, some patients."""
    hours = business_hours() if hours is None else hours
    headers = tenant.staff_headers
    with server.client() as client:
        expect(
            client.post(
                "/v1/staff/providers",
                json={"provider_id": provider_id, "name": f"Dr {provider_id}"},
                headers=headers,
            ),
            201,
        )
        expect(
            client.post(
                "/v1/staff/appointment-types",
                json={"type_id": type_id, "name": type_id.title(), "duration_minutes": duration},
                headers=headers,
            ),
            201,
        )
        expect(
            client.put(
                f"/v1/staff/providers/{provider_id}/weekly-hours",
                json={"hours": [dict(h) for h in hours]},
                headers=headers,
            ),
            200,
        )
        for number, patient_ref in enumerate(patients, start=1):
            expect(
                client.post(
                    "/v1/staff/patients",
                    json={
                        "patient_ref": patient_ref,
                        "name": f"Patient {patient_ref}",
                        "phone": f"+1555010{number:04d}",
                        "birth_date": "1980-01-01",
                    },
                    headers=headers,
                ),
                201,
            )
    return Practice(
        provider_id=provider_id, type_id=type_id, duration=duration, patients=tuple(patients)
    )
