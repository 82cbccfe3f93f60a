"""JSON logs: the Dagster logger of runs, the instance-level handler and the ``dataops`` CLI's handlers, all
appending to the environment's JSON-lines file."""

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dataops_assets.environments import settings_for
from dataops_assets.observability.logging import (
    PRINTED,
    configure_cli_logging,
    instance_logging_config,
    json_logger,
    run_loggers,
)

PARTITIONS = dg.StaticPartitionsDefinition(["2013-01"])
FIELDS = {"time", "level", "environment", "run_id", "job", "step", "asset", "partition", "event", "logger", "message"}


@dg.asset(key=["staging", "toy"], partitions_def=PARTITIONS)
def toy(context: dg.AssetExecutionContext) -> int:
    context.log.info("staged 3 rows")
    return 3


@dg.asset(key=["core", "broken"], deps=[toy], partitions_def=PARTITIONS)
def broken() -> None:
    raise ValueError("no weather for 2013-01-01 05:00")


def _lines(text: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in text.splitlines()]  # every line is one JSON object
    for record in records:
        assert set(record) >= FIELDS
    return records


def test_only_stage_and_prod_switch_run_logs_to_json(tmp_path: Path) -> None:
    assert run_loggers(settings_for("dev", data_root=tmp_path)) == {}
    for name in ("stage", "prod"):
        assert set(run_loggers(settings_for(name, data_root=tmp_path))) == {"console"}


def test_run_logs_are_one_json_object_per_line_in_the_environments_log_file(tmp_path: Path) -> None:
    settings = settings_for("stage", data_root=tmp_path)
    defs = dg.Definitions(assets=[toy, broken], loggers={"console": json_logger(settings)})
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        partition_key="2013-01",
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "DEBUG"}}}},  # as `dataops run` passes it
        raise_on_error=False,
    )
    assert not result.success
    assert settings.json_log_file == tmp_path / "stage" / "logs" / "dataops.jsonl"
    records = _lines(settings.json_log_file.read_text())
    assert {r["run_id"] for r in records} == {result.run_id}
    assert {r["environment"] for r in records} == {"stage"}
    assert {r["partition"] for r in records} == {"2013-01"}
    [message] = [r for r in records if r["message"] == "staged 3 rows"]
    assert (message["level"], message["step"], message["asset"], message["event"]) == (
        "INFO",
        "staging__toy",
        "staging/toy",
        None,
    )
    assert message["time"].endswith("+00:00") and message["job"] == job.name
    [materialized] = [r for r in records if r["event"] == "ASSET_MATERIALIZATION"]
    assert materialized["asset"] == "staging/toy" and materialized["level"] == "DEBUG"
    [failure] = [r for r in records if r["event"] == "STEP_FAILURE"]
    assert (failure["level"], failure["asset"], failure["step"]) == ("ERROR", "core/broken", "core__broken")
    assert [r["event"] for r in records][-1] == "RUN_FAILURE"

    quiet = replace(settings, json_log_override=tmp_path / "elsewhere" / "quiet.jsonl")
    defs = dg.Definitions(assets=[toy], loggers={"console": json_logger(quiet)})
    defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="2013-01",
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    assert not (tmp_path / "elsewhere").exists()  # nothing logged, nothing created


def test_instance_handler_appends_the_same_lines_for_every_run(tmp_path: Path) -> None:
    settings = settings_for("prod", data_root=tmp_path)
    overrides = {"python_logs": instance_logging_config(settings), "telemetry": {"enabled": False}}
    with dg.DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as instance:
        result = dg.materialize([toy], partition_key="2013-01", instance=instance)
    records = _lines(settings.json_log_file.read_text())
    [message] = [r for r in records if r["message"] == "staged 3 rows"]
    assert (message["environment"], message["run_id"], message["asset"]) == ("prod", result.run_id, "staging/toy")


@pytest.fixture
def cli_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root, package = logging.getLogger(), logging.getLogger("dataops_assets")
    levels, before = (root.level, package.level), list(root.handlers)
    yield stream
    for handler in list(root.handlers):
        if handler not in before:
            root.removeHandler(handler)
    root.setLevel(levels[0])
    package.setLevel(levels[1])


def test_cli_logs_are_json_in_the_log_file_and_text_on_stderr(tmp_path: Path, cli_stream: io.StringIO) -> None:
    settings = settings_for("prod", data_root=tmp_path)
    log = logging.getLogger("dataops_ops.cli")
    configure_cli_logging(settings, stream=cli_stream)
    log.info("partition %s done", "2013-01", extra={"run_id": "r-1", "partition": "2013-01"})
    logging.getLogger("alembic.runtime.plugins").info("setup plugin")  # libraries: WARNING and up only
    log.info("prod 2013-01 ok: 19/19 checks passed", extra=PRINTED)  # printed by the command already
    try:
        raise RuntimeError("warehouse locked")
    except RuntimeError:
        log.exception("run failed")
    first, printed, failed = _lines(settings.json_log_file.read_text())
    assert (first["environment"], first["level"], first["message"]) == ("prod", "INFO", "partition 2013-01 done")
    assert (first["run_id"], first["partition"], first["asset"]) == ("r-1", "2013-01", None)
    assert printed["message"] == "prod 2013-01 ok: 19/19 checks passed"
    assert failed["level"] == "ERROR" and "RuntimeError: warehouse locked" in failed["exception"]
    text = cli_stream.getvalue().splitlines()
    assert text[0].endswith("INFO    dataops_ops.cli: partition 2013-01 done")
    assert text[1].endswith("ERROR   dataops_ops.cli: run failed")
    assert "19/19" not in cli_stream.getvalue() and "{" not in cli_stream.getvalue()


def test_cli_logs_as_json_on_stderr_too_when_asked(tmp_path: Path, cli_stream: io.StringIO) -> None:
    settings = settings_for("dev", data_root=tmp_path)
    configure_cli_logging(settings, stream=io.StringIO())
    configure_cli_logging(settings, stream=cli_stream, json_stream=True)  # replaces the handlers: no duplicates
    logging.getLogger("dataops_ops.run").info("dev 2013-01 ok: 19/19 checks passed", extra=PRINTED)
    [streamed] = _lines(cli_stream.getvalue())
    assert _lines(settings.json_log_file.read_text()) == [streamed]
    assert (streamed["environment"], streamed["message"]) == ("dev", "dev 2013-01 ok: 19/19 checks passed")


def test_an_unwritable_log_file_is_said_once_in_one_line(
    tmp_path: Path, cli_stream: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "dev").write_text("a file where the environment's folder should be")
    configure_cli_logging(settings_for("dev", data_root=tmp_path), stream=cli_stream)
    log = logging.getLogger("dataops_ops.cli")
    log.info("landed 27 files")
    log.info("landed 27 files again")
    [said] = capsys.readouterr().err.splitlines()
    log_file = tmp_path / "dev" / "logs" / "dataops.jsonl"
    assert said.startswith(f"dataops: warning: log records not kept, cannot append to {log_file}: ")
    assert cli_stream.getvalue().count("landed 27 files") == 2  # the console still has them
