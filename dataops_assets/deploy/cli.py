"""``dataops build``, ``env``, ``deploy``, ``promote``, ``rollback`` and ``status``; ``register`` adds them."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from dataops_assets.deploy.artifact import ArtifactError, build_artifact
from dataops_assets.deploy.environment_root import (
    DeployLockedError,
    EnvironmentNotReadyError,
    EnvironmentRoot,
    default_root,
)
from dataops_assets.deploy.processes import ServiceError
from dataops_assets.deploy.services import start_daemon, start_webserver, stop_services
from dataops_assets.environments import ENVIRONMENT_NAMES, UnknownEnvironmentError

_ENVS = list(ENVIRONMENT_NAMES)
_ROOT_HELP = "environments root (default: $DATAOPS_DEPLOY_ROOT, else var/environments)"
_GATE_TIMEOUT_HELP = "seconds the gate may take this time (default: the environment's, set by `env init`)"


def register(subparsers: Any) -> None:
    """Add the deploy subcommands to the ``dataops`` parser's subparsers; handlers take ``(settings, args)``."""
    build = subparsers.add_parser("build", help="build the wheel and sdist once and write manifest.json")
    build.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")
    build.add_argument("--source", type=Path, default=Path(), help="project folder (default: .)")
    build.set_defaults(handler=_build)

    env = subparsers.add_parser("env", help="set up, start and stop an environment's instance on 127.0.0.1")
    env_commands = env.add_subparsers(required=True, metavar="ACTION")
    init = env_commands.add_parser("init", help="write environment.json, dagster.yaml and workspace.yaml")
    _common(init)
    init.add_argument("--webserver-port", type=int)
    init.add_argument("--code-server-port", type=int)
    init.add_argument("--postgres-url", help="instance storage for stage/prod, e.g. postgresql://user@127.0.0.1/db")
    init.add_argument("--gate-partitions", nargs="+", metavar="YYYY-MM", help="partitions the gate runs")
    init.add_argument("--gate-timeout", type=float, default=900.0, help="seconds the whole gate may take")
    init.add_argument("--dependency-base", help="Python whose site-packages provide the locked dependencies")
    init.set_defaults(handler=_env_init)
    up = env_commands.add_parser("up", help="start the webserver (and daemon) detached; pids under run/")
    _common(up)
    up.add_argument("--no-daemon", action="store_true", help="do not start dagster-daemon")
    up.set_defaults(handler=_env_up)
    down = env_commands.add_parser("down", help="stop daemon, webserver and code server by their pids")
    _common(down)
    down.set_defaults(handler=_env_down)

    deploy = subparsers.add_parser("deploy", help="verify, install, switch, reload, gate; roll back on failure")
    _common(deploy)
    deploy.add_argument("--artifact", type=Path, required=True, help="the wheel")
    deploy.add_argument("--manifest", type=Path, help="default: manifest.json beside the wheel")
    deploy.add_argument("--gate-timeout", type=float, help=_GATE_TIMEOUT_HELP)
    deploy.set_defaults(handler=_deploy)

    promote = subparsers.add_parser("promote", help="deploy one environment's current artifact to the next")
    promote.add_argument("--from", dest="source", required=True, choices=_ENVS)
    promote.add_argument("--to", dest="target", required=True, choices=_ENVS)
    promote.add_argument("--root", type=Path, help=_ROOT_HELP)
    promote.add_argument("--gate-timeout", type=float, help=_GATE_TIMEOUT_HELP)
    promote.set_defaults(handler=_promote)

    rollback = subparsers.add_parser("rollback", help="put an environment back on its previous release")
    _common(rollback)
    rollback.set_defaults(handler=_rollback)

    status = subparsers.add_parser("status", help="which version runs where, since when, with which gate result")
    status.add_argument("--root", type=Path)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=_status)


def _common(parser: argparse.ArgumentParser) -> None:
    # Not `choices`: an unknown environment gets the same message from every entry point.
    parser.add_argument("--env", required=True, help=f"one of {', '.join(_ENVS)}")
    parser.add_argument("--root", type=Path, help=_ROOT_HELP)


