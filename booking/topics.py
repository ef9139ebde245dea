"""Pin stored topics to names that do not depend on where a class lives in the code.

eventsourcing stores ``module:QualName`` by default, so moving a class would make old events
unreadable. Each aggregate here gets the topic ``booking:<Name>`` and its events
``booking:<Name>.<Event>``; renaming an event later means registering its old topic.
"""

from __future__ import annotations

from typing import TypeVar

from eventsourcing.domain import CanMutateAggregate
from eventsourcing.utils import register_topic

T = TypeVar("T", bound=type)


def pinned(name: str):  # type: ignore[no-untyped-def]
    def decorate(cls: T) -> T:
        topic = f"booking:{name}"
        cls.TOPIC = topic  # type: ignore[attr-defined]
        register_topic(topic, cls)
        for attr, value in list(vars(cls).items()):
            if isinstance(value, type) and issubclass(value, CanMutateAggregate):
                value.TOPIC = f"{topic}.{attr}"  # type: ignore[attr-defined]
        return cls

    return decorate
