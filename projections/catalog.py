"""The read models this service keeps, by name."""

from __future__ import annotations

from projections.appointments import BOARD, PORTAL
from projections.base import Projection
from projections.economics import ECONOMICS
from projections.timeline import TIMELINE

PROJECTIONS: tuple[Projection, ...] = (PORTAL, BOARD, TIMELINE, ECONOMICS)
BY_NAME = {p.name: p for p in PROJECTIONS}
