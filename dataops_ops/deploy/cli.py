"""``dataops build``, ``env``, ``deploy``, ``promote``, ``rollback`` and ``status``; ``register`` adds them.

Each handler imports its work when it runs: building the parser loads neither Dagster nor the deploy modules.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataops_assets.environments import ENVIRONMENT_NAMES

Handler = Callable[[argparse.Namespace], int | None]
_ROOT_HELP = "environments root (default: $DATAOPS_DEPLOY_ROOT, else var/environments)"
_GATE_TIMEOUT_HELP = "seconds the gate may take this time (default: the environment's, set by `env init`)"


def register(subparsers: Any) -> None:
    """Add the deploy subcommands to the ``dataops`` parser's subparsers."""
    build = _command(subparsers, "build", _build, "build the wheel and sdist once and write manifest.json", env=False)
    build.add_argument("--out", type=Path, default=Path("dist"), help="output folder (default: dist)")
    build.add_argument("--source", type=Path, default=Path(), help="project folder (default: .)")

    env = subparsers.add_parser("env", help="set up, start and stop an environment's instance on 127.0.0.1")
    actions = env.add_subparsers(required=True, metavar="ACTION")
    init = _command(actions, "init", _env_init, "write environment.json, dagster.yaml and workspace.yaml")
    init.add_argument("--webserver-port", type=int)
    init.add_argument("--code-server-port", type=int)
    init.add_argument("--postgres-url", help="instance storage for stage/prod, e.g. postgresql://user@127.0.0.1/db")
    init.add_argument("--gate-partitions", nargs="+", metavar="YYYY-MM", help="partitions the gate runs")
    init.add_argument("--gate-timeout", type=float, default=900.0, help="seconds the whole gate may take")
    init.add_argument("--dependency-base", help="Python whose site-packages provide the locked dependencies")
    up = _command(actions, "up", _env_up, "start the webserver (and daemon) detached; pids under run/")
    up.add_argument("--no-daemon", action="store_true", help="do not start dagster-daemon")
    _command(actions, "down", _env_down, "stop daemon, webserver and code server by their pids")

    deploy = _command(subparsers, "deploy", _deploy, "verify, install, switch, reload, gate; roll back on failure")
    deploy.add_argument("--artifact", type=Path, required=True, help="the wheel")
    deploy.add_argument("--manifest", type=Path, help="default: manifest.json beside the wheel")
    deploy.add_argument("--gate-timeout", type=float, help=_GATE_TIMEOUT_HELP)
    promote = _command(subparsers, "promote", _promote, "deploy one environment's current artifact to the next", False)
    promote.add_argument("--from", dest="source", required=True, choices=ENVIRONMENT_NAMES)
    promote.add_argument("--to", dest="target", required=True, choices=ENVIRONMENT_NAMES)
    promote.add_argument("--root", type=Path, help=_ROOT_HELP)
    promote.add_argument("--gate-timeout", type=float, help=_GATE_TIMEOUT_HELP)
    _command(subparsers, "rollback", _rollback, "put an environment back on its previous release")
    status = _command(subparsers, "status", _status, "which version runs where, since when, with which gate", False)
    status.add_argument("--root", type=Path, help=_ROOT_HELP)
    status.add_argument("--json", action="store_true")


def _command(subparsers: Any, name: str, handler: Handler, help: str, env: bool = True) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(name, help=help)
    if env:  # not `choices`: an unknown environment gets the same message from every entry point
        parser.add_argument("--env", required=True, help=f"one of {', '.join(ENVIRONMENT_NAMES)}")
        parser.add_argument("--root", type=Path, help=_ROOT_HELP)
    # `dataops` hands every handler the settings of DATAOPS_ENV; these commands name their environment with --env.
    parser.set_defaults(handler=lambda _settings, args: _guarded(handler, args))
    return parser


def _guarded(handler: Handler, args: argparse.Namespace) -> int:
    """Exit codes: 2 for an unknown or unready environment, 3 for a refused deploy, 1 for a failed one."""
    from dataops_ops.deploy import errors

    try:
        return handler(args) or 0
    except errors.NOT_READY as error:
        return _fail(str(error), 2)
    except errors.REFUSED as error:
        return _fail(str(error), 3)
    except errors.DeployFailedError as error:
        return _fail(str(error), 1)


def _fail(message: str, code: int) -> int:
    print(f"dataops: {message}", file=sys.stderr)
    return code


def _root(args: argparse.Namespace) -> Path:
    from dataops_ops.deploy.environment_root import default_root

    return Path(args.root) if args.root else default_root()


def _build(args: argparse.Namespace) -> int:
    from dataops_ops.deploy.artifact import ArtifactError, build_artifact

    try:
        manifest, wheel = build_artifact(args.source.resolve(), args.out.resolve())
    except ArtifactError as error:
        return _fail(str(error), 1)
    for item in manifest.files:
        print(f"{item.sha256}  {item.name}")
    print(f"version {manifest.version}; manifest {args.out / 'manifest.json'}; wheel {wheel}")
    return 0


def _env_init(args: argparse.Namespace) -> None:
    from dataops_ops.deploy.environment_root import EnvironmentRoot

    env = EnvironmentRoot(_root(args), args.env)
    config = env.init(
        webserver_port=args.webserver_port,
        code_server_port=args.code_server_port,
        postgres_url=args.postgres_url,
        gate_partitions=tuple(args.gate_partitions) if args.gate_partitions else None,
        gate_timeout_s=args.gate_timeout,
        dependency_base=args.dependency_base,
    )
    storage = "PostgreSQL" if config.postgres_url else "SQLite"
    gate = ", ".join(config.gate_partitions) or "read-only"
    print(
        f"{env.name}: {env.path} (webserver 127.0.0.1:{config.webserver_port}, code server "
        f"127.0.0.1:{config.code_server_port}, {storage} storage, gate {gate})"
    )


def _env_up(args: argparse.Namespace) -> None:
    from dataops_ops.deploy.environment_root import EnvironmentRoot
    from dataops_ops.deploy.services import start_daemon, start_webserver

    env = EnvironmentRoot(_root(args), args.env)
    print(f"{env.name}: webserver pid {start_webserver(env)} on 127.0.0.1:{env.config().webserver_port}")
    if not args.no_daemon:
        print(f"{env.name}: daemon pid {start_daemon(env)}")


def _env_down(args: argparse.Namespace) -> None:
    from dataops_ops.deploy.environment_root import EnvironmentRoot
    from dataops_ops.deploy.services import stop_services

    env = EnvironmentRoot(_root(args), args.env)
    stop_services(env)
    print(f"{env.name}: services stopped")


def _deploy(args: argparse.Namespace) -> None:
    from dataops_ops.deploy import deploy

    deploy.deploy(_root(args), args.env, args.artifact.resolve(), args.manifest, gate_timeout_s=args.gate_timeout)


def _promote(args: argparse.Namespace) -> None:
    from dataops_ops.deploy import deploy

    deploy.promote(_root(args), args.source, args.target, gate_timeout_s=args.gate_timeout)


def _rollback(args: argparse.Namespace) -> None:
    from dataops_ops.deploy import deploy

    deploy.rollback(_root(args), args.env)


def _status(args: argparse.Namespace) -> None:
    from dataops_ops.deploy.deploy import format_status, status

    rows = status(_root(args))
    print(json.dumps(rows, indent=2) if args.json else format_status(rows))
