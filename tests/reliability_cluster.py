"""Processes for the reliability battery, all started by the tests: a PostgreSQL cluster of its own (so it can be
stopped without touching the machine's), a redis-server of its own (so it can be restarted), and real
``mediasvc serve`` / ``mediasvc worker`` subprocesses."""

from __future__ import annotations

import contextlib
import glob
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

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int, timeout: float, process: subprocess.Popen[bytes] | None = None, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what or 'process'} exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what or 'port'} {port} did not open within {timeout} s")


def stop_process(process: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def pg_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binaries (Debian layout), or one on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresCluster:
    """``initdb`` + ``pg_ctl`` in a temporary directory, on a port of its own, trust auth, no fsync. Run as the
    ``postgres`` user when the tests run as root (the server refuses root)."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mediasvc-pg-"))
        self.data = self.dir / "data"
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            self.run_as = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=timeout)

    def init(self) -> None:
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", options, "-l",
                  str(self.dir / "server.log"), "-w", "-t", "30", "start")

    def createdb(self, name: str) -> None:
        self._run(str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (clients see the connection terminated), like a restart in production."""
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisServer:
    """A redis-server on a port of its own, keeping nothing on disk: a restart empties it, as a crash of a
    non-persistent Redis would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="mediasvc-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                   "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, 15, self.process, "redis-server")

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def mediasvc_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """The real ``mediasvc`` command; only the given ``MEDIASVC_*`` variables reach it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | env
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mediasvc.cli", *args], env=full_env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


class ApiInstance:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.env = env | {"MEDIASVC_PORT": str(self.port), "MEDIASVC_HOST": "127.0.0.1"}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = mediasvc_process(["serve"], self.env, self.log)

    def wait_ready(self, timeout: float = 90) -> None:
        wait_port(self.port, timeout, self.process, f"mediasvc serve (log {self.log})")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the port opens before the app's lifespan has run
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/health", timeout=5).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"mediasvc serve on {self.port} never became healthy (log {self.log})")

    def stop(self) -> None:
        stop_process(self.process)


class WorkerProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env | {"MEDIASVC_WORKER_METRICS_PORT": "0"}
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = mediasvc_process(["worker"], self.env, self.log)

    def kill(self) -> None:
        """SIGKILL: no cleanup, no status update, as a machine that dies would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        stop_process(self.process)
