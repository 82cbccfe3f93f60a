"""``dataops deploy``, ``promote``, ``rollback`` and ``status``: one artifact through dev → stage → prod.

A deploy, holding the environment's lock:
1. verifies the wheel against its manifest (sha256, size, version); prod also demands that stage's audit log
   records this very sha256 as having passed the stage gate;
2. checks the webserver answers; until here nothing has changed;
3. installs the wheel into a fresh release virtualenv (``--no-deps``: the artifact's own code; the locked
   dependencies come from the dependency base, see ``install_release``);
4. restarts the environment's code server from the release venv and reloads the location through GraphQL;
5. runs the environment's gate through GraphQL;
6. on success points ``current`` at the release and appends to the audit log; on any failure restarts the previous
   release's code server, reloads it, appends the failure and raises ``DeployFailedError``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from dataops_assets.deploy.artifact import MANIFEST_NAME, ArtifactError, VerifiedArtifact, verify_artifact
from dataops_assets.deploy.environment_root import EnvironmentConfig, EnvironmentRoot, Release
from dataops_assets.deploy.gates import GateFailedError, GateResult, run_gate
from dataops_assets.deploy.processes import (
    ServiceError,
    is_alive,
    read_pid,
    start_detached,
    stop_pid_file,
    wait_for_port,
    wait_port_free,
)
from dataops_assets.deploy.webserver import (
    GateTimeoutError,
    LocationLoadError,
    WebserverClient,
    WebserverError,
    code_server_executable,
)
from dataops_assets.environments import DATA_ROOT_VAR, ENV_VAR

Log = Callable[[str], None]
_PROMOTIONS = {("dev", "stage"), ("stage", "prod")}
# Faults after which the environment is put back on its previous release.
_ROLLBACK_ON = (ServiceError, LocationLoadError, WebserverError, GateTimeoutError, GateFailedError, OSError)


class DeployError(RuntimeError):
    """A deploy refused before changing anything (bad artifact, not allowed, webserver down...)."""


class DeployFailedError(RuntimeError):
    """A deploy that changed the environment failed and was rolled back."""


@dataclass(frozen=True)
class DeployReport:
    env: str
    version: str
    sha256: str
    outcome: str  # succeeded, unchanged
    gate: GateResult | None
    seconds: float


def deploy(
    root: Path,
    env_name: str,
    wheel: Path,
    manifest: Path | None = None,
    *,
    log: Log = print,
    event: str = "deploy",
    gate_timeout_s: float | None = None,
) -> DeployReport:
    """Verify, install, switch, reload and gate; roll back on failure. ``gate_timeout_s`` overrides the
    environment's configured gate timeout for this deploy only."""
    started = time.monotonic()
    env = EnvironmentRoot(root, env_name)
    config = env.config()
    if gate_timeout_s is not None:
        config = replace(config, gate_timeout_s=gate_timeout_s)
    try:
        artifact = verify_artifact(wheel, manifest)
    except ArtifactError as error:
        env.append_audit(event, "refused", artifact=str(wheel), reason=str(error))
        raise DeployError(f"{env_name}: {error}; {env_name} stays on its current release") from None
    log(f"{env_name}: artifact {artifact.wheel.name} verified (sha256 {artifact.sha256[:12]}…)")
    with env.lock(f"{event} {artifact.version}"):
        details = {"version": artifact.version, "sha256": artifact.sha256, "wheel": artifact.wheel.name}
        if env_name == "prod":
            try:
                require_stage_pass(root, artifact.sha256)
            except DeployError as error:
                env.append_audit(event, "refused", reason=str(error), **details)
                raise
        client = WebserverClient(config.webserver_port)
        try:
            client.ping()
        except WebserverError as error:
            env.append_audit(event, "refused", reason=str(error), **details)
            raise DeployError(f"{env_name}: {error}; nothing was changed") from None
        previous = env.current()
        if previous is not None and previous.sha256 == artifact.sha256 and _code_server_alive(env):
            log(f"{env_name}: {artifact.version} is already the current release; nothing to do")
            env.append_audit(event, "unchanged", **details)
            return DeployReport(env_name, artifact.version, artifact.sha256, "unchanged", None, 0.0)
        release: Release | None = None
        try:
            release = install_release(env, config, artifact, log)
            activate(env, config, release, client, log)
            gate = run_gate(env, config, release, client, log)
            if not gate.passed:
                raise GateFailedError(gate)
        except _ROLLBACK_ON as error:
            failed_gate = error.result if isinstance(error, GateFailedError) else None
            restored = _restore(env, config, previous, client, log)
            env.append_audit(
                event,
                "rolled_back",
                reason=str(error),
                failures=failed_gate.failures if failed_gate else [str(error)],
                gate=failed_gate.as_record() if failed_gate else None,
                restored=restored,
                seconds=round(time.monotonic() - started, 1),
                **details,
            )
            where = f"rolled back to {restored}" if previous else "no previous release to restore"
            raise DeployFailedError(f"{env_name}: deploy of {artifact.version} failed; {where}.\n{error}") from None
        env.set_current(release)
        seconds = time.monotonic() - started
        env.append_audit(
            event,
            "succeeded",
            gate=gate.as_record(),
            previous=previous.version if previous else None,
            seconds=round(seconds, 1),
            **details,
        )
        log(f"{env_name}: {artifact.version} is live; gate {gate.gate} passed in {gate.seconds:.0f}s")
        return DeployReport(env_name, artifact.version, artifact.sha256, "succeeded", gate, seconds)


