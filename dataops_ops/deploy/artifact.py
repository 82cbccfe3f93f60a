"""The release artifact: the wheel and sdist built once, and a manifest with each file's sha256 and the version.

The same files travel through every environment; a deploy verifies the wheel against the manifest before anything
else happens, so a corrupted or swapped file never reaches a code server.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from dataops_ops.deploy.errors import ArtifactError

MANIFEST_NAME = "manifest.json"


@dataclass(frozen=True)
class ArtifactFile:
    name: str
    sha256: str
    size: int

    @classmethod
    def of(cls, path: Path) -> ArtifactFile:
        with path.open("rb") as handle:
            return cls(path.name, hashlib.file_digest(handle, "sha256").hexdigest(), path.stat().st_size)


@dataclass(frozen=True)
class Manifest:
    version: str
    files: tuple[ArtifactFile, ...]
    built_at: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            payload = json.loads(path.read_text())
            files = tuple(ArtifactFile(str(f["name"]), str(f["sha256"]), int(f["size"])) for f in payload["files"])
            return cls(str(payload["version"]), files, str(payload["built_at"]))
        except FileNotFoundError:
            raise ArtifactError(f"manifest {path} does not exist") from None
        except (ValueError, KeyError, TypeError) as error:
            raise ArtifactError(f"manifest {path} is not a valid manifest: {error}") from None


@dataclass(frozen=True)
class VerifiedArtifact:
    """A wheel whose bytes match its manifest entry."""

    wheel: Path
    manifest: Manifest
    sha256: str

    @property
    def version(self) -> str:
        return self.manifest.version


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name (``name-version-pytag-abitag-platform.whl``)."""
    parts = wheel.name.removesuffix(".whl").split("-")
    if not wheel.name.endswith(".whl") or len(parts) < 5:
        raise ArtifactError(f"{wheel.name} is not a wheel file name (name-version-python-abi-platform.whl)")
    return parts[1]


def build_artifact(source_dir: Path, out_dir: Path, version: str | None = None) -> tuple[Manifest, Path]:
    """Build the sdist, then the wheel from that sdist (``uv build``, offline, with this venv's hatchling); write
    ``manifest.json`` next to them. ``version`` overrides the version hatch-vcs derives from git."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dataops-build-") as scratch:
        env = {**os.environ, "UV_OFFLINE": "1", "UV_NO_CACHE": "1"}
        if version:
            env["SETUPTOOLS_SCM_PRETEND_VERSION"] = version
        command = [_uv(), "build", "--no-build-isolation", "--python", sys.executable, "--out-dir", scratch]
        completed = subprocess.run(
            [*command, str(source_dir)], env=env, capture_output=True, text=True, check=False, timeout=300
        )
        if completed.returncode != 0:
            raise ArtifactError(f"building {source_dir} failed:\n{completed.stderr.strip()}")
        built = sorted(path for path in Path(scratch).iterdir() if path.suffix in {".whl", ".gz"})
        wheels = [out_dir / path.name for path in built if path.suffix == ".whl"]
        if len(wheels) != 1 or len(built) != 2:
            raise ArtifactError(f"expected one wheel and one sdist, got {[path.name for path in built]}")
        files = tuple(ArtifactFile.of(Path(shutil.copyfile(path, out_dir / path.name))) for path in built)
    built_at = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = Manifest(wheel_version(wheels[0]), files, built_at)
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json())
    return manifest, wheels[0]


def verify_artifact(wheel: Path, manifest_path: Path | None = None) -> VerifiedArtifact:
    """Check the wheel's sha256 and version against the manifest (default: ``manifest.json`` beside it)."""
    if not wheel.is_file():
        raise ArtifactError(f"artifact {wheel} does not exist")
    manifest = Manifest.read(manifest_path or wheel.with_name(MANIFEST_NAME))
    listed = {item.name: item for item in manifest.files}
    if wheel.name not in listed:
        raise ArtifactError(f"{wheel.name} is not listed in the manifest (it lists {', '.join(listed) or 'nothing'})")
    actual, expected = ArtifactFile.of(wheel), listed[wheel.name]
    if actual.sha256 != expected.sha256:
        raise ArtifactError(
            f"artifact {wheel.name} is corrupted or not the one built: sha256 {actual.sha256} != manifest "
            f"{expected.sha256}"
        )
    if wheel_version(wheel) != manifest.version:
        raise ArtifactError(
            f"artifact {wheel.name} is version {wheel_version(wheel)}; manifest says {manifest.version}"
        )
    return VerifiedArtifact(wheel=wheel, manifest=manifest, sha256=actual.sha256)


def _uv() -> str:
    beside = Path(sys.executable).parent / "uv"
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if found is None:
        raise ArtifactError("uv is needed to build the artifact; it is not beside the interpreter nor on PATH")
    return found
