"""``dataops deploy``, ``promote``, ``rollback`` and ``status``: one artifact through dev → stage → prod.

A deploy holds the environment's lock; until the webserver has answered nothing changes; after the code server was
switched any failure puts the previous release back (the steps are in ``deploy/README.md``). Each returns the audit
record it appended.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from dataops_assets.environments import ENVIRONMENT_NAMES
from dataops_ops.deploy import errors
from dataops_ops.deploy.artifact import MANIFEST_NAME, VerifiedArtifact, verify_artifact
from dataops_ops.deploy.environment_root import EnvironmentConfig, EnvironmentRoot, Release
from dataops_ops.deploy.gates import GateFailedError, Log, run_gate
from dataops_ops.deploy.services import (
    code_server_alive,
    served_python,
    start_code_server,
    stop_code_server,
    terminate_gate_runs,
)
from dataops_ops.deploy.webserver import Webserver
from dataops_ops.preview import STATE_FILE
from dataops_ops.processes import Interrupted, interrupt_on_signals, run

Record = dict[str, Any]
_PROMOTIONS = {("dev", "stage"), ("stage", "prod")}
# Faults after which the environment is put back on its previous release.
_ROLLBACK_ON = (
    errors.ServiceError,
    errors.LocationLoadError,
    errors.WebserverError,
    errors.GateTimeoutError,
    GateFailedError,
    OSError,
)


def deploy(
    root: Path,
    env_name: str,
    wheel: Path,
    manifest: Path | None = None,
    *,
    log: Log = print,
    event: str = "deploy",
    gate_timeout_s: float | None = None,
) -> Record:
    """Verify, install, switch, reload, gate and record the release's definitions state; roll back on failure.
    ``gate_timeout_s`` overrides the environment's configured gate timeout for this deploy only. SIGINT or SIGTERM
    stops it: the gate's runs are terminated through Dagster, the previous release restored, and ``Interrupted``
    raised."""
    with interrupt_on_signals():
        return _deploy(root, env_name, wheel, manifest, log=log, event=event, gate_timeout_s=gate_timeout_s)


def _deploy(
    root: Path,
    env_name: str,
    wheel: Path,
    manifest: Path | None,
    *,
    log: Log,
    event: str,
    gate_timeout_s: float | None,
) -> Record:
    started = time.monotonic()
    env = EnvironmentRoot(root, env_name)
    config = env.config()
    config = config if gate_timeout_s is None else replace(config, gate_timeout_s=gate_timeout_s)
    try:
        artifact = verify_artifact(wheel, manifest)
    except errors.ArtifactError as error:
        env.append_audit(event, "refused", artifact=str(wheel), reason=str(error))
        raise errors.DeployError(f"{env_name}: {error}; {env_name} stays on its current release") from None
    log(f"{env_name}: artifact {artifact.wheel.name} verified (sha256 {artifact.sha256[:12]}…)")
    details = {"version": artifact.version, "sha256": artifact.sha256, "wheel": artifact.wheel.name}
    with env.lock(f"{event} {artifact.version}"):
        webserver = Webserver(config.webserver_port)
        try:
            if env_name == "prod":
                require_stage_pass(root, artifact.sha256)
            webserver.ping()
        except (errors.DeployError, errors.WebserverError) as error:
            env.append_audit(event, "refused", reason=str(error), **details)
            raise errors.DeployError(f"{env_name}: {error}; nothing was changed") from None
        previous = env.current()
        if previous is not None and previous.sha256 == artifact.sha256 and code_server_alive(env):
            log(f"{env_name}: {artifact.version} is already the current release; nothing to do")
            return env.append_audit(event, "unchanged", **details)
        try:
            release = install_release(env, config, artifact, log)
            activate(env, config, release, webserver, log)
            gate = run_gate(env, config, release, webserver, log)
            if not gate.passed:
                raise GateFailedError(gate)
            record_definitions_state(env, release, log)
        except Interrupted as interrupt:
            stopped = _stop_interrupted(env, config, previous, webserver, version=artifact.version, log=log)
            env.append_audit(event, "rolled_back", reason=f"interrupted by {interrupt.name}", **stopped, **details)
            raise
        except _ROLLBACK_ON as error:
            failed = error.result if isinstance(error, GateFailedError) else None
            restored = _restore(env, config, previous, webserver, log)
            outcome: Record = {"failures": failed.failures if failed else [str(error)], "restored": restored}
            outcome |= {"gate": asdict(failed) if failed else None, "seconds": _since(started)}
            env.append_audit(event, "rolled_back", reason=str(error), **outcome, **details)
            where = f"rolled back to {restored}" if previous else "no previous release to restore"
            raise errors.DeployFailedError(
                f"{env_name}: deploy of {artifact.version} failed; {where}.\n{error}"
            ) from None
        env.set_current(release)
        log(f"{env_name}: {artifact.version} is live; gate {gate.gate} passed in {gate.seconds:.0f}s")
        before = previous.version if previous else None
        return env.append_audit(
            event, "succeeded", gate=asdict(gate), previous=before, seconds=_since(started), **details
        )


def promote(root: Path, source: str, target: str, log: Log = print, gate_timeout_s: float | None = None) -> Record:
    """Deploy the source environment's current artifact (the very wheel and manifest it passed with)."""
    if (source, target) not in _PROMOTIONS:
        allowed = ", ".join(f"{a} → {b}" for a, b in sorted(_PROMOTIONS))
        raise errors.DeployError(f"cannot promote {source} → {target}; allowed: {allowed}")
    release = EnvironmentRoot(root, source).current()
    if release is None:
        raise errors.DeployError(f"{source} has no current release to promote")
    log(f"promoting {release.version} from {source} to {target}")
    wheel, manifest = release.path / "artifact" / release.wheel, release.path / "artifact" / MANIFEST_NAME
    return deploy(root, target, wheel, manifest, log=log, event="promote", gate_timeout_s=gate_timeout_s)


