# syntax=docker/dockerfile:1.7
# The code location image: the locked dependencies, then the very wheel CD built (verified against its manifest).
# Build from a folder holding requirements.lock and dist/ (the `release` artifact of cd.yml):
#   docker build -t dataops-assets:<version> .
# Not built or run by the tests on this machine; see deploy/README.md for what is exercised where.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DAGSTER_HOME=/opt/dagster/home \
    GX_ANALYTICS_ENABLED=False

# Dependencies first (a layer that changes only with the lock). For the Helm chart's K8sRunLauncher the image also
# needs dagster-k8s==0.29.27, which is not in requirements.lock yet (see deploy/README.md).
COPY requirements.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock

# The artifact: refuse to build when the wheel does not match manifest.json.
COPY dist/ /tmp/dist/
WORKDIR /tmp/dist
RUN <<CHECK
set -eu
python - <<'PY'
import hashlib, json, pathlib, sys
manifest = json.loads(pathlib.Path("manifest.json").read_text())
wheels = [f for f in manifest["files"] if f["name"].endswith(".whl")]
assert len(wheels) == 1, "manifest must list exactly one wheel"
wheel = pathlib.Path(wheels[0]["name"])
digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
if digest != wheels[0]["sha256"]:
    sys.exit(f"{wheel}: sha256 {digest} != manifest {wheels[0]['sha256']}")
print(f"{wheel} matches manifest.json (version {manifest['version']})")
PY
pip install --no-cache-dir --no-deps --no-index "/tmp/dist/$(python -c 'import json; print([f["name"] for f in json.load(open("manifest.json"))["files"] if f["name"].endswith(".whl")][0])')"
cp manifest.json /opt/venv/dataops-manifest.json
rm -rf /tmp/dist /tmp/requirements.lock
CHECK

RUN useradd --create-home --uid 10001 dataops && mkdir -p "$DAGSTER_HOME" && chown -R dataops "$DAGSTER_HOME"
# numeric, so Kubernetes' runAsNonRoot can verify it
USER 10001
WORKDIR /home/dataops

# DATAOPS_ENV (dev, stage, prod) and DATAOPS_DATA_ROOT are set per environment by the Helm values.
ENV DATAOPS_ENV=dev
EXPOSE 4000
# Inside a pod the server listens on all interfaces of the pod; the chart's Service fronts it.
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", "-m", "dataops_assets.definitions", "--location-name", "dataops"]
