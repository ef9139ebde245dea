"""``booking`` command line: ``booking serve [--host] [--port] [--demo] [--nats]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from booking.settings import Settings, SettingsError

if TYPE_CHECKING:
    from booking.runtime import Runtime
    from booking.store import SchedulingApp

log = logging.getLogger("booking")


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


class UsageError(Exception):
    """A mistake on the command line: printed as ``booking: ...`` with exit status 2."""


@contextmanager
def opened_store(*, prepare: bool = True) -> Iterator[tuple[Runtime, SchedulingApp]]:
    """The runtime (embedded server or URLs) and the event store, closed on the way out."""
    from booking.runtime import resolve
    from booking.schema import prepare_database
    from booking.store import open_store

    runtime = resolve(Settings.from_env())
    try:
        if prepare:
            prepare_database(runtime.admin_database_url, runtime.database_url, runtime.cipher_key)
        store = open_store(runtime.database_url, runtime.cipher_key)
        try:
            yield runtime, store
        finally:
            store.close()
    finally:
        runtime.close()


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.services import Services
    from fanout.nats_server import configured

    def announce(services: Services) -> None:
        if args.demo:
            from booking import demo

            staff, agent = demo.seed(services.setup, services.tokens)
            print(
                f"\nDemo clinic '{demo.TENANT}' is ready at http://{args.host}:{args.port}\n"
                f"  export STAFF={staff.token}\n  export AGENT={agent.token}\n"
                f"  (tokens expire {agent.expires_at:%Y-%m-%d %H:%M} UTC for the agent)\n",
                flush=True,
            )

    with configured(args.nats, Settings.from_env()) as settings:
        app = create_app(settings, on_ready=announce)
        uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True)
    return 0


def project(args: argparse.Namespace) -> int:
    """Run the projection worker alone (production runs it beside stateless API replicas)."""
    import signal

    from projections.catalog import PROJECTIONS
    from projections.worker import ProjectionWorker

    with opened_store() as (runtime, store):
        worker = ProjectionWorker(store, PROJECTIONS, runtime.database_url)

        def stop(signum: int, _: object) -> None:
            log.info("signal %d: stopping the projection worker", signum)
            worker.stop(timeout=0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("projection worker running: %s", ", ".join(p.name for p in PROJECTIONS))
        worker.run_forever()
    return 0


def relay(args: argparse.Namespace) -> int:
    """Run the NATS relay alone (production runs one beside stateless API replicas)."""
    import signal

    from fanout.nats_server import configured
    from fanout.relay import Relay

    with configured(args.nats, Settings.from_env()) as settings:
        if not settings.nats_url:
            raise UsageError("set BOOKING_NATS_URL or pass --nats URL|embedded")
        with opened_store() as (runtime, store):
            relay = Relay(store, runtime.database_url, settings.nats_url)

            def stop(signum: int, _: object) -> None:
                log.info("signal %d: stopping the relay", signum)
                relay.stop(timeout=0)

            signal.signal(signal.SIGTERM, stop)
            signal.signal(signal.SIGINT, stop)
            log.info("relay running: event log to JetStream stream %s", relay.stream)
            relay.run_forever()
    return 0


def projections_command(args: argparse.Namespace) -> int:
    """``booking projections status`` and ``booking projections rebuild NAME|--all``."""
    from psycopg.conninfo import conninfo_to_dict

    from projections.catalog import BY_NAME, PROJECTIONS
    from projections.reads import lag
    from projections.rebuild import Rebuilder, progress_bar

    if args.action == "rebuild":
        if bool(args.all) == bool(args.name):
            raise UsageError("name one projection or pass --all")
        if args.name and args.name not in BY_NAME:
            raise UsageError(f"no projection {args.name!r}; known: {', '.join(BY_NAME)}")
    with opened_store() as (runtime, store):
        if args.action == "status":
            print(f"{'projection':<12}{'position':>10}{'lag events':>12}{'lag seconds':>13}")
            for p in PROJECTIONS:
                state = lag(store, p)
                print(
                    f"{p.name:<12}{state['position']:>10}{state['lag_events']:>12}"
                    f"{state['lag_seconds']:>13.1f}"
                )
            return 0
        role = str(conninfo_to_dict(runtime.database_url).get("user") or "")
        rebuilder = Rebuilder(store, runtime.admin_database_url, role)
        for p in PROJECTIONS if args.all else (BY_NAME[args.name],):
            result = rebuilder.rebuild(p, progress_bar(p.name))
            print(
                f"{result.name}: {result.events:,} events in {result.seconds:.1f} s, "
                f"swapped in at position {result.position}"
            )
    return 0


def tokens_command(args: argparse.Namespace) -> int:
    """``booking tokens revoke TOKEN_ID``."""
    from uuid import UUID

    from booking.clock import SystemClock
    from booking.tokens import TokenStore

    try:
        token_id = UUID(args.token_id)
    except ValueError:
        raise UsageError(f"{args.token_id!r} is not a token id (a UUID)") from None
    with opened_store(prepare=False) as (_, store):
        if not TokenStore(store, SystemClock(), None).revoke(token_id):
            print(f"booking: no live token {token_id}", file=sys.stderr)
            return 1
    print(f"revoked {token_id}")
    return 0


def audit_command(args: argparse.Namespace) -> int:
    """``booking audit verify [--tenant T]``: check each tenant's hash chain."""
    from booking.audit import PLATFORM, AuditLog

    with opened_store() as (_, store):
        tenants = [args.tenant] if args.tenant else [PLATFORM, *known_tenants(store)]
        checked, problems = AuditLog(store).verify(tenants)
    for problem in problems:
        print(problem)
    if problems:
        print(f"audit chain BROKEN in {len(problems)} of {len(tenants)} tenants")
        return 1
    print(f"audit chain intact: {checked} entries in {len(tenants)} tenants")
    return 0


