"""Shared fixtures of the Dagster-level tests: a hand-made landing folder under ``tmp_path`` and its settings.

The landing data lives in ``fixtures/landing.py`` (what each row is for is described there); the helpers that
run the flow and read the warehouse back live in ``fixtures/pipeline.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dataops_assets.definitions import build_definitions
from dataops_assets.environments import Settings
from dataops_assets.resources import build_resources
from dataops_assets_tests.fixtures.landing import MONTHS, write_landing
from dataops_assets_tests.fixtures.pipeline import fixture_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """``dev`` settings with every file under ``tmp_path``; nothing is landed yet."""
    return fixture_settings(tmp_path)


@pytest.fixture
def landed(settings: Settings) -> Settings:
    """The settings, with the references and the three hand-made months landed."""
    write_landing(settings.landing_dir, MONTHS)
    return settings


@pytest.fixture
def definitions(settings: Settings) -> dg.Definitions:
    """The Definitions the environment would deploy, with its files under ``tmp_path``."""
    return build_definitions(settings)


@pytest.fixture
def resources(settings: Settings) -> dict[str, Any]:
    """The resources ``build_definitions(settings)`` binds (warehouse I/O manager, landing zone, ...)."""
    return build_resources(settings)
