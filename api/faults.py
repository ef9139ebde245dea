"""Fault injection for tests, and only for tests: create_app(faults=Faults()) is the one way to
turn it on. No setting, header or environment variable can, so a production process built by
``booking serve`` or ``app_from_env`` never has it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from litestar import Request

from booking.store import EVENTS_TABLE

HEADER = "x-test-fault"


@dataclass(frozen=True)
class Faults:
    """Requests carrying ``X-Test-Fault: broken-insert`` run a broken INSERT in their transaction."""

    def before_request(self, request: Request[Any, Any, Any]) -> None:
        if request.headers.get(HEADER) != "broken-insert":
            return
        datastore = request.app.state.services.store.recorder.datastore
        with datastore.transaction(commit=True) as curs:
            curs.execute("SELECT set_config('app.tenant_id', 'poison', true)")
            # a primary-key column left NULL: the statement fails, the transaction rolls back
            curs.execute(
                f"INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)"
                " VALUES (NULL, 1, 'poison', ''::bytea)"
            )
