"""`mediasvc dev` killed with SIGKILL leaves its embedded PostgreSQL running: the next start on the same data dir
stops that orphan, says so, and starts a server of its own, which it stops again when it exits."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_dev(data_dir: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "mediasvc.cli", "dev", "--port", str(port),
                                    "--data-dir", str(data_dir)], env=env, cwd=ROOT, stdout=out,
                                   stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 50
    while time.monotonic() < deadline:
        if "ready in" in log.read_text(errors="replace"):
            return process, port
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    raise AssertionError(f"mediasvc dev did not start:\n{log.read_text(errors='replace')[-3000:]}")


def postmaster(data_dir: Path) -> int:
    return int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_gone(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.1)
    return not alive(pid)


@pytest.fixture
def data_dir():
    """Outside pytest's temp tree: run as root, PostgreSQL runs as another user, who must traverse the path, and
    a pytest session starting meanwhile makes /tmp/pytest-of-<user> private again."""
    path = Path(tempfile.mkdtemp(prefix="mediasvc-dev-restart-"))
    yield path / "data"
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.timeout(120)
def test_a_dev_server_killed_with_sigkill_leaves_no_postgres_behind(tmp_path, data_dir):
    first, _ = start_dev(data_dir, tmp_path / "first.log")
    orphan = postmaster(data_dir)
    second = None
    try:
        first.send_signal(signal.SIGKILL)  # no exit handler runs: its PostgreSQL stays up
        first.wait()
        assert alive(orphan)

        second, port = start_dev(data_dir, tmp_path / "second.log")
        output = (tmp_path / "second.log").read_text(errors="replace")
        assert f"PostgreSQL (pid {orphan})" in output and "left running by a mediasvc dev that is gone" in output
        assert not alive(orphan)  # stopped, not reused
        fresh = postmaster(data_dir)
        assert fresh != orphan and alive(fresh)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        for process in (second, first):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if alive(orphan):  # before the fix: nothing stops it; do not leave it to the next test
            os.kill(orphan, signal.SIGQUIT)
    # the second server is this start's own: stopped when it exited (the dead holder was forgotten)
    assert wait_gone(fresh, 15), "the embedded PostgreSQL outlived a clean exit of mediasvc dev"
