"""ASGI factory for benchmarks: the API with its in-process projection worker switched off, so a
separate ``python -m booking.cli project`` process applies the events. Settings come from the
environment like ``api.app:app_from_env``. Run from the repo root (PYTHONPATH=.):

    python -m uvicorn --factory benchmarks._server:app
"""

from __future__ import annotations

from litestar import Litestar

from api.app import create_app
from booking.settings import Settings


def app() -> Litestar:
    return create_app(Settings.from_env(), run_projections=False)
