"""`dataops env init` keeps the database password out of every file and refuses values it cannot use, in one line
each, before it writes anything. The password really reaching PostgreSQL is proven end to end in
test_deploy_e2e.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config
from dagster_postgres.utils import pg_config, pg_url_from_config
from sqlalchemy.engine import make_url

from dataops_assets.partitions import MONTH_KEYS
from dataops_ops.cli import main
from dataops_ops.deploy.environment_root import EnvironmentConfig, EnvironmentRoot, InvalidSettingError, instance_yaml
from dataops_ops.deploy.errors import EnvironmentNotReadyError
from dataops_ops.launcher import LocalRunLauncher

SECRET = "s3cret@:/%word"  # URL-special characters: Dagster must quote them into its connection URL
URL = "postgresql://dagster@127.0.0.1:5433/dataops_stage?sslmode=disable"
PRIVATE_FILES = ("environment.json", "workspace.yaml", "audit.jsonl", "dagster_home/dagster.yaml")


def _modes(env: EnvironmentRoot, names: tuple[str, ...]) -> dict[str, str]:
    return {name: oct((env.path / name).stat().st_mode & 0o777) for name in names}


def _files_holding(root: Path, text: str) -> list[str]:
    return [str(path) for path in root.rglob("*") if path.is_file() and text.encode() in path.read_bytes()]


def test_the_password_comes_from_the_named_variable_and_is_in_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATAOPS_PG_PASSWORD", SECRET)
    stage = EnvironmentRoot(tmp_path, "stage")
    stage.init(postgres_url=URL, postgres_password_env="DATAOPS_PG_PASSWORD")
    release = stage.write_release(stage.releases_dir / "1.0", "1.0", "abc", "x.whl")
    stage.append_audit("deploy", "succeeded", version="1.0")

    storage = json.loads((stage.dagster_home / "dagster.yaml").read_text().split("storage: ", 1)[1])
    assert storage["postgres"]["postgres_db"]["password"] == {"env": "DATAOPS_PG_PASSWORD"}
    # Resolved as Dagster does when the instance starts: the variable's value, quoted into the URL.
    instance_config, _ = dagster_instance_config(str(stage.dagster_home))
    resolved = process_config(pg_config(), instance_config["storage"]["postgres"])
    assert resolved.success and resolved.value is not None, resolved.errors
    url = make_url(pg_url_from_config(resolved.value))
    assert (url.drivername, url.username, url.password) == ("postgresql+psycopg2", "dagster", SECRET)
    assert (url.host, url.port, url.database, dict(url.query)) == (
        "127.0.0.1",
        5433,
        "dataops_stage",
        {"sslmode": "disable"},
    )

    assert _files_holding(tmp_path, SECRET) == [] and _files_holding(tmp_path, "s3cret") == []
    assert _modes(stage, PRIVATE_FILES) == dict.fromkeys(PRIVATE_FILES, "0o600")
    assert oct((release.path / "release.json").stat().st_mode & 0o777) == "0o600"
    assert stage.config().postgres_url == URL and stage.config().postgres_password_env == "DATAOPS_PG_PASSWORD"


def test_env_init_names_the_variable_and_never_asks_for_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["env", "init", "--env", "stage", "--root", str(tmp_path), "--postgres-url", URL]
    assert main([*argv, "--postgres-password-env", "DATAOPS_PG_PASSWORD"]) == 0
    assert "PostgreSQL storage (password from $DATAOPS_PG_PASSWORD)" in capsys.readouterr().out
    assert EnvironmentRoot(tmp_path, "stage").config().postgres_password_env == "DATAOPS_PG_PASSWORD"


def test_the_services_get_the_variable_and_refuse_to_start_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stage = EnvironmentRoot(tmp_path, "stage")
    stage.init(postgres_url=URL, postgres_password_env="DATAOPS_PG_PASSWORD")
    monkeypatch.delenv("DATAOPS_PG_PASSWORD", raising=False)
    with pytest.raises(EnvironmentNotReadyError, match=r"password from \$DATAOPS_PG_PASSWORD, which is not set"):
        stage.process_environment()
    monkeypatch.setenv("DATAOPS_PG_PASSWORD", SECRET)
    assert stage.process_environment()["DATAOPS_PG_PASSWORD"] == SECRET


def test_a_url_without_a_password_variable_is_written_as_is(tmp_path: Path) -> None:
    """Trust or peer authentication: no password anywhere, the URL (with its driver named) is the config."""
    stage = EnvironmentRoot(tmp_path, "stage")
    stage.init(postgres_url="postgresql://dagster@127.0.0.1:5432/dataops_stage")
    storage = json.loads((stage.dagster_home / "dagster.yaml").read_text().split("storage: ", 1)[1])
    assert storage == {"postgres": {"postgres_url": "postgresql+psycopg2://dagster@127.0.0.1:5432/dataops_stage"}}


def test_a_previous_world_readable_audit_log_is_made_private(tmp_path: Path) -> None:
    dev = EnvironmentRoot(tmp_path, "dev")
    dev.path.mkdir(parents=True)
    dev.audit_log.write_text("")
    dev.audit_log.chmod(0o644)
    dev.init()
    assert _modes(dev, ("audit.jsonl",)) == {"audit.jsonl": "0o600"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            ["--postgres-url", "postgresql://dagster:s3cret@127.0.0.1/dataops_stage"],
            "--postgres-url must not contain the password: give postgresql://USER@HOST:PORT/DB and "
            "--postgres-password-env VARIABLE, with the password in that environment variable",
        ),
        (
            ["--postgres-url", URL, "--postgres-password-env", "PG-PASSWORD"],
            "--postgres-password-env 'PG-PASSWORD' is not an environment variable name",
        ),
        (
            ["--postgres-url", "postgresql://127.0.0.1/db", "--postgres-password-env", "PG"],
            "--postgres-url postgresql://127.0.0.1/db must name the user, host and database, "
            "e.g. postgresql://dagster@127.0.0.1:5432/db",
        ),
        (
            ["--postgres-url", "postgresql://dagster@127.0.0.1:port/db"],
            "--postgres-url is not a URL: Port could not be cast to integer value as 'port'",
        ),
    ],
)
def test_env_init_refuses_a_postgres_url_it_cannot_keep_secret_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert main(["env", "init", "--env", "stage", "--root", str(tmp_path), *options]) == 2
    assert capsys.readouterr().err == f"dataops: {message}\n"
    assert not (tmp_path / "stage").exists()  # refused before anything is written


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--webserver-port", "99999"], "--webserver-port 99999 is not a port: valid ports are 1 to 65535"),
        (["--webserver-port", "0"], "--webserver-port 0 is not a port: valid ports are 1 to 65535"),
        (["--code-server-port", "65536"], "--code-server-port 65536 is not a port: valid ports are 1 to 65535"),
        (["--code-server-port", "-1"], "--code-server-port -1 is not a port: valid ports are 1 to 65535"),
        (
            ["--gate-partitions", "2013-01", "2013-13"],
            "--gate-partitions 2013-13 is not a partition: valid months are 2013-01 to 2013-12",
        ),
        (
            ["--gate-partitions", "2014-01", "13"],
            "--gate-partitions 2014-01 13 is not a partition: valid months are 2013-01 to 2013-12",
        ),
    ],
)
def test_env_init_refuses_ports_and_gate_months_out_of_range_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    assert main(["env", "init", "--env", "dev", "--root", str(tmp_path), *options]) == 2
    assert capsys.readouterr().err == f"dataops: {message}\n"
    assert not (tmp_path / "dev").exists()


def test_env_init_accepts_the_edges_of_the_valid_ranges(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["env", "init", "--env", "dev", "--root", str(tmp_path), "--webserver-port", "1"]
    assert main([*argv, "--code-server-port", "65535", "--gate-partitions", *MONTH_KEYS]) == 0
    config = EnvironmentRoot(tmp_path, "dev").config()
    assert (config.webserver_port, config.code_server_port, config.gate_partitions) == (1, 65535, MONTH_KEYS)
    assert "127.0.0.1:65535" in capsys.readouterr().out
    with pytest.raises(InvalidSettingError, match="valid ports are 1 to 65535"):
        EnvironmentRoot(tmp_path, "dev").init(webserver_port=70000)  # the same check for callers of the API


def test_a_deployed_instance_finds_dead_runs_through_run_monitoring(tmp_path: Path) -> None:
    """The dev environment's dagster.yaml loads as an instance whose launcher checks run health and whose daemon
    monitors runs, so a run whose process died is failed instead of staying STARTED."""
    (tmp_path / "dagster.yaml").write_text(instance_yaml(EnvironmentConfig("dev", 3001, 4001)))
    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert isinstance(instance.run_launcher, LocalRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["poll_interval_seconds"] == 5