def rollback(root: Path, env_name: str, log: Log = print) -> Record:
    """Put the environment back on the release that was live before the current one."""
    env = EnvironmentRoot(root, env_name)
    config = env.config()
    with env.lock("rollback"):
        current = env.current()
        target = _previous_release(env, current)
        if target is None:
            raise errors.DeployError(f"{env_name}: no earlier successful release to roll back to")
        webserver = Webserver(config.webserver_port)
        try:
            webserver.ping()
            activate(env, config, target, webserver, log)
        except _ROLLBACK_ON as error:
            restored = _restore(env, config, current, webserver, log)
            env.append_audit("rollback", "failed", version=target.version, reason=str(error), restored=restored)
            message = f"{env_name}: rollback to {target.version} failed ({error}); on {restored}"
            raise errors.DeployFailedError(message) from None
        env.set_current(target)
        before = current.version if current else None
        log(f"{env_name}: rolled back from {before or 'nothing'} to {target.version}")
        details = {"version": target.version, "sha256": target.sha256, "wheel": target.wheel}
        return env.append_audit("rollback", "succeeded", previous=before, **details)


def _stop_interrupted(
    env: EnvironmentRoot,
    config: EnvironmentConfig,
    previous: Release | None,
    webserver: Webserver,
    *,
    version: str,
    log: Log,
) -> Record:
    """After SIGINT/SIGTERM: the gate's runs terminated through Dagster (they end CANCELED), then the previous
    release back; what happened, for the audit log."""
    try:
        runs = terminate_gate_runs(webserver, version)
    except errors.WebserverError as error:  # the daemon's run monitoring ends them later
        runs = [f"not terminated: {error}"]
    restored = _restore(env, config, previous, webserver, log)
    log(f"{env.name}: stopped; gate runs ended: {', '.join(runs) or 'none'}; back on {restored}")
    return {"runs": runs, "restored": restored}


def require_stage_pass(root: Path, sha256: str) -> None:
    """Prod refuses an artifact unless stage's audit log records this sha256 passing its gate."""
    live = [record for record in EnvironmentRoot(root, "stage").went_live() if record.get("sha256") == sha256]
    if any((record.get("gate") or {}).get("passed") for record in live):  # a rollback records no gate
        return
    raise errors.DeployError(
        f"prod refuses artifact sha256 {sha256[:12]}…: stage's audit log has no passed stage gate for it; "
        "deploy it to stage first (`dataops promote --from stage --to prod`)"
    )