def replay_command(args: argparse.Namespace) -> int:
    """``booking replay call|patient|appointment|day|window``: incident timelines from the log."""
    import getpass
    import json
    import time
    from collections.abc import Iterable
    from datetime import UTC, date, datetime
    from uuid import UUID, uuid4

    from booking import incident
    from booking.audit import AuditLog
    from booking.days import ProviderDay
    from booking.errors import NotFound
    from booking.replay import Describer, Masker
    from projections.rebuild import progress_bar

    target = args.target
    if target in ("call", "patient", "day") and not args.tenant:
        raise UsageError(f"replay {target} needs --tenant: its ids are per clinic")
    if args.show_phi and not args.tenant:
        raise UsageError("--show-phi needs --tenant: each disclosure is audited in that clinic")
    at_time = at_position = None
    if getattr(args, "at", None):
        try:
            at_time, at_position = incident.parse_at(args.at)
        except ValueError as exc:
            raise UsageError(f"--at: {exc}") from None

    def instant(raw: str, flag: str) -> datetime:
        try:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"{flag} {raw!r} is not an RFC 3339 time") from None
        if moment.tzinfo is None:
            raise UsageError(f"{flag} needs an offset (…Z or …-05:00)")
        return moment

    def emit(line: Any) -> None:
        print(line.as_json() if args.json else line.as_text())

    with opened_store(prepare=False) as (_, store):
        describer = Describer(Masker(args.show_phi))

        def disclose(patients: Iterable[str | None]) -> None:
            """--show-phi is itself audited: one entry per patient whose data is shown."""
            if not args.show_phi:
                return
            log_ = AuditLog(store)
            named: list[str | None] = [*sorted({p for p in patients if p})]
            for patient_ref in named or [None]:
                log_.append(
                    tenant_id=args.tenant,
                    at=datetime.now(UTC),
                    principal=f"cli:{getpass.getuser()}",
                    role="analyst",
                    action=f"replay {target} --show-phi",
                    patient_ref=patient_ref,
                    status=200,
                    request_id=uuid4(),
                )

        try:
            if target == "window":
                start, end = instant(args.start, "--from"), instant(args.end, "--to")
                if end <= start:
                    raise UsageError("--to must be after --from")
                disclose([])
                bar = progress_bar("replay")
                began = time.monotonic()
                shown = 0
                for line in incident.window_timeline(
                    store,
                    describer,
                    start,
                    end,
                    args.tenant,
                    lambda done, total: bar(done, total, time.monotonic() - began),
                ):
                    emit(line)
                    shown += 1
                print(f"{shown:,} lines", file=sys.stderr)
                return 0
            if target == "call":
                lines = incident.call_timeline(store, describer, args.tenant, args.ref.lower())
            elif target == "patient":
                lines = incident.patient_timeline(store, describer, args.tenant, args.ref.lower())
            elif target == "appointment":
                try:
                    stream = UUID(args.ref)
                except ValueError:
                    raise UsageError(f"{args.ref!r} is not an appointment id") from None
                lines = incident.appointment_timeline(store, describer, stream)
            else:
                try:
                    date.fromisoformat(args.date)
                except ValueError:
                    raise UsageError(f"{args.date!r} is not a date (YYYY-MM-DD)") from None
                stream = ProviderDay.create_id(args.tenant, args.ref.lower(), args.date)
                lines = incident.day_timeline(
                    store, describer, args.tenant, args.ref.lower(), args.date
                )
            if args.tenant and any(line.tenant_id != args.tenant for line in lines):
                raise NotFound(f"{target} {args.ref} not found in clinic {args.tenant!r}")
            if target in ("appointment", "day") and (at_time or at_position is not None):
                state = incident.state_at(store, stream, at_time, at_position)
                disclose([state.get("patient_ref")])
                print(json.dumps(state) if args.json else _state_text(state))
                return 0
        except NotFound as exc:
            print(f"booking: {exc.detail}", file=sys.stderr)
            return 1
        disclose(line.fields.get("patient_ref") for line in lines)
        for line in lines:
            emit(line)
    return 0