def promote(
    root: Path, source: str, target: str, log: Log = print, gate_timeout_s: float | None = None
) -> DeployReport:
    """Deploy the source environment's current artifact (the very wheel and manifest it passed with)."""
    if (source, target) not in _PROMOTIONS:
        allowed = ", ".join(f"{a} → {b}" for a, b in sorted(_PROMOTIONS))
        raise DeployError(f"cannot promote {source} → {target}; allowed: {allowed}")
    release = EnvironmentRoot(root, source).current()
    if release is None:
        raise DeployError(f"{source} has no current release to promote")
    artifact_dir = release.path / "artifact"
    log(f"promoting {release.version} from {source} to {target}")
    return deploy(
        root,
        target,
        artifact_dir / release.wheel,
        artifact_dir / MANIFEST_NAME,
        log=log,
        event="promote",
        gate_timeout_s=gate_timeout_s,
    )


def rollback(root: Path, env_name: str, log: Log = print) -> Release:
    """Put the environment back on the release that was live before the current one."""
    env = EnvironmentRoot(root, env_name)
    config = env.config()
    with env.lock("rollback"):
        current = env.current()
        target = _previous_release(env, current)
        if target is None:
            raise DeployError(f"{env_name}: no earlier successful release to roll back to")
        client = WebserverClient(config.webserver_port)
        try:
            client.ping()
            activate(env, config, target, client, log)
        except _ROLLBACK_ON as error:
            restored = _restore(env, config, current, client, log)
            env.append_audit("rollback", "failed", version=target.version, reason=str(error), restored=restored)
            raise DeployFailedError(
                f"{env_name}: rollback to {target.version} failed ({error}); on {restored}"
            ) from None
        env.set_current(target)
        env.append_audit(
            "rollback",
            "succeeded",
            version=target.version,
            sha256=target.sha256,
            wheel=target.wheel,
            previous=current.version if current else None,
        )
        log(f"{env_name}: rolled back from {current.version if current else 'nothing'} to {target.version}")
        return target


def require_stage_pass(root: Path, sha256: str) -> dict[str, Any]:
    """The stage audit record of this sha256 passing its gate; prod refuses the artifact without one."""
    for record in reversed(EnvironmentRoot(root, "stage").audit_records()):
        gate = record.get("gate") or {}
        if (
            record.get("sha256") == sha256
            and record.get("status") == "succeeded"
            and record.get("event") in {"deploy", "promote"}
            and gate.get("passed")
        ):
            return record
    raise DeployError(
        f"prod refuses artifact sha256 {sha256[:12]}…: stage's audit log has no passed stage gate for it; "
        "deploy it to stage first (`dataops promote --from stage --to prod`)"
    )


