"""`mediasvc serve` on SIGTERM: /health answers 503 `draining` while the port still accepts, an in-flight request
finishes, and the process exits within shutdown.drain_seconds + shutdown.timeout_seconds."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent
DRAIN_SECONDS = 3.0
TIMEOUT_SECONDS = 10
BODY = 32 * 1024


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def start_trickling_patch(port: int, upload_path: str, key: str,
                                first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A tus PATCH that announces BODY bytes and sends only ``first`` so far: a request still in flight."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"PATCH {upload_path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Tus-Resumable: 1.0.0",
            "Content-Type: application/offset+octet-stream", "Upload-Offset: 0", f"Content-Length: {BODY}",
            f"Authorization: Bearer {key}"]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + first)
    await writer.drain()
    return reader, writer


@pytest.mark.timeout(150)
async def test_sigterm_drains_health_then_finishes_the_in_flight_request(database_url, api_key, tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDIASVC_")} | {
        "MEDIASVC_DATABASE_URL": database_url, "MEDIASVC_QUEUE__URL": REDIS_URL,
        "MEDIASVC_QUEUE__NAME": f"shutdown-{uuid.uuid4().hex[:8]}", "MEDIASVC_DATA_DIR": str(tmp_path / "data"),
        "MEDIASVC_SECRET_KEY": "test-secret-key", "MEDIASVC_LOG_FORMAT": "text",
        "MEDIASVC_SHUTDOWN__DRAIN_SECONDS": str(DRAIN_SECONDS),
        "MEDIASVC_SHUTDOWN__TIMEOUT_SECONDS": str(TIMEOUT_SECONDS)}
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "mediasvc.cli", "serve", "--port", str(port)], env=env,
                                  cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and server.poll() is None:
                try:
                    if (await http.get("/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            assert (await http.get("/health")).status_code == 200, log.read_text()

            created = await http.post("/api/v1/tus/", headers={
                "Tus-Resumable": "1.0.0", "Authorization": f"Bearer {api_key}", "Upload-Length": str(2 * BODY),
                "Upload-Metadata": f"filename {b64('answer.mp4')},profile {b64('video_response')}"})
            assert created.status_code == 201, created.text
            upload_path = httpx.URL(created.headers["location"]).path
            reader, writer = await start_trickling_patch(port, upload_path, api_key, b"x" * 1024)
            await asyncio.sleep(0.5)  # the server is reading the body

            server.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            draining = None
            while time.monotonic() - signalled < DRAIN_SECONDS:
                draining = await http.get("/health", headers={"Connection": "close"})
                if draining.status_code == 503:
                    break
                await asyncio.sleep(0.05)
            assert draining is not None and draining.status_code == 503, draining and draining.text
            assert time.monotonic() - signalled < DRAIN_SECONDS  # seen during the drain, on a new connection
            error = draining.json()["error"]
            assert error["code"] == "draining" and error["details"] == {"status": "draining"}

            # the drain ends: the port stops accepting; the request in flight is still being served
            while accepts(port) and time.monotonic() - signalled < DRAIN_SECONDS + TIMEOUT_SECONDS:
                await asyncio.sleep(0.1)
            closed_after = time.monotonic() - signalled
            assert DRAIN_SECONDS - 0.5 <= closed_after < DRAIN_SECONDS + TIMEOUT_SECONDS, closed_after
            assert server.poll() is None

            writer.write(b"y" * (BODY - 1024))
            await writer.drain()
            response = await asyncio.wait_for(reader.read(65536), timeout=TIMEOUT_SECONDS)
            writer.close()
            status_line, _, rest = response.decode("latin-1").partition("\r\n")
            assert status_line.split()[1] == "204", response
            assert f"upload-offset: {BODY}" in rest.lower(), response

        exit_code = await asyncio.to_thread(server.wait, DRAIN_SECONDS + TIMEOUT_SECONDS + 5)
        assert time.monotonic() - signalled < DRAIN_SECONDS + TIMEOUT_SECONDS + 5
        assert exit_code == 0, log.read_text()
        assert "draining" in log.read_text()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