def _state_text(state: dict[str, Any]) -> str:
    if not state.get("exists"):
        return "did not exist yet"
    return "\n".join(f"{key:>18}: {value}" for key, value in state.items() if key != "exists")


def known_tenants(store: Any) -> list[str]:
    """Every tenant ever registered, read from the event log (audit rows are under RLS)."""
    from booking.replay import log_events

    return [e.tenant_id for _, _, e in log_events(store, topics=["booking:Tenant.Registered"])]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="booking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve", help="run the HTTP API (embedded PostgreSQL by default)"
    )
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--demo", action="store_true", help="seed a demo clinic, print tokens")
    nats_help = "NATS to publish events to: a URL, or 'embedded' (default: BOOKING_NATS_URL)"
    serve_cmd.add_argument("--nats", metavar="URL|embedded", help=nats_help)
    serve_cmd.set_defaults(run=serve)
    relay_cmd = commands.add_parser("relay", help="run the NATS relay alone")
    relay_cmd.add_argument("--nats", metavar="URL|embedded", help=nats_help)
    relay_cmd.set_defaults(run=relay)
    project_cmd = commands.add_parser("project", help="run the projection worker alone")
    project_cmd.set_defaults(run=project)
    views_cmd = commands.add_parser("projections", help="read-model status and rebuilds")
    views_actions = views_cmd.add_subparsers(dest="action", required=True)
    views_actions.add_parser("status", help="position and lag per projection")
    rebuild_cmd = views_actions.add_parser(
        "rebuild", help="replay the log into fresh tables, then swap them in"
    )
    rebuild_cmd.add_argument("name", nargs="?", help="portal, board or timeline")
    rebuild_cmd.add_argument("--all", action="store_true", help="every projection")
    views_cmd.set_defaults(run=projections_command)
    tokens_cmd = commands.add_parser("tokens", help="token administration")
    tokens_actions = tokens_cmd.add_subparsers(dest="action", required=True)
    revoke_cmd = tokens_actions.add_parser("revoke", help="revoke a token by its token_id")
    revoke_cmd.add_argument("token_id")
    tokens_cmd.set_defaults(run=tokens_command)
    audit_cmd = commands.add_parser("audit", help="audit trail checks")
    audit_actions = audit_cmd.add_subparsers(dest="action", required=True)
    verify_cmd = audit_actions.add_parser(
        "verify", help="detect edited, removed or reordered entries"
    )
    verify_cmd.add_argument("--tenant", help="only this tenant")
    audit_cmd.set_defaults(run=audit_command)
    replay_cmd = commands.add_parser("replay", help="incident timelines from the event log")
    targets = replay_cmd.add_subparsers(dest="target", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--tenant", help="the clinic (required for call, patient and day)")
    common.add_argument("--json", action="store_true", help="JSON lines for other tools")
    common.add_argument("--show-phi", action="store_true", help="unmask PHI (audited)")
    for name, what in (("call", "CALL_ID"), ("patient", "PATIENT_REF"), ("appointment", "ID")):
        one = targets.add_parser(name, parents=[common], help=f"everything about one {name}")
        one.add_argument("ref", metavar=what)
        if name == "appointment":
            one.add_argument("--at", help="its state then: an RFC 3339 time or a log position")
    day_cmd = targets.add_parser("day", parents=[common], help="one provider's day")
    day_cmd.add_argument("ref", metavar="PROVIDER_ID")
    day_cmd.add_argument("date", metavar="DATE", help="YYYY-MM-DD, the provider's local date")
    day_cmd.add_argument("--at", help="its state then: an RFC 3339 time or a log position")
    window_cmd = targets.add_parser("window", parents=[common], help="every event in a time window")
    window_cmd.add_argument("--from", dest="start", required=True, help="RFC 3339 time")
    window_cmd.add_argument("--to", dest="end", required=True, help="RFC 3339 time")
    replay_cmd.set_defaults(run=replay_command)
    args = parser.parse_args(argv)
    _logging()
    try:
        return int(args.run(args))
    except (SettingsError, UsageError) as exc:
        print(f"booking: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
