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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MANIFEST_NAME = "manifest.json"
DISTRIBUTION = "dataops_assets"
_CHUNK = 1 << 20


class ArtifactError(RuntimeError):
    """The artifact cannot be built, or does not match its manifest."""


@dataclass(frozen=True)
class ArtifactFile:
    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Manifest:
    version: str
    files: tuple[ArtifactFile, ...]
    built_at: str
    source_revision: str | None = None

    def entry(self, name: str) -> ArtifactFile:
        for item in self.files:
            if item.name == name:
                return item
        listed = ", ".join(item.name for item in self.files) or "nothing"
        raise ArtifactError(f"{name} is not listed in the manifest (it lists {listed})")

    @property
    def wheel(self) -> ArtifactFile:
        wheels = [item for item in self.files if item.name.endswith(".whl")]
        if len(wheels) != 1:
            raise ArtifactError(f"the manifest lists {len(wheels)} wheels; expected exactly one")
        return wheels[0]

    def to_json(self) -> str:
        payload = {
            "version": self.version,
            "built_at": self.built_at,
            "source_revision": self.source_revision,
            "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in self.files],
        }
        return json.dumps(payload, indent=2) + "\n"

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            payload = json.loads(path.read_text())
            files = tuple(ArtifactFile(str(f["name"]), str(f["sha256"]), int(f["size"])) for f in payload["files"])
            return cls(str(payload["version"]), files, str(payload["built_at"]), payload.get("source_revision"))
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


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def wheel_version(wheel: Path) -> str:
    """The version in a wheel's file name (``name-version-pytag-abitag-platform.whl``)."""
    parts = wheel.name[: -len(".whl")].split("-")
    if not wheel.name.endswith(".whl") or len(parts) < 5:
        raise ArtifactError(f"{wheel.name} is not a wheel file name (name-version-python-abi-platform.whl)")
    return parts[1]


def build_artifact(
    source_dir: Path, out_dir: Path, python: Path | None = None, version: str | None = None
) -> tuple[Manifest, Path]:
    """Build the sdist, then the wheel from that sdist (``uv build``, offline, with the venv's hatchling); write
    ``manifest.json`` next to them. ``version`` overrides the version hatch-vcs derives from git."""
    python = python or Path(sys.executable)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dataops-build-") as scratch:
        env = {**os.environ, "UV_OFFLINE": "1", "UV_NO_CACHE": "1"}
        if version:
            env["SETUPTOOLS_SCM_PRETEND_VERSION"] = version
        command = [_uv(python), "build", "--no-build-isolation", "--python", str(python), "--out-dir", scratch]
        completed = subprocess.run(
            [*command, str(source_dir)], env=env, capture_output=True, text=True, check=False, timeout=300
        )
        if completed.returncode != 0:
            raise ArtifactError(f"building {source_dir} failed:\n{completed.stderr.strip()}")
        built = sorted(path for path in Path(scratch).iterdir() if path.suffix in {".whl", ".gz"})
        wheels = [path for path in built if path.suffix == ".whl"]
        if len(wheels) != 1 or len(built) != 2:
            raise ArtifactError(f"expected one wheel and one sdist, got {[path.name for path in built]}")
        files = []
        for path in built:
            target = out_dir / path.name
            shutil.copyfile(path, target)
            files.append(ArtifactFile(target.name, sha256_of(target), target.stat().st_size))
    manifest = Manifest(
        version=wheel_version(out_dir / wheels[0].name),
        files=tuple(files),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source_revision=_git_revision(source_dir),
    )
    (out_dir / MANIFEST_NAME).write_text(manifest.to_json())
    return manifest, out_dir / wheels[0].name


def verify_artifact(wheel: Path, manifest_path: Path | None = None) -> VerifiedArtifact:
    """Check the wheel's sha256 and version against the manifest (default: ``manifest.json`` beside the wheel)."""
    if not wheel.is_file():
        raise ArtifactError(f"artifact {wheel} does not exist")
    manifest = Manifest.read(manifest_path or wheel.with_name(MANIFEST_NAME))
    entry = manifest.entry(wheel.name)
    actual = sha256_of(wheel)
    if actual != entry.sha256:
        raise ArtifactError(
            f"artifact {wheel.name} is corrupted or not the one built: sha256 {actual} != manifest {entry.sha256}"
        )
    if wheel.stat().st_size != entry.size:
        raise ArtifactError(f"artifact {wheel.name} has {wheel.stat().st_size} bytes; the manifest says {entry.size}")
    if wheel_version(wheel) != manifest.version:
        raise ArtifactError(
            f"artifact {wheel.name} is version {wheel_version(wheel)}; manifest says {manifest.version}"
        )
    return VerifiedArtifact(wheel=wheel, manifest=manifest, sha256=actual)


def _uv(python: Path) -> str:
    beside = python.parent / "uv"
    if beside.is_file():
        return str(beside)
    found = shutil.which("uv")
    if found is None:
        raise ArtifactError("uv is needed to build the artifact; it is not beside the interpreter nor on PATH")
    return found


def _git_revision(source_dir: Path) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "-C", str(source_dir), "rev-parse", "HEAD"], capture_output=True, text=True, check=False, timeout=10
        )
    except OSError:
        return None
    if completed.returncode != 0:
        return None
    return completed.stdout.strip() or None
