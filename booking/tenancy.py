"""Every stored event names its tenant, so whoever reads the log (read models under row-level
security, the NATS relay, incident replay) knows whose it is without loading the aggregate."""

from __future__ import annotations

from typing import Any


class TenantScoped:
    """Mixin for aggregates with a ``tenant_id``: fills ``tenant_id`` into each event it triggers."""

    tenant_id: str

    def trigger_event(self, event_class: type[Any], **kwargs: Any) -> None:
        if "tenant_id" in getattr(event_class, "__dataclass_fields__", {}):
            kwargs.setdefault("tenant_id", self.tenant_id)
        super().trigger_event(event_class, **kwargs)  # type: ignore[misc]
