"""The import-direction contracts of ``pyproject.toml`` (``lint-imports``) catch a reversed import.

Both packages and ``pyproject.toml`` are copied into ``tmp_path`` and ``lint-imports`` runs on the copy (its
config, working directory and ``PYTHONPATH``), so the check reads the copied code, not the installed checkout.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
TOOLING_CONTRACT = "The tooling imports the pipeline, never the reverse"
PACKAGES = ("dataops_assets", "dataops_ops")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The two packages and ``pyproject.toml`` copied into ``tmp_path``, without bytecode."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def lint_imports(checkout: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(checkout)}
    command = [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(checkout / "pyproject.toml")]
    return subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_the_contracts_hold_on_the_unmodified_packages(checkout: Path) -> None:
    result = lint_imports(checkout)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{TOOLING_CONTRACT} KEPT" in result.stdout


def test_a_pipeline_module_importing_the_tooling_breaks_the_contract(checkout: Path) -> None:
    environments = checkout / "dataops_assets" / "environments.py"
    environments.write_text(environments.read_text() + "\nimport dataops_ops.cli  # noqa: E402, F401\n")
    result = lint_imports(checkout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{TOOLING_CONTRACT} BROKEN" in result.stdout
    assert "dataops_assets.environments -> dataops_ops.cli" in result.stdout
