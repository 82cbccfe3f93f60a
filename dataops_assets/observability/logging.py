"""Structured logs: one JSON object per line, for runs (a Dagster logger) and for the ``dataops`` command.

Every line carries ``time`` (UTC, ISO 8601), ``level``, ``environment``, ``run_id``, ``job``, ``step``, ``asset``,
``partition``, ``event`` (the Dagster event type, when the line is one) and ``message``; fields that do not apply
are null, so a log pipeline (Datadog, ELK, Loki) can index them without parsing the text. ``settings.json_logs``
switches it on (stage and prod); dev keeps Dagster's coloured console and a plain text format for the CLI.

``asset`` is the asset of the event when Dagster names one (materializations, checks, planned assets); otherwise it
is read from the step key of a single-asset step (Dagster names such a step after the asset key joined with
``__``); a multi-asset step (``stage_flights``) leaves it null and keeps ``step``.
"""

import json
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, TextIO

import dagster as dg

from dataops_assets.environments import Settings
from dataops_assets.partitions import PARTITION_TAG

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_DAGSTER_META = "dagster_meta"  # the attribute Dagster's log handler puts on each record
_EXTRA_FIELDS = ("run_id", "job", "step", "asset", "partition", "event")
_CLI_HANDLER_NAME = "dataops-cli"
_PACKAGES = ("dataops_assets", "dataops_ops")  # the pipeline and its tooling


def _asset_of(step_key: str | None, event: Any) -> str | None:
    key = getattr(event, "asset_key", None) if event is not None else None
    if isinstance(key, dg.AssetKey):
        return key.to_user_string()
    if step_key and "__" in step_key:
        return step_key.replace("__", "/")
    return None


def _event_name(event: Any) -> str | None:
    """The event type's current name (``RUN_FAILURE``; its stored value is still ``PIPELINE_FAILURE``)."""
    kind = getattr(event, "event_type", None) if event is not None else None
    return kind.name if kind is not None else None


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON; Dagster's run context when the record comes from a run."""

    def __init__(self, environment: str) -> None:
        super().__init__()
        self.environment = environment

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "environment": self.environment,
            **dict.fromkeys(_EXTRA_FIELDS),
            "logger": record.name,
            "message": record.getMessage(),
        }
        meta: Mapping[str, Any] | None = getattr(record, _DAGSTER_META, None)
        if meta:
            event = meta.get("dagster_event")
            tags = meta.get("job_tags") or {}
            out.update(
                run_id=meta.get("run_id"),
                job=meta.get("job_name"),
                step=meta.get("step_key"),
                asset=_asset_of(meta.get("step_key"), event),
                partition=tags.get(PARTITION_TAG),
                event=_event_name(event),
                message=meta.get("orig_message") or out["message"],
            )
        for name in _EXTRA_FIELDS:  # logging.info(..., extra={"run_id": ...}) from the CLI
            value = record.__dict__.get(name)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return out

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), default=str, ensure_ascii=False)


def _level(name: str) -> int:
    levels = logging.getLevelNamesMapping()
    if name.upper() not in levels:
        raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(sorted(levels))}")
    return levels[name.upper()]


def json_logger(environment: str, stream: TextIO | None = None) -> dg.LoggerDefinition:
    """A Dagster logger writing JSON lines to stderr; its config (``log_level``, ``name``) is the console's."""

    @dg.logger(
        config_schema={
            "log_level": dg.Field(str, is_required=False, default_value="DEBUG"),
            "name": dg.Field(str, is_required=False, default_value="dagster"),
        },
        description=f"One JSON object per line on stderr (environment {environment}).",
    )
    def _json_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
        config = init_context.logger_config
        logger = logging.Logger(config["name"], level=_level(config["log_level"]))
        handler = logging.StreamHandler(stream or sys.stderr)
        handler.setFormatter(JsonFormatter(environment))
        logger.addHandler(handler)
        return logger

    return _json_logger


def run_loggers(settings: Settings) -> dict[str, dg.LoggerDefinition]:
    """For ``Definitions(loggers=...)``: the JSON logger in place of the console one when ``json_logs`` is on.

    Keeping the name ``console`` keeps run config such as ``loggers.console.config.log_level`` working.
    """
    return {"console": json_logger(settings.name)} if settings.json_logs else {}


def instance_logging_config(
    settings: Settings, level: str = "INFO", stream: str = "ext://sys.stderr"
) -> dict[str, Any]:
    """The ``python_logs`` section of an instance's ``dagster.yaml`` that writes every run's logs as JSON lines.

    The Definitions' logger applies to runs whose run config names ``loggers.console`` (``dataops run``, and jobs
    given that default config); this instance-level handler also covers ad-hoc materializations from the UI. Use
    one or the other for a run, or its lines are written twice.
    """
    return {
        "dagster_handler_config": {
            "handlers": {
                "json": {"class": "logging.StreamHandler", "level": level, "stream": stream, "formatter": "json"}
            },
            "formatters": {"json": {"()": f"{__name__}.JsonFormatter", "environment": settings.name}},
        }
    }


def configure_cli_logging(
    settings: Settings, stream: TextIO | None = None, level: int = logging.INFO
) -> logging.Handler:
    """Log records of the ``dataops`` command to stderr: JSON lines when ``json_logs``, plain text otherwise.

    One handler on the root logger (a second call replaces it): the project's own loggers (``dataops_assets.*``,
    ``dataops_ops.*``) at ``level``, everything else (alembic, urllib3, ...) from WARNING up.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _CLI_HANDLER_NAME:
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_CLI_HANDLER_NAME)
    handler.setFormatter(JsonFormatter(settings.name) if settings.json_logs else logging.Formatter(TEXT_FORMAT))
    # Libraries that set their own loggers' levels (GX logs housekeeping at INFO) pass only warnings and up.
    handler.addFilter(lambda record: record.name.startswith(_PACKAGES) or record.levelno >= logging.WARNING)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for package in _PACKAGES:
        logging.getLogger(package).setLevel(level)
    return handler
