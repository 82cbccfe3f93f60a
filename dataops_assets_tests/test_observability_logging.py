"""JSON logs: the Dagster logger of runs, the instance-level handler and the ``dataops`` CLI's formatter."""

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from dataops_assets.environments import settings_for
from dataops_assets.observability.logging import (
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


def test_run_logs_are_one_json_object_per_line() -> None:
    stream = io.StringIO()
    defs = dg.Definitions(assets=[toy, broken], loggers={"console": json_logger("stage", stream)})
    job = defs.resolve_implicit_global_asset_job_def()
    result = job.execute_in_process(
        partition_key="2013-01",
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "DEBUG"}}}},  # as `dataops run` passes it
        raise_on_error=False,
    )
    assert not result.success
    records = _lines(stream.getvalue())
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

    quiet = io.StringIO()
    defs = dg.Definitions(assets=[toy], loggers={"console": json_logger("stage", quiet)})
    defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key="2013-01",
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )
    assert quiet.getvalue() == ""


def test_instance_handler_writes_the_same_lines_for_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = settings_for("prod", data_root=tmp_path)
    overrides = {"python_logs": instance_logging_config(settings), "telemetry": {"enabled": False}}
    with dg.DagsterInstance.local_temp(str(tmp_path), overrides=overrides) as instance:
        capsys.readouterr()
        result = dg.materialize([toy], partition_key="2013-01", instance=instance)
    err = capsys.readouterr().err
    records = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
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


def test_cli_logs_are_json_in_prod_and_text_in_dev(tmp_path: Path, cli_stream: io.StringIO) -> None:
    log = logging.getLogger("dataops_ops.cli")
    configure_cli_logging(settings_for("prod", data_root=tmp_path), stream=cli_stream)
    log.info("partition %s done", "2013-01", extra={"run_id": "r-1", "partition": "2013-01"})
    logging.getLogger("alembic.runtime.plugins").info("setup plugin")  # libraries: WARNING and up only
    try:
        raise RuntimeError("warehouse locked")
    except RuntimeError:
        log.exception("run failed")
    first, second = _lines(cli_stream.getvalue())
    assert (first["environment"], first["level"], first["message"]) == ("prod", "INFO", "partition 2013-01 done")
    assert (first["run_id"], first["partition"], first["asset"]) == ("r-1", "2013-01", None)
    assert second["level"] == "ERROR" and "RuntimeError: warehouse locked" in second["exception"]

    # configuring again replaces the handler (no duplicate lines); dev logs plain text
    text = io.StringIO()
    configure_cli_logging(settings_for("dev", data_root=tmp_path), stream=text)
    log.info("landed 27 files")
    assert cli_stream.getvalue().count("\n") == 2
    assert text.getvalue().rstrip().endswith("INFO    dataops_ops.cli: landed 27 files")
