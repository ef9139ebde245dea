"""``booking`` command line: ``booking serve [--host] [--port] [--demo]``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from booking.settings import Settings, SettingsError

log = logging.getLogger("booking")


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from api.app import create_app
    from api.services import Services

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"booking: {exc}", file=sys.stderr)
        return 2

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

    app = create_app(settings, on_ready=announce)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info", access_log=True)
    return 0


def project(args: argparse.Namespace) -> int:
    """Run the projection worker alone (production runs it beside stateless API replicas)."""
    import signal
    import threading

    from booking.runtime import resolve
    from booking.schema import prepare_database
    from booking.store import open_store
    from projections.catalog import PROJECTIONS
    from projections.worker import ProjectionWorker

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"booking: {exc}", file=sys.stderr)
        return 2
    runtime = resolve(settings)
    try:
        prepare_database(runtime.admin_database_url, runtime.database_url, runtime.cipher_key)
        store = open_store(runtime.database_url, runtime.cipher_key)
        worker = ProjectionWorker(store, PROJECTIONS, runtime.database_url)
        stopping = threading.Event()

        def stop(signum: int, _: object) -> None:
            log.info("signal %d: stopping the projection worker", signum)
            stopping.set()
            worker.stop(timeout=0)

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("projection worker running: %s", ", ".join(p.name for p in PROJECTIONS))
        worker.run_forever()
        store.close()
    finally:
        runtime.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="booking", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser(
        "serve", help="run the HTTP API (embedded PostgreSQL by default)"
    )
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8000)
    serve_cmd.add_argument("--demo", action="store_true", help="seed a demo clinic, print tokens")
    serve_cmd.set_defaults(run=serve)
    project_cmd = commands.add_parser("project", help="run the projection worker alone")
    project_cmd.set_defaults(run=project)
    args = parser.parse_args(argv)
    _logging()
    return int(args.run(args))


if __name__ == "__main__":
    raise SystemExit(main())
