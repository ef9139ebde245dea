"""GET /v1/audit a page at a time: ``limit`` entries per answer, and while more match, ``next``,
the seq to pass back as ``after``. Walking the pages gives every entry exactly once, in order,
the same as one unpaged answer; bad paging options are 422 problems naming the option."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from api.audit_routes import LIMIT
from tests.booking_helpers import assert_problem, error_fields
from tests.support.server import LiveServer, Tenant, expect, seed_tenant, setup_practice

TENANT = "audit-pages"


@pytest.fixture(scope="module")
def clinic(live_server: LiveServer) -> tuple[Tenant, dict[str, str], str]:
    """A clinic with some 20 audit entries, the auditor's headers, and a ``to`` instant after them
    (the auditor's own reads are audited too: ``to`` keeps the expected set still)."""
    tenant = seed_tenant(live_server, TENANT)
    setup_practice(live_server, tenant, patients=("pat-1", "pat-2"))
    with live_server.client() as client:
        for _ in range(6):
            for patient in ("pat-1", "pat-2"):
                expect(
                    client.get(
                        f"/v1/agent/patients/{patient}/appointments", headers=tenant.agent_headers
                    ),
                    200,
                )
    auditor = tenant.token("auditor")
    return tenant, auditor, datetime.now(UTC).isoformat()


def get(client: httpx.Client, headers: dict[str, str], **params: Any) -> dict[str, Any]:
    body = expect(client.get("/v1/audit", params=params, headers=headers), 200)
    assert isinstance(body, dict) and "next" in body, body
    return body


def walk(
    client: httpx.Client, headers: dict[str, str], limit: int, **params: Any
) -> tuple[list[dict[str, Any]], list[int]]:
    """Every page from the start; the entries and each page's size."""
    entries: list[dict[str, Any]] = []
    sizes: list[int] = []
    after: int | None = None
    for _ in range(100):
        page = get(client, headers, limit=limit, **params, **({"after": after} if after else {}))
        entries += page["entries"]
        sizes.append(len(page["entries"]))
        if page["next"] is None:
            return entries, sizes
        assert page["next"] == page["entries"][-1]["seq"], page
        after = page["next"]
    raise AssertionError("paging did not end within 100 pages")


def test_pages_give_every_entry_once_in_order(
    live_server: LiveServer, clinic: tuple[Tenant, dict[str, str], str]
) -> None:
    _, auditor, to = clinic
    with live_server.client() as client:
        whole = get(client, auditor, to=to)
        assert whole["next"] is None, "one answer holds them all: no next page"
        assert len(whole["entries"]) >= 20, len(whole["entries"])
        entries, sizes = walk(client, auditor, 7, to=to)
    assert entries == whole["entries"]
    assert sizes[:-1] == [7] * (len(sizes) - 1) and 0 < sizes[-1] <= 7, sizes
    seqs = [e["seq"] for e in entries]
    assert seqs == sorted(set(seqs)), seqs


def test_pages_keep_the_patient_filter(
    live_server: LiveServer, clinic: tuple[Tenant, dict[str, str], str]
) -> None:
    _, auditor, to = clinic
    with live_server.client() as client:
        whole = get(client, auditor, to=to, patient_ref="pat-1")["entries"]
        entries, _ = walk(client, auditor, 4, to=to, patient_ref="pat-1")
    assert entries == whole and len(whole) >= 6, (len(entries), len(whole))
    assert {e["patient_ref"] for e in entries} == {"pat-1"}


def test_an_exact_last_page_has_no_next(
    live_server: LiveServer, clinic: tuple[Tenant, dict[str, str], str]
) -> None:
    _, auditor, to = clinic
    with live_server.client() as client:
        count = len(get(client, auditor, to=to)["entries"])
        exact = get(client, auditor, to=to, limit=count)
        short = get(client, auditor, to=to, limit=count - 1)
        past = get(client, auditor, to=to, after=10**9)
    assert len(exact["entries"]) == count and exact["next"] is None, exact["next"]
    assert short["next"] == short["entries"][-1]["seq"], short["next"]
    assert past == {"entries": [], "next": None}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": LIMIT + 1}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"after": -1}, "after"),
        ({"after": "seq-3"}, "after"),
    ],
)
def test_bad_paging_options_are_422_naming_the_option(
    live_server: LiveServer,
    clinic: tuple[Tenant, dict[str, str], str],
    params: dict[str, Any],
    field: str,
) -> None:
    _, auditor, _ = clinic
    with live_server.client() as client:
        answer = client.get("/v1/audit", params=params, headers=auditor)
    assert error_fields(assert_problem(answer, 422)) == [field]