# -- releases and the code server ---------------------------------------------------------------------------------
def install_release(env: EnvironmentRoot, config: EnvironmentConfig, artifact: VerifiedArtifact, log: Log) -> Release:
    """A fresh virtualenv with the wheel installed ``--no-deps``.

    The third-party dependencies are not installed again: a ``.pth`` file puts the site-packages of the dependency
    base (``environment.json: dependency_base``, default the interpreter running ``dataops``: the venv built from
    requirements.lock) after the release's own. A plain path line does not run the base's ``.pth`` files, so an
    editable checkout installed there stays invisible: the code server imports ``dataops_assets`` from the wheel.
    """
    path = env.release_dir(artifact.version)
    current = env.current()
    if current is not None and current.path == path:
        path = env.release_dir(f"{artifact.version}~{int(time.time())}")
    if path.exists():
        shutil.rmtree(path)
    (path / "artifact").mkdir(parents=True)
    shutil.copy2(artifact.wheel, path / "artifact" / artifact.wheel.name)
    (path / "artifact" / MANIFEST_NAME).write_text(artifact.manifest.to_json())
    base = Path(config.dependency_base) if config.dependency_base else Path(sys.executable)
    log(f"  installing {artifact.wheel.name} into {path / 'venv'}")
    _run([str(base), "-m", "venv", "--without-pip", str(path / "venv")])
    python = path / "venv" / "bin" / "python"
    site = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    base_site = _run([str(base), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).strip()
    (Path(site) / "_dataops_dependency_base.pth").write_text(base_site + "\n")
    wheel = path / "artifact" / artifact.wheel.name
    _run([str(base), "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)])
    probe = (
        "import dataops_assets, importlib.metadata as m; print(dataops_assets.__file__, m.version('dataops-assets'))"
    )
    where, version = _run([str(python), "-c", probe], cwd=path).split()
    if not Path(where).resolve().is_relative_to(path.resolve()) or version != artifact.version:
        raise ArtifactError(f"release venv imports dataops_assets {version} from {where}, not the artifact")
    return env.write_release(path, artifact.version, artifact.sha256, artifact.wheel.name)


def activate(
    env: EnvironmentRoot, config: EnvironmentConfig, release: Release, client: WebserverClient, log: Log
) -> None:
    """Restart the code server from the release's venv and reload the location until it is LOADED from it."""
    start_code_server(env, config, release)
    client.wait_loaded(config.location_name, config.load_timeout_s)
    served = code_server_executable(config.code_server_port)
    if served is None or not Path(served).is_relative_to(release.path):
        raise LocationLoadError(f"{config.location_name} is served by {served}, not by {release.python}")
    log(f"  location {config.location_name} reloaded: LOADED from {release.path.name}")


def start_code_server(env: EnvironmentRoot, config: EnvironmentConfig, release: Release) -> int:
    stop_code_server(env)
    wait_port_free("127.0.0.1", config.code_server_port, timeout_s=15)
    environment = {**os.environ, ENV_VAR: env.name, DATA_ROOT_VAR: str(env.root), "DAGSTER_HOME": str(env.dagster_home)}
    environment.pop("PYTHONPATH", None)
    command = [
        str(release.python),
        "-m",
        "dagster",
        "code-server",
        "start",
        "-h",
        "127.0.0.1",
        "-p",
        str(config.code_server_port),
        "-m",
        "dataops_assets.definitions",
        "--location-name",
        config.location_name,
    ]
    pid = start_detached(
        command, env.run_dir / "code-server.log", cwd=release.path, env=environment, pid_file=env.code_server_pidfile
    )
    wait_for_port("127.0.0.1", config.code_server_port, timeout_s=config.load_timeout_s, pid=pid, what="code server")
    return pid


def stop_code_server(env: EnvironmentRoot) -> None:
    stop_pid_file(env.code_server_pidfile, grace_s=10.0)


def _code_server_alive(env: EnvironmentRoot) -> bool:
    pid = read_pid(env.code_server_pidfile)
    return pid is not None and is_alive(pid)


def _restore(
    env: EnvironmentRoot, config: EnvironmentConfig, previous: Release | None, client: WebserverClient, log: Log
) -> str:
    """Back onto ``previous`` (or no code server at all when there was none); returns what the env now runs."""
    if previous is None:
        stop_code_server(env)
        return "nothing (first release)"
    log(f"  restoring {previous.version}")
    try:
        activate(env, config, previous, client, log)
    except _ROLLBACK_ON as error:
        return f"{previous.version} (restart failed: {error})"
    env.set_current(previous)
    return previous.version


def _previous_release(env: EnvironmentRoot, current: Release | None) -> Release | None:
    for record in reversed(env.audit_records()):
        if record.get("status") != "succeeded" or record.get("event") not in {"deploy", "promote", "rollback"}:
            continue
        if current is not None and record.get("sha256") == current.sha256:
            continue
        for path in sorted(env.releases_dir.glob(f"{record.get('version')}*")):
            if (path / "release.json").is_file():
                release = env.read_release(path)
                if release.sha256 == record.get("sha256"):
                    return release
    return None


def _run(command: list[str], cwd: Path | None = None) -> str:
    completed = subprocess.run(command, capture_output=True, text=True, check=False, cwd=cwd, timeout=600)
    if completed.returncode != 0:
        raise ServiceError(f"`{' '.join(command[:4])} …` failed: {completed.stderr.strip()[-800:]}")
    return completed.stdout


# -- status --------------------------------------------------------------------------------------------------------
def status(root: Path) -> list[dict[str, Any]]:
    """Per initialised environment: the current version, since when, its gate result and the services' state."""
    rows = []
    for name in ("dev", "stage", "prod"):
        env = EnvironmentRoot(root, name)
        if not env.config_file.is_file():
            continue
        config = env.config()
        current = env.current()
        records = env.audit_records()
        # `since`: when the current release last went live (a deploy, promote or rollback); its gate result: the
        # latest gate it passed in this environment (a rollback reinstates a release without re-running it).
        live_records = [
            r for r in records if current and r.get("sha256") == current.sha256 and r.get("status") == "succeeded"
        ]
        live = live_records[-1] if live_records else None
        gate: dict[str, Any] = next((r["gate"] for r in reversed(live_records) if r.get("gate")), {})
        try:
            WebserverClient(config.webserver_port, timeout_s=3).ping()
            webserver = "up"
        except WebserverError:
            webserver = "down"
        rows.append(
            {
                "env": name,
                "version": current.version if current else None,
                "sha256": current.sha256 if current else None,
                "since": (live or {}).get("time"),
                "gate": gate.get("gate"),
                "gate_passed": gate.get("passed"),
                "gate_runs": len(gate.get("runs") or []),
                "last_event": f"{records[-1]['event']} {records[-1]['status']}" if records else None,
                "code_server": "up" if _code_server_alive(env) else "down",
                "webserver": webserver,
            }
        )
    return rows


def format_status(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "no environment is initialised; run `dataops env init --env dev`"
    lines = [f"{'env':<6} {'version':<40} {'since':<26} {'gate':<34} {'code server':<12} {'webserver':<10} last event"]
    for row in rows:
        gate = "-" if row["gate"] is None else f"{row['gate']} {'passed' if row['gate_passed'] else 'FAILED'}"
        lines.append(
            f"{row['env']:<6} {row['version'] or '-':<40} {row['since'] or '-':<26} {gate:<34} "
            f"{row['code_server']:<12} {row['webserver']:<10} {row['last_event'] or '-'}"
        )
    return "\n".join(lines)