def _root(args: argparse.Namespace) -> Path:

    return Path(args.root) if args.root else default_root()


def _fail(message: str, code: int = 1) -> int:
    print(f"dataops: {message}", file=sys.stderr)
    return code


def _build(settings: object, args: argparse.Namespace) -> int:

    try:
        manifest, wheel = build_artifact(args.source.resolve(), args.out.resolve())
    except ArtifactError as error:
        return _fail(str(error))
    for item in manifest.files:
        print(f"{item.sha256}  {item.name}")
    print(f"version {manifest.version}; manifest {args.out / 'manifest.json'}; wheel {wheel}")
    return 0


def _env_init(settings: object, args: argparse.Namespace) -> int:

    try:
        env = EnvironmentRoot(_root(args), args.env)
        config = env.init(
            webserver_port=args.webserver_port,
            code_server_port=args.code_server_port,
            postgres_url=args.postgres_url,
            gate_partitions=tuple(args.gate_partitions) if args.gate_partitions else None,
            gate_timeout_s=args.gate_timeout,
            dependency_base=args.dependency_base,
        )
    except (UnknownEnvironmentError, EnvironmentNotReadyError) as error:
        return _fail(str(error), 2)
    storage = "PostgreSQL" if config.postgres_url else "SQLite"
    gate = ", ".join(config.gate_partitions) or "read-only"
    print(
        f"{env.name}: {env.path} (webserver 127.0.0.1:{config.webserver_port}, code server "
        f"127.0.0.1:{config.code_server_port}, {storage} storage, gate {gate})"
    )
    return 0


def _env_up(settings: object, args: argparse.Namespace) -> int:

    try:
        env = EnvironmentRoot(_root(args), args.env)
        pid = start_webserver(env)
        print(f"{env.name}: webserver pid {pid} on 127.0.0.1:{env.config().webserver_port}")
        if not args.no_daemon:
            print(f"{env.name}: daemon pid {start_daemon(env)}")
    except (UnknownEnvironmentError, EnvironmentNotReadyError, ServiceError) as error:
        return _fail(str(error), 2)
    return 0


def _env_down(settings: object, args: argparse.Namespace) -> int:

    try:
        env = EnvironmentRoot(_root(args), args.env)
    except UnknownEnvironmentError as error:
        return _fail(str(error), 2)
    stop_services(env)
    print(f"{env.name}: services stopped")
    return 0


def _operations() -> Any:
    """``deploy.py`` pulls in DuckDB and pandas (through the gates): imported only by the commands that use it."""
    import dataops_assets.deploy.deploy as operations  # noqa: PLC0415

    return operations


def _deploy(settings: object, args: argparse.Namespace) -> int:

    return _guarded(
        lambda: _operations().deploy(
            _root(args), args.env, args.artifact.resolve(), args.manifest, gate_timeout_s=args.gate_timeout
        )
    )


def _promote(settings: object, args: argparse.Namespace) -> int:

    return _guarded(
        lambda: _operations().promote(_root(args), args.source, args.target, gate_timeout_s=args.gate_timeout)
    )


def _rollback(settings: object, args: argparse.Namespace) -> int:

    return _guarded(lambda: _operations().rollback(_root(args), args.env))


def _guarded(action: Any) -> int:

    operations = _operations()
    try:
        action()
    except (UnknownEnvironmentError, EnvironmentNotReadyError) as error:
        return _fail(str(error), 2)
    except (operations.DeployError, DeployLockedError, ArtifactError) as error:
        return _fail(str(error), 3)
    except operations.DeployFailedError as error:
        return _fail(str(error), 1)
    return 0


def _status(settings: object, args: argparse.Namespace) -> int:

    operations = _operations()
    rows = operations.status(_root(args))
    print(json.dumps(rows, indent=2) if args.json else operations.format_status(rows))
    return 0
