"""Structured logs: one JSON object per line, for runs (a Dagster logger) and for the ``dataops`` command.

Every line carries ``time`` (UTC, ISO 8601), ``level``, ``environment``, ``run_id``, ``job``, ``step``, ``asset``,
``partition``, ``event`` (the Dagster event type, when the line is one) and ``message``; fields that do not apply
are null, so a log pipeline (Datadog, ELK, Loki) can index them without parsing the text. The records go to the
environment's JSON-lines file (``settings.json_log_file``), which the command and every run worker append to;
the console keeps the text a person reads. ``settings.json_logs`` (stage and prod) makes the runs' logger the
JSON one; dev keeps Dagster's coloured console for its runs.

``asset`` is the asset of the event when Dagster names one (materializations, checks, planned assets); otherwise it
is read from the step key of a single-asset step (Dagster names such a step after the asset key joined with
``__``); a multi-asset step (``stage_flights``) leaves it null and keeps ``step``.
"""

import json
import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import dagster as dg

from dataops_assets.environments import Settings
from dataops_assets.partitions import PARTITION_TAG

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_DAGSTER_META = "dagster_meta"  # the attribute Dagster's log handler puts on each record
_EXTRA_FIELDS = ("run_id", "job", "step", "asset", "partition", "event")
_CLI_HANDLER_NAME = "dataops-cli"
_PACKAGES = ("dataops_assets", "dataops_ops")  # the pipeline and its tooling
# ``extra=`` of a record whose text the command prints itself (a month's line): kept out of the text log on stderr
_PRINTED = "printed"
PRINTED = {_PRINTED: True}


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


class JsonLinesFile(logging.Handler):
    """Appends each record to ``path`` as one line, in a single write to the file opened for appending: the command
    and the run workers of an environment append to the same file without splitting each other's lines, and a file
    rotated away is started again. The folder is made with the first record, so a command that logs nothing
    creates nothing. A file that cannot be written (full or read-only disk) is said once on stderr, in one line."""

    def __init__(self, path: str | Path, level: int | str = logging.NOTSET) -> None:
        super().__init__(level)
        self.path = Path(path)
        self._unwritable = False

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + "\n").encode()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(descriptor, line)
            finally:
                os.close(descriptor)
        except OSError as error:
            if not self._unwritable:
                self._unwritable = True
                print(f"dataops: warning: log records not kept, cannot append to {self.path}: {error}", file=sys.stderr)
        except Exception:
            self.handleError(record)


def json_file_handler(settings: Settings) -> JsonLinesFile:
    """JSON records of ``settings``' environment, appended to its log file."""
    handler = JsonLinesFile(settings.json_log_file)
    handler.setFormatter(JsonFormatter(settings.name))
    return handler


def json_logger(settings: Settings) -> dg.LoggerDefinition:
    """A Dagster logger appending JSON lines to the environment's log file; its config (``log_level``, ``name``)
    is the console's."""

    @dg.logger(
        config_schema={
            "log_level": dg.Field(str, is_required=False, default_value="DEBUG"),
            "name": dg.Field(str, is_required=False, default_value="dagster"),
        },
        description=f"One JSON object per line, appended to {settings.json_log_file}.",
    )
    def _json_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
        config = init_context.logger_config
        logger = logging.Logger(config["name"], level=_level(config["log_level"]))
        logger.addHandler(json_file_handler(settings))
        return logger

    return _json_logger


def run_loggers(settings: Settings) -> dict[str, dg.LoggerDefinition]:
    """For ``Definitions(loggers=...)``: the JSON logger in place of the console one when ``json_logs`` is on.

    Keeping the name ``console`` keeps run config such as ``loggers.console.config.log_level`` working.
    """
    return {"console": json_logger(settings)} if settings.json_logs else {}


def instance_logging_config(settings: Settings, level: str = "INFO") -> dict[str, Any]:
    """The ``python_logs`` section of an instance's ``dagster.yaml`` that appends every run's logs as JSON lines to
    the environment's log file.

    The Definitions' logger applies to runs whose run config names ``loggers.console`` (``dataops run``, and jobs
    given that default config); this instance-level handler also covers ad-hoc materializations from the UI. Use
    one or the other for a run, or its lines are written twice.
    """
    return {
        "dagster_handler_config": {
            "handlers": {
                "json": {
                    "class": f"{__name__}.JsonLinesFile",
                    "level": level,
                    "path": str(settings.json_log_file),
                    "formatter": "json",
                }
            },
            "formatters": {"json": {"()": f"{__name__}.JsonFormatter", "environment": settings.name}},
        }
    }


def configure_cli_logging(
    settings: Settings, stream: TextIO | None = None, level: int = logging.INFO, *, json_stream: bool = False
) -> list[logging.Handler]:
    """Log records of the ``dataops`` command: as JSON to the environment's log file, and to stderr as plain text,
    or as JSON too when ``json_stream`` (``--log-format json``). The text leaves out the records marked
    ``PRINTED``: the command printed their text already.

    Handlers on the root logger (a second call replaces them): the project's own loggers (``dataops_assets.*``,
    ``dataops_ops.*``) at ``level``, everything else (alembic, urllib3, ...) from WARNING up.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == _CLI_HANDLER_NAME:
            root.removeHandler(handler)
    console = logging.StreamHandler(stream or sys.stderr)
    console.setFormatter(JsonFormatter(settings.name) if json_stream else logging.Formatter(TEXT_FORMAT))
    if not json_stream:
        console.addFilter(lambda record: not getattr(record, _PRINTED, False))
    handlers: list[logging.Handler] = [json_file_handler(settings), console]
    for handler in handlers:
        handler.set_name(_CLI_HANDLER_NAME)
        # Libraries that set their own loggers' levels (GX logs housekeeping at INFO) pass only warnings and up.
        handler.addFilter(lambda record: record.name.startswith(_PACKAGES) or record.levelno >= logging.WARNING)
        root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for package in _PACKAGES:
        logging.getLogger(package).setLevel(level)
    return handlers
