"""A TCP proxy between a client and PostgreSQL that cuts a connection at a chosen moment, as a
network failure would. Nothing is faked: the server runs every statement it receives, and the
client sees the connection drop exactly as it would if a cable were pulled.

``cut_before(marker)``: the next client message holding ``marker`` is not forwarded; the server
never runs it. ``cut_after_commit(marker)``: the next client message holding ``marker`` is
forwarded, the server runs it and answers up to ReadyForQuery (so a COMMIT in it has committed),
and that answer is thrown away instead of reaching the client. ``cut_client_after(marker)``: the
message is forwarded up to its pipeline's Sync, then the client's side is cut while the server's
side stays open: the server runs the pipeline whenever it gets to it (after a lock wait, say),
answering no one.

Markers are matched against the SQL a client message runs: simple queries, statements parsed,
and statements psycopg prepared earlier (after five runs on a connection a statement travels by
name only; the proxy remembers the names each connection parsed).
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlencode

from psycopg.conninfo import conninfo_to_dict

READY_FOR_QUERY = b"Z\x00\x00\x00\x05"  # then one status byte: I, T or E
SSL_REQUEST, GSSENC_REQUEST = 80877103, 80877104  # answered with one byte; startup follows


class FaultProxy:
    def __init__(self, url: str) -> None:
        params = conninfo_to_dict(url)
        host, port = str(params.get("host") or "localhost"), int(params.get("port") or 5432)
        self._target: tuple[int, str | tuple[str, int]] = (
            (socket.AF_UNIX, f"{host}/.s.PGSQL.{port}")
            if host.startswith("/")
            else (socket.AF_INET, (host, port))
        )
        self._params = {k: str(v) for k, v in params.items() if k not in ("host", "port")}
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._armed: tuple[str, bytes] | None = None
        self.fired = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """The same database, reached through this proxy."""
        return f"postgresql://127.0.0.1:{self.port}/?{urlencode(self._params)}"

    def cut_before(self, marker: bytes) -> None:
        self._arm("before", marker)

    def cut_after_commit(self, marker: bytes) -> None:
        self._arm("after", marker)

    def cut_client_after(self, marker: bytes) -> None:
        self._arm("client", marker)

    def _arm(self, mode: str, marker: bytes) -> None:
        with self._lock:
            self._armed, self.fired = (mode, marker), threading.Event()

    def _take(self, statements: list[tuple[bytes, int]]) -> tuple[str | None, int]:
        """The armed mode, disarmed, if one of these statements (SQL, and the count of Syncs
        before it) is the one to cut; with that count."""
        with self._lock:
            if self._armed is not None:
                for sql, syncs in statements:
                    if self._armed[1] in sql:
                        mode, self._armed = self._armed[0], None
                        return mode, syncs
        return None, 0

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.socket(self._target[0], socket.SOCK_STREAM)
            try:
                server.connect(self._target[1])
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            link = _Link(self, client, server)
            threading.Thread(target=link.client_to_server, daemon=True).start()
            threading.Thread(target=link.server_to_client, daemon=True).start()


class _Link:
    """One client connection and its server connection."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, server: socket.socket) -> None:
        self.proxy, self.client, self.server = proxy, client, server
        self.swallow_reply = threading.Event()
        self.pending = b""  # client bytes not yet a whole message
        self.started = False  # past the startup message (which has no type byte)
        self.parsed: dict[bytes, bytes] = {}  # prepared statement name -> its SQL
        self.syncs = 0  # Sync messages received: each ends a pipeline

    def sql_of(self, data: bytes) -> list[tuple[bytes, int]]:
        """The SQL the whole client messages received so far run (PostgreSQL's v3 protocol):
        Query texts, Parse texts, and the text behind each Bind's statement name; each with the
        number of Syncs the client had sent before it."""
        self.pending += data
        texts: list[tuple[bytes, int]] = []
        while True:
            if not self.started:
                if len(self.pending) < 8:
                    break
                length = int.from_bytes(self.pending[:4], "big")
                if len(self.pending) < length:
                    break
                code = int.from_bytes(self.pending[4:8], "big")
                self.pending = self.pending[length:]
                self.started = code not in (SSL_REQUEST, GSSENC_REQUEST)
                continue
            if len(self.pending) < 5:
                break
            kind, length = self.pending[:1], int.from_bytes(self.pending[1:5], "big")
            if len(self.pending) < 1 + length:
                break
            body, self.pending = self.pending[5 : 1 + length], self.pending[1 + length :]
            if kind == b"Q":
                texts.append((body, self.syncs))
            elif kind == b"P":
                name, query = body.split(b"\0", 2)[:2]
                self.parsed[name] = query
                texts.append((query, self.syncs))
            elif kind == b"B":
                statement = body.split(b"\0", 2)[1]
                texts.append((self.parsed.get(statement, b""), self.syncs))
            elif kind == b"S":
                self.syncs += 1
        return texts

    def cut(self) -> None:
        for s in (self.client, self.server):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.proxy.fired.set()

    def client_to_server(self) -> None:
        cut_client_after: int | None = None  # cut once the client sent more Syncs than this
        for data in _chunks(self.client):
            mode, syncs = self.proxy._take(self.sql_of(data))
            if mode == "before":
                self.cut()
                return
            if mode == "after":
                self.swallow_reply.set()
            if mode == "client":
                cut_client_after = syncs
            try:
                self.server.sendall(data)
            except OSError:
                return
            if cut_client_after is not None and self.syncs > cut_client_after:
                # the statement's pipeline went whole, to its Sync: the server will run it
                with contextlib.suppress(OSError):
                    self.client.shutdown(socket.SHUT_RDWR)
                self.client.close()
                self.proxy.fired.set()
                return  # the server's side stays open until the server is done with it
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_WR)

    def server_to_client(self) -> None:
        held = b""
        for data in _chunks(self.server):
            if self.swallow_reply.is_set():
                held = held[-16:] + data  # until the server is ready: the COMMIT has run
                if READY_FOR_QUERY in held:
                    self.cut()
                    return
                continue
            try:
                self.client.sendall(data)
            except OSError:
                return
        with contextlib.suppress(OSError):
            self.client.shutdown(socket.SHUT_WR)


def _chunks(sock: socket.socket) -> Iterator[bytes]:
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return
        if not data:
            return
        yield data