def install_release(env: EnvironmentRoot, config: EnvironmentConfig, artifact: VerifiedArtifact, log: Log) -> Release:
    """A fresh virtualenv with the wheel installed ``--no-deps``.

    The third-party dependencies are not installed again: a ``.pth`` file puts the site-packages of the dependency
    base (``environment.json: dependency_base``, default the interpreter running ``dataops``: the venv built from
    requirements.lock) after the release's own. A plain path line does not run the base's ``.pth`` files, so an
    editable checkout installed there stays invisible: the code server imports ``dataops_assets`` from the wheel.
    """
    path = env.releases_dir / artifact.version
    current = env.current()
    if current is not None and current.path == path:
        path = env.releases_dir / f"{artifact.version}~{int(time.time())}"
    shutil.rmtree(path, ignore_errors=True)
    (path / "artifact").mkdir(parents=True)
    wheel = Path(shutil.copy2(artifact.wheel, path / "artifact" / artifact.wheel.name))
    (path / "artifact" / MANIFEST_NAME).write_text(artifact.manifest.to_json())
    base, python = config.dependency_base or sys.executable, str(path / "venv" / "bin" / "python")
    log(f"  installing {artifact.wheel.name} into {path / 'venv'}")
    run([base, "-m", "venv", "--without-pip", str(path / "venv")])
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site, base_site = (run([interpreter, "-c", purelib]).strip() for interpreter in (python, base))
    (Path(site) / "_dataops_dependency_base.pth").write_text(base_site + "\n")
    run([base, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index", str(wheel)])
    probe = (
        "import dataops_assets, importlib.metadata as m; print(dataops_assets.__file__, m.version('dataops-assets'))"
    )
    where, version = run([python, "-c", probe], cwd=path).split()
    if not Path(where).resolve().is_relative_to(path.resolve()) or version != artifact.version:
        raise errors.ArtifactError(f"release venv imports dataops_assets {version} from {where}, not the artifact")
    return env.write_release(path, artifact.version, artifact.sha256, artifact.wheel.name)


def record_definitions_state(env: EnvironmentRoot, release: Release, log: Log) -> Path:
    """The release's definitions state (``dataops_ops.preview.state``), written into its folder by its own
    interpreter: what a preview of a pull request compares with while the release is live."""
    out = release.path / STATE_FILE
    command = [str(release.python), "-m", "dataops_ops.preview.state", "--env", env.name, "--out", str(out)]
    run(command, cwd=release.path, env=env.process_environment())
    log(f"  definitions state of {release.version} recorded in {out.name}")
    return out


def activate(env: EnvironmentRoot, config: EnvironmentConfig, release: Release, webserver: Webserver, log: Log) -> None:
    """Restart the code server from the release's venv, prove it serves the release, reload the location."""
    start_code_server(env, config, release)
    served = served_python(config.code_server_port)  # a definitions error surfaces here, with its cause
    if served is None or not Path(served).is_relative_to(release.path):
        raise errors.LocationLoadError(f"{config.location_name} is served by {served}, not by {release.python}")
    webserver.reload(config.location_name)
    log(f"  location {config.location_name} reloaded: LOADED from {release.path.name}")


def _restore(
    env: EnvironmentRoot, config: EnvironmentConfig, previous: Release | None, webserver: Webserver, log: Log
) -> str:
    """Back onto ``previous`` (or no code server at all when there was none); returns what the env now runs."""
    if previous is None:
        stop_code_server(env)
        return "nothing (first release)"
    log(f"  restoring {previous.version}")
    try:
        activate(env, config, previous, webserver, log)
    except _ROLLBACK_ON as error:
        return f"{previous.version} (restart failed: {error})"
    env.set_current(previous)
    return previous.version


def _previous_release(env: EnvironmentRoot, current: Release | None) -> Release | None:
    """The latest release that went live before ``current`` and is still installed."""
    for record in reversed(env.went_live()):
        if current is not None and record.get("sha256") == current.sha256:
            continue
        for path in sorted(env.releases_dir.glob(f"{record.get('version')}*")):
            if (path / "release.json").is_file() and env.read_release(path).sha256 == record.get("sha256"):
                return env.read_release(path)
    return None


def _since(started: float) -> float:
    return round(time.monotonic() - started, 1)


def status(root: Path) -> list[Record]:
    """Per initialised environment: the current version, since when, its gate result and the services' state."""
    rows = []
    for env in (EnvironmentRoot(root, name) for name in ENVIRONMENT_NAMES):
        if not env.config_file.is_file():
            continue
        current, records = env.current(), env.audit_records()
        # `since`: when the current release last went live (a deploy, promote or rollback); its gate result: the
        # latest gate it passed in this environment (a rollback reinstates a release without re-running it).
        live = [record for record in env.went_live() if current and record.get("sha256") == current.sha256]
        gate: Record = next((r["gate"] for r in reversed(live) if r.get("gate")), {})
        rows.append(
            {
                "env": env.name,
                "version": current.version if current else None,
                "sha256": current.sha256 if current else None,
                "since": live[-1].get("time") if live else None,
                "gate": gate.get("gate"),
                "gate_passed": gate.get("passed"),
                "gate_runs": len(gate.get("runs") or []),
                "last_event": f"{records[-1]['event']} {records[-1]['status']}" if records else None,
                "code_server": "up" if code_server_alive(env) else "down",
                "webserver": "up" if Webserver(env.config().webserver_port, timeout_s=3).is_up() else "down",
            }
        )
    return rows


def format_status(rows: list[Record]) -> str:
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
