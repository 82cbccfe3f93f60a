"""Where the lineage of an environment goes, from its ``Settings`` and the OpenLineage variables.

Two forms of the same thing: ``ObservabilityConfig`` with real values, for the ``dataops`` runner and CLI, and
``ObservabilityResource`` for the sensors, whose secrets stay ``dg.EnvVar`` references in the Definitions.
"""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import dagster as dg

from dataops_assets.environments import Settings

OPENLINEAGE_URL_VAR = "OPENLINEAGE_URL"
OPENLINEAGE_ENDPOINT_VAR = "OPENLINEAGE_ENDPOINT"
OPENLINEAGE_API_KEY_VAR = "OPENLINEAGE_API_KEY"
DEFAULT_ENDPOINT = "api/v1/lineage"


def lineage_file(env_dir: Path) -> Path:
    """The JSON-lines file lineage goes to when no ``OPENLINEAGE_URL`` is set."""
    return env_dir / "lineage" / "events.jsonl"


@dataclass(frozen=True)
class LineageConfig:
    """Where the events go: HTTP when ``url`` is set (``url`` + ``endpoint``), else the JSON-lines file."""

    environment: str
    file: Path
    url: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str | None = None
    timeout_seconds: float = 5.0
    retries: int = 3
    backoff_factor: float = 0.3

    @property
    def destination(self) -> str:
        return f"{self.url.rstrip('/')}/{self.endpoint.lstrip('/')}" if self.url else str(self.file)


@dataclass(frozen=True)
class ObservabilityConfig:
    environment: str
    lineage: LineageConfig


def build_observability_config(settings: Settings, environ: Mapping[str, str] | None = None) -> ObservabilityConfig:
    env = os.environ if environ is None else environ
    return ObservabilityConfig(
        environment=settings.name,
        lineage=LineageConfig(
            environment=settings.name,
            file=lineage_file(settings.env_dir),
            url=env.get(OPENLINEAGE_URL_VAR) or None,
            endpoint=env.get(OPENLINEAGE_ENDPOINT_VAR) or DEFAULT_ENDPOINT,
            api_key=env.get(OPENLINEAGE_API_KEY_VAR) or None,
        ),
    )


class ObservabilityResource(dg.ConfigurableResource):
    """The sensors' view of the same configuration (``OPENLINEAGE_*`` as ``dg.EnvVar`` when set at load)."""

    environment: str
    lineage_file: str
    openlineage_url: str | None = None
    openlineage_endpoint: str = DEFAULT_ENDPOINT
    openlineage_api_key: str | None = None

    def config(self) -> ObservabilityConfig:
        return ObservabilityConfig(
            environment=self.environment,
            lineage=LineageConfig(
                environment=self.environment,
                file=Path(self.lineage_file),
                url=self.openlineage_url or None,
                endpoint=self.openlineage_endpoint,
                api_key=self.openlineage_api_key or None,
            ),
        )


def build_observability_resource(settings: Settings, environ: Mapping[str, str] | None = None) -> ObservabilityResource:
    env = os.environ if environ is None else environ

    def var(name: str) -> str | None:
        return dg.EnvVar(name) if env.get(name) else None

    return ObservabilityResource(
        environment=settings.name,
        lineage_file=str(lineage_file(settings.env_dir)),
        openlineage_url=var(OPENLINEAGE_URL_VAR),
        openlineage_endpoint=var(OPENLINEAGE_ENDPOINT_VAR) or DEFAULT_ENDPOINT,
        openlineage_api_key=var(OPENLINEAGE_API_KEY_VAR),
    )
