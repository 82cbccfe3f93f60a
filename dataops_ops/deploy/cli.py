"""The handlers of ``dataops build``, ``env init|up|down``, ``deploy``, ``promote``, ``rollback`` and ``status``.

Their arguments are in ``dataops_ops.cli``, which maps the deploy errors to exit codes. The environment they act on
is the one named by ``--env`` (or ``--from``/``--to``), not DATAOPS_ENV.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dataops_assets.environments import Settings
from dataops_ops.deploy import deploy as operations
from dataops_ops.deploy.artifact import build_artifact
from dataops_ops.deploy.environment_root import EnvironmentRoot, default_root
from dataops_ops.deploy.errors import ArtifactError
from dataops_ops.deploy.services import start_daemon, start_webserver, stop_services


def build(settings: Settings, args: argparse.Namespace) -> int:
    try:
        manifest, wheel = build_artifact(args.source.resolve(), args.out.resolve())
    except ArtifactError as error:  # a failed build, not a refused deploy
        print(f"dataops: {error}", file=sys.stderr)
        return 1
    for item in manifest.files:
        print(f"{item.sha256}  {item.name}")
    print(f"version {manifest.version}; manifest {args.out / 'manifest.json'}; wheel {wheel}")
    return 0


def env_init(settings: Settings, args: argparse.Namespace) -> None:
    env = _environment(args)
    config = env.init(
        webserver_port=args.webserver_port,
        code_server_port=args.code_server_port,
        postgres_url=args.postgres_url,
        postgres_password_env=args.postgres_password_env,
        gate_partitions=tuple(args.gate_partitions) if args.gate_partitions else None,
        gate_timeout_s=args.gate_timeout,
        dependency_base=args.dependency_base,
    )
    storage = "PostgreSQL storage" if config.postgres_url else "SQLite storage"
    if config.postgres_password_env:
        storage += f" (password from ${config.postgres_password_env})"
    gate = ", ".join(config.gate_partitions) or "read-only"
    print(
        f"{env.name}: {env.path} (webserver 127.0.0.1:{config.webserver_port}, code server "
        f"127.0.0.1:{config.code_server_port}, {storage}, gate {gate})"
    )


def env_up(settings: Settings, args: argparse.Namespace) -> None:
    env = _environment(args)
    print(f"{env.name}: webserver pid {start_webserver(env)} on 127.0.0.1:{env.config().webserver_port}")
    if not args.no_daemon:
        print(f"{env.name}: daemon pid {start_daemon(env)}")


def env_down(settings: Settings, args: argparse.Namespace) -> None:
    env = _environment(args)
    stop_services(env)
    print(f"{env.name}: services stopped")


def deploy(settings: Settings, args: argparse.Namespace) -> None:
    operations.deploy(_root(args), args.env, args.artifact.resolve(), args.manifest, gate_timeout_s=args.gate_timeout)


def promote(settings: Settings, args: argparse.Namespace) -> None:
    operations.promote(_root(args), args.source, args.target, gate_timeout_s=args.gate_timeout)


def rollback(settings: Settings, args: argparse.Namespace) -> None:
    operations.rollback(_root(args), args.env)


def status(settings: Settings, args: argparse.Namespace) -> None:
    rows = operations.status(_root(args))
    print(json.dumps(rows, indent=2) if args.json else operations.format_status(rows))


def _root(args: argparse.Namespace) -> Path:
    return Path(args.root) if args.root else default_root()


def _environment(args: argparse.Namespace) -> EnvironmentRoot:
    return EnvironmentRoot(_root(args), args.env)
