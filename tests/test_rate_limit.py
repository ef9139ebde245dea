"""Each token has its own request budget: a burst over it gets 429 problem+json with Retry-After,
and another token is not affected."""

from __future__ import annotations

from tests.support.server import LiveServer, seed_tenant

SERVER_SETTINGS = {"rate_limit_per_second": 1}  # bucket of 2, refilled at 1/s


def test_a_token_over_its_budget_gets_429_and_others_do_not(live_server: LiveServer) -> None:
    tenant = seed_tenant(live_server, "rate-clinic")
    greedy = tenant.token("agent")
    calm = tenant.token("agent")
    with live_server.client() as client:
        statuses = [client.get("/v1/agent/tools", headers=greedy).status_code for _ in range(30)]
        assert statuses[:2] == [200] * 2
        assert 429 in statuses
        refused = client.get("/v1/agent/tools", headers=greedy)
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert int(refused.headers["retry-after"]) >= 1
        problem = refused.json()
        assert problem["type"] == "/problems/rate-limited" and problem["status"] == 429
        assert client.get("/v1/agent/tools", headers=calm).status_code == 200
