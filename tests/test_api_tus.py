"""The tus 1.0.0 server (/api/v1/tus/) over real HTTP: the app under Granian in the test loop, the real tus
client (tuspy) in threads, raw sockets for clients that vanish mid-body, real PostgreSQL, Redis and SeaweedFS
S3."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import hashlib
import io
import os
import socket
import struct
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import asyncpg
import av
import httpx
import obstore
import pytest
import pytest_asyncio
from granian.constants import Interfaces
from granian.server.embed import Server
from litestar import Litestar
from tusclient import client as tus_client
from tusclient.exceptions import TusCommunicationError

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.database import bind_tables
from mediasvc.ingest import tus_jobs
from mediasvc.ingest.tus_lock import close_lock_pools, lock_key
from mediasvc.settings import Settings, load_settings
from mediasvc.tables import CORE_TABLES, Asset, Event, Upload
from tests.conftest import REDIS_URL
from tests.s3_server import S3Server, s3_server  # noqa: F401 (the fixture)

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}


# --- media --------------------------------------------------------------------------------------------------

_MP4: bytes | None = None


def mp4_bytes(size: int) -> bytes:
    """A real MP4 written by PyAV, padded to ``size`` with a ``free`` box of random bytes (still valid)."""
    global _MP4
    if _MP4 is None:
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="mp4") as container:
            stream = container.add_stream("mpeg4", rate=10)
            stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
            for index in range(10):
                frame = av.VideoFrame(64, 64, "yuv420p")
                for plane in frame.planes:
                    plane.update(bytes([index * 20 % 256]) * plane.buffer_size)
                frame.pts = index
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        _MP4 = buffer.getvalue()
    pad = size - len(_MP4) - 8
    assert pad >= 0
    return _MP4 + struct.pack(">I", pad + 8) + b"free" + os.urandom(pad)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def metadata(filename: str = "answer.mp4", profile: str = "video_response", **extra: str) -> str:
    pairs = {"filename": filename, "profile": profile, **extra}
    return ",".join(f"{key} {b64(value)}" for key, value in pairs.items())


# --- the server ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class TusServer:
    base: str
    app: Litestar

    @property
    def settings(self) -> Settings:
        return self.app.state.services.settings

    @property
    def storage(self) -> Any:
        return self.app.state.services.storage

    @property
    def endpoint(self) -> str:
        return f"{self.base}/api/v1/tus/"

    def own_tables(self) -> None:
        """Point the ORM at this server's pool (another test's app may have taken the tables)."""
        bind_tables(self.app.state.services.engine, CORE_TABLES)


@contextlib.asynccontextmanager
async def granian(settings: Settings) -> AsyncIterator[TusServer]:
    """The real app under Granian, in this event loop (its database pool lives here)."""
    app = create_app(settings)
    port = free_port()
    server = Server(app, address="127.0.0.1", port=port, interface=Interfaces.ASGI, log_enabled=False)
    task = asyncio.create_task(server.serve())
    for _ in range(400):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if task.done():
                task.result()
            await asyncio.sleep(0.025)
            continue
        writer.close()
        break
    try:
        yield TusServer(f"http://127.0.0.1:{port}", app)
    finally:
        server.stop()
        await asyncio.wait_for(task, 30)
        await close_lock_pools()


def base_settings(database_url: str, queue_name: str, data_dir: Path, env: dict[str, str] | None = None,
                  **overrides: Any) -> Settings:
    """Real PostgreSQL and Redis; a queue of our own, so that no other module's worker picks up the processing
    our assets schedule."""
    values: dict[str, Any] = {
        "database_url": database_url, "queue.url": REDIS_URL, "queue.name": f"{queue_name}-tus",
        "data_dir": str(data_dir), "secret_key": "tus-test-secret", **overrides,
    }
    return load_settings(env=env or {}, **values)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def local_server(database_url: str, queue_name: str,
                       tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TusServer]:
    settings = base_settings(database_url, queue_name, tmp_path_factory.mktemp("tus"))
    async with granian(settings) as server:
        yield server


@pytest.fixture
async def srv(local_server: TusServer) -> TusServer:
    local_server.own_tables()
    return local_server


@pytest.fixture
async def auth(srv: TusServer) -> dict[str, str]:
    key, _ = await create_api_key(f"tus-{uuid.uuid4().hex[:10]}")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def http(srv: TusServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.base, timeout=30) as client:
        yield client


# --- client helpers -----------------------------------------------------------------------------------------


_clients = ThreadPoolExecutor(max_workers=32, thread_name_prefix="tus-test-client")


async def in_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Blocking client calls on threads of their own: the server runs in this loop and needs its executor."""
    return await asyncio.get_running_loop().run_in_executor(_clients, functools.partial(fn, *args, **kwargs))


def tuspy_upload(endpoint: str, auth: dict[str, str], data: bytes, *, chunk_size: int, checksum: bool = False,
                 meta: dict[str, str] | None = None, url: str | None = None) -> str:
    """Upload (or resume, given ``url``) with the real tus client; returns the upload URL."""
    client = tus_client.TusClient(endpoint, headers=dict(auth))
    if meta is None:
        meta = {"filename": "answer.mp4", "profile": "video_response"}
    uploader = client.uploader(file_stream=io.BytesIO(data), chunk_size=chunk_size, url=url,
                               upload_checksum=checksum, metadata=meta)
    uploader.upload()
    return uploader.url


async def create(http: httpx.AsyncClient, auth: dict[str, str], length: int | None, *,
                 meta: str | None = None, **headers: str) -> httpx.Response:
    sent = {**TUS, **auth, "Upload-Metadata": meta if meta is not None else metadata(), **headers}
    if length is not None:
        sent["Upload-Length"] = str(length)
    return await http.post("/api/v1/tus/", headers=sent)


async def created(http: httpx.AsyncClient, auth: dict[str, str], length: int | None, **kwargs: Any) -> str:
    response = await create(http, auth, length, **kwargs)
    assert response.status_code == 201, response.text
    return response.headers["location"]


async def send_patch(http: httpx.AsyncClient, url: str, auth: dict[str, str], offset: int, body: bytes,
                     **headers: str) -> httpx.Response:
    return await http.patch(url, content=body, headers={**TUS, **OCTETS, **auth, "Upload-Offset": str(offset),
                                                        **headers})


async def head(http: httpx.AsyncClient, url: str, auth: dict[str, str]) -> httpx.Response:
    return await http.head(url, headers={**TUS, **auth})


async def row_of(url: str) -> dict[str, Any]:
    upload_id = uuid.UUID(url.rstrip("/").rsplit("/", 1)[1])
    return await Upload.select().where(Upload.id == upload_id).output(load_json=True).first()


def stored_file(srv: TusServer, row: dict[str, Any]) -> Path:
    return srv.storage.local_path(row["storage_key"])


async def wait_unlocked(database_url: str, upload_id: uuid.UUID) -> None:
    """Until the server is done with a request whose client vanished (it holds the lock till then)."""
    conn = await asyncpg.connect(database_url)
    try:
        for _ in range(400):
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", lock_key(upload_id)):
                await conn.fetchval("SELECT pg_advisory_unlock($1)", lock_key(upload_id))
                return
            await asyncio.sleep(0.025)
        raise AssertionError(f"upload {upload_id} stayed locked")
    finally:
        await conn.close()


async def raw_patch_start(base: str, url: str, auth: dict[str, str], offset: int, total_length: int,
                          first: bytes) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A PATCH that announces ``total_length`` body bytes and sends only ``first`` (so far)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    path = url.removeprefix(base)
    head_lines = [f"PATCH {path} HTTP/1.1", f"Host: {host}:{port}", "Tus-Resumable: 1.0.0",
                  "Content-Type: application/offset+octet-stream", f"Upload-Offset: {offset}",
                  f"Content-Length: {total_length}", *(f"{k}: {v}" for k, v in auth.items())]
    writer.write(("\r\n".join(head_lines) + "\r\n\r\n").encode() + first)
    await writer.drain()
    return reader, writer


async def asset_row(asset_id: str) -> dict[str, Any] | None:
    return await Asset.select().where(Asset.id == uuid.UUID(asset_id)).first()


# --- discovery and the real client --------------------------------------------------------------------------


async def test_options_lists_capabilities_without_a_key(http: httpx.AsyncClient, srv: TusServer) -> None:
    response = await http.options("/api/v1/tus/")
    assert response.status_code == 204
    assert response.headers["tus-resumable"] == "1.0.0"
    assert response.headers["tus-version"] == "1.0.0"
    assert set(response.headers["tus-extension"].split(",")) == {
        "creation", "creation-with-upload", "creation-defer-length", "termination", "checksum", "expiration",
        "concatenation"}
    assert int(response.headers["tus-max-size"]) == max(p.max_bytes for p in srv.settings.profiles.values())
    assert set(response.headers["tus-checksum-algorithm"].split(",")) == {"sha1", "sha256", "md5"}
    unauthorized = await http.head("/api/v1/tus/" + str(uuid.uuid4()), headers=TUS)
    assert unauthorized.status_code == 401 and unauthorized.headers["tus-resumable"] == "1.0.0"


async def test_tuspy_uploads_in_chunks_and_the_asset_has_the_source_sha256(
        http: httpx.AsyncClient, srv: TusServer, auth: dict[str, str]) -> None:
    data = mp4_bytes(3 * MiB + 12345)
    url = await in_thread(tuspy_upload, srv.endpoint, auth, data, chunk_size=700 * 1024, checksum=True,
                                  meta={"filename": "../../etc/answer.mp4", "profile": "video_response",
                                        "owner": "cand-7", "session": "s-1"})
    assert url.startswith(srv.endpoint)
    status = await head(http, url, auth)
    assert status.status_code == 200
    assert status.headers["upload-offset"] == status.headers["upload-length"] == str(len(data))
    assert status.headers["cache-control"] == "no-store"
    asset_id = status.headers["mediasvc-asset-id"]
    row = await row_of(url)
    assert row["status"] == "complete" and str(row["asset"]) == asset_id and row["offset"] == len(data)
    asset = await asset_row(asset_id)
    assert asset["sha256"] == sha256(data) and asset["size_bytes"] == len(data)
    assert asset["original_name"] == "answer.mp4" and asset["owner"] == "cand-7"  # sanitized, never a path
    assert asset["content_type"] == "video/mp4" and asset["status"] in ("uploaded", "processing", "ready")
    assert asset["storage_key"] == row["storage_key"]
    assert hashlib.sha256(stored_file(srv, row).read_bytes()).hexdigest() == sha256(data)
    via_api = await http.get(f"/api/v1/assets/{asset_id}", headers=auth)
    assert via_api.status_code == 200 and via_api.json()["sha256"] == sha256(data)
    events = await Event.select(Event.payload).where(Event.type == "media.uploaded").output(load_json=True)
    assert any(e["payload"]["asset_id"] == asset_id and e["payload"]["method"] == "tus" for e in events)


async def test_creation_with_upload_and_deferred_length(http: httpx.AsyncClient, srv: TusServer,
                                                        auth: dict[str, str]) -> None:
    data = mp4_bytes(300_000)
    whole = await http.post("/api/v1/tus/", content=data, headers={
        **TUS, **OCTETS, **auth, "Upload-Length": str(len(data)), "Upload-Metadata": metadata()})
    assert whole.status_code == 201 and whole.headers["upload-offset"] == str(len(data))
    assert (await asset_row(whole.headers["mediasvc-asset-id"]))["sha256"] == sha256(data)

    url = await created(http, auth, None, **{"Upload-Defer-Length": "1"})
    status = await head(http, url, auth)
    assert status.headers["upload-defer-length"] == "1" and "upload-length" not in status.headers
    assert (await send_patch(http, url, auth, 0, data[:100_000])).status_code == 204
    last = await send_patch(http, url, auth, 100_000, data[100_000:], **{"Upload-Length": str(len(data))})
    assert last.status_code == 204 and last.headers["upload-offset"] == str(len(data))
    assert (await asset_row(last.headers["mediasvc-asset-id"]))["sha256"] == sha256(data)


async def test_interrupted_at_arbitrary_bytes_then_resumed_by_tuspy(http: httpx.AsyncClient, srv: TusServer,
                                                                    auth: dict[str, str]) -> None:
    data = mp4_bytes(2 * MiB + 4321)
    url = await created(http, auth, len(data))
    upload_id = uuid.UUID(url.rsplit("/", 1)[1])
    offset = 0
    for cut_after in (1, 65_537, 777_777):  # bytes sent before the client vanishes, counted from the offset
        _, writer = await raw_patch_start(srv.base, url, auth, offset, len(data) - offset,
                                               data[offset: offset + cut_after])
        await asyncio.sleep(0.2)
        writer.transport.abort()  # gone mid-body, no FIN handshake
        await wait_unlocked(srv.settings.database_url, upload_id)
        status = await head(http, url, auth)
        new_offset = int(status.headers["upload-offset"])
        assert offset <= new_offset <= offset + cut_after
        row = await row_of(url)
        assert row["status"] == "uploading" and row["asset"] is None and row["offset"] == new_offset
        stored = stored_file(srv, row).read_bytes()
        assert stored == data[:new_offset]  # exactly the durable bytes, no more, no less
        offset = new_offset
    assert offset > 0
    await in_thread(tuspy_upload, srv.endpoint, auth, data, chunk_size=512 * 1024, url=url)
    status = await head(http, url, auth)
    assert status.headers["upload-offset"] == str(len(data))
    assert (await asset_row(status.headers["mediasvc-asset-id"]))["sha256"] == sha256(data)


# --- protocol errors ----------------------------------------------------------------------------------------


async def test_offset_mismatch_is_409_and_nothing_moves(http: httpx.AsyncClient, srv: TusServer,
                                                        auth: dict[str, str]) -> None:
    data = mp4_bytes(200_000)
    url = await created(http, auth, len(data))
    assert (await send_patch(http, url, auth, 0, data[:50_000])).status_code == 204
    for wrong in (0, 49_999, 50_001):
        response = await send_patch(http, url, auth, wrong, data[wrong:wrong + 1000])
        assert response.status_code == 409, response.text
        assert response.json()["error"]["code"] == "conflict" and response.headers["upload-offset"] == "50000"
    assert (await head(http, url, auth)).headers["upload-offset"] == "50000"
    assert stored_file(srv, await row_of(url)).read_bytes() == data[:50_000]


async def test_version_content_type_and_size_errors(http: httpx.AsyncClient, srv: TusServer,
                                                    auth: dict[str, str]) -> None:
    data = mp4_bytes(100_000)
    url = await created(http, auth, len(data))
    for version in ({}, {"Tus-Resumable": "0.2.2"}):
        response = await http.patch(url, content=b"x",
                                    headers={**version, **OCTETS, **auth, "Upload-Offset": "0"})
        assert response.status_code == 412 and response.json()["error"]["code"] == "precondition_failed"
        assert response.headers["tus-version"] == "1.0.0"
    wrong_type = await http.patch(url, content=b"x", headers={**TUS, **auth, "Upload-Offset": "0",
                                                               "Content-Type": "application/octet-stream"})
    assert wrong_type.status_code == 415 and wrong_type.json()["error"]["code"] == "unsupported_media_type"
    # Data past Upload-Length: refused, announced (Content-Length) or not (chunked), and nothing of it kept.
    assert (await send_patch(http, url, auth, 0, data + b"extra")).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:
        yield data[:60_000]
        yield data[60_000:] + b"more than declared"

    streamed = await http.patch(url, content=chunks(),
                                headers={**TUS, **OCTETS, **auth, "Upload-Offset": "0"})
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "payload_too_large"
    assert (await head(http, url, auth)).headers["upload-offset"] == "0"
    assert stored_file(srv, await row_of(url)).stat().st_size == 0

    # Over the profile's limit, or a disallowed extension: refused at creation, before any byte is stored.
    too_big = srv.settings.profiles["avatar"].max_bytes + 1
    over = await http.post("/api/v1/tus/", content=b"\x89PNG" + b"0" * 1000, headers={
        **TUS, **OCTETS, **auth, "Upload-Length": str(too_big),
        "Upload-Metadata": metadata("me.png", "avatar")})
    assert over.status_code == 413 and over.json()["error"]["details"]["max_bytes"] == too_big - 1
    bad_ext = await create(http, auth, 1000, meta=metadata("answer.exe"))
    assert bad_ext.status_code == 415
    no_profile = await create(http, auth, 1000, meta=f"filename {b64('a.exe')}")  # and no profile takes it
    assert no_profile.status_code == 422
    missing_length = await create(http, auth, None)
    assert missing_length.status_code == 400
    tenant_rows = await Upload.select(Upload.id).where(Upload.tenant == (await row_of(url))["tenant"])
    assert [r["id"] for r in tenant_rows] == [(await row_of(url))["id"]]  # the refused uploads left no record


async def test_checksums_accept_sha1_sha256_md5_and_460_discards_the_chunk(
        http: httpx.AsyncClient, srv: TusServer, auth: dict[str, str]) -> None:
    data = mp4_bytes(120_000)
    url = await created(http, auth, len(data))
    offset = 0
    for algorithm, end in (("sha1", 30_000), ("sha256", 60_000), ("md5", 90_000)):
        chunk = data[offset:end]
        good = base64.b64encode(hashlib.new(algorithm, chunk).digest()).decode()
        bad = base64.b64encode(hashlib.new(algorithm, chunk + b"!").digest()).decode()
        mismatch = await send_patch(http, url, auth, offset, chunk,
                                    **{"Upload-Checksum": f"{algorithm} {bad}"})
        assert mismatch.status_code == 460 and mismatch.json()["error"]["code"] == "checksum_mismatch"
        assert (await head(http, url, auth)).headers["upload-offset"] == str(offset)
        assert stored_file(srv, await row_of(url)).stat().st_size == offset  # the chunk was discarded
        ok = await send_patch(http, url, auth, offset, chunk, **{"Upload-Checksum": f"{algorithm} {good}"})
        assert ok.status_code == 204 and ok.headers["upload-offset"] == str(end)
        offset = end
    unknown = await send_patch(http, url, auth, offset, data[offset:],
                               **{"Upload-Checksum": "crc32 AAAAAA=="})
    assert unknown.status_code == 400
    done = await send_patch(http, url, auth, offset, data[offset:])
    assert (await asset_row(done.headers["mediasvc-asset-id"]))["sha256"] == sha256(data)


async def test_other_tenant_sees_404(http: httpx.AsyncClient, srv: TusServer, auth: dict[str, str]) -> None:
    url = await created(http, auth, 1000)
    other_key, _ = await create_api_key(f"tus-other-{uuid.uuid4().hex[:8]}")
    other = {"Authorization": f"Bearer {other_key}"}
    assert (await head(http, url, other)).status_code == 404
    patched = await send_patch(http, url, other, 0, b"x" * 10)
    assert patched.status_code == 404 and patched.json()["error"]["code"] == "not_found"
    assert (await http.delete(url, headers={**TUS, **other})).status_code == 404
    assert (await head(http, url, auth)).headers["upload-offset"] == "0"
    assert (await head(http, srv.endpoint + str(uuid.uuid4()), auth)).status_code == 404


# --- termination, expiration, content -----------------------------------------------------------------------


async def test_termination_removes_bytes_and_then_410(http: httpx.AsyncClient, srv: TusServer,
                                                      auth: dict[str, str]) -> None:
    data = mp4_bytes(100_000)
    url = await created(http, auth, len(data))
    await send_patch(http, url, auth, 0, data[:40_000])
    path = stored_file(srv, await row_of(url))
    assert path.stat().st_size == 40_000
    response = await http.delete(url, headers={**TUS, **auth})
    assert response.status_code == 204 and response.headers["tus-resumable"] == "1.0.0"
    assert not path.exists() and not path.parent.exists()
    assert (await row_of(url))["status"] == "aborted"
    assert (await head(http, url, auth)).status_code == 410
    again = await send_patch(http, url, auth, 40_000, data[40_000:])
    assert again.status_code == 410 and again.json()["error"]["code"] == "gone"
    assert (await http.delete(url, headers={**TUS, **auth})).status_code == 410


async def test_expiration_header_and_expire_job(http: httpx.AsyncClient, srv: TusServer,
                                                auth: dict[str, str]) -> None:
    data = mp4_bytes(100_000)
    response = await create(http, auth, len(data))
    expires = parsedate_to_datetime(response.headers["upload-expires"])
    assert timedelta(hours=23, minutes=59) < expires - datetime.now(timezone.utc) <= timedelta(hours=24)
    url, keep = response.headers["location"], await created(http, auth, len(data))
    await send_patch(http, url, auth, 0, data[:10_000])
    await send_patch(http, keep, auth, 0, data[:10_000])
    path, kept_path = stored_file(srv, await row_of(url)), stored_file(srv, await row_of(keep))
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    await Upload.update({Upload.expires_at: past}).where(Upload.id == (await row_of(url))["id"])
    assert (await head(http, url, auth)).status_code == 410  # expired even before the job runs
    result = await tus_jobs.expire_job({"storage": srv.storage, "settings": srv.settings})
    assert result["expired"] >= 1
    assert not path.exists() and (await row_of(url))["status"] == "expired"
    assert kept_path.stat().st_size == 10_000 and (await row_of(keep))["status"] == "uploading"
    assert (await send_patch(http, url, auth, 10_000, data[10_000:])).status_code == 410


async def test_sweep_finishes_a_completion_cut_short(http: httpx.AsyncClient, srv: TusServer,
                                                    auth: dict[str, str]) -> None:
    """All bytes committed, then the process died before the asset: the client sees offset == length and sends
    nothing more, so the `tus.expire` sweep finishes the job."""
    data = mp4_bytes(200_000)
    url = await created(http, auth, len(data))
    await send_patch(http, url, auth, 0, data[:-1])
    row = await row_of(url)
    with open(stored_file(srv, row), "ab") as f:  # the last byte landed and its offset was committed...
        f.write(data[-1:])
    long_ago = datetime.now(timezone.utc) - timedelta(minutes=5)
    await Upload.update({Upload.offset: len(data), Upload.updated_at: long_ago}).where(Upload.id == row["id"])
    assert (await head(http, url, auth)).headers["upload-offset"] == str(len(data))  # ...but no asset
    assert await asset_row(row["metadata"]["tus"]["asset_id"]) is None
    services = srv.app.state.services
    result = await tus_jobs.expire_job({
        "storage": services.storage, "settings": services.settings, "queue": services.queue,
        "host": services.host, "metrics": services.metrics,
    })
    assert result["finished"] >= 1
    done = await row_of(url)
    assert done["status"] == "complete" and str(done["asset"]) == row["metadata"]["tus"]["asset_id"]
    assert (await asset_row(str(done["asset"])))["sha256"] == sha256(data)


async def test_wrong_magic_bytes_fail_with_415_and_no_asset(http: httpx.AsyncClient, srv: TusServer,
                                                            auth: dict[str, str]) -> None:
    data = b"MZ" + os.urandom(150_000)  # an executable's magic under a .mp4 name
    url = await created(http, auth, len(data))
    assert (await send_patch(http, url, auth, 0, data[:100_000])).status_code == 204
    row = await row_of(url)
    last = await send_patch(http, url, auth, 100_000, data[100_000:])
    assert last.status_code == 415 and last.json()["error"]["code"] == "unsupported_media_type"
    assert "mediasvc-asset-id" not in last.headers
    failed = await row_of(url)
    assert failed["status"] == "failed" and failed["asset"] is None
    assert await asset_row(failed["metadata"]["tus"]["asset_id"]) is None
    assert not stored_file(srv, row).exists()
    assert (await head(http, url, auth)).status_code == 410


async def test_concatenation_of_partial_uploads(http: httpx.AsyncClient, srv: TusServer,
                                                auth: dict[str, str]) -> None:
    data = mp4_bytes(400_000)
    parts = [data[:150_000], data[150_000:151_000], data[151_000:]]
    urls = []
    for part in parts:
        url = await created(http, auth, len(part), meta="", **{"Upload-Concat": "partial"})
        assert (await send_patch(http, url, auth, 0, part)).status_code == 204
        assert (await head(http, url, auth)).headers["upload-concat"] == "partial"
        urls.append(url)
    unfinished = await created(http, auth, 10, meta="", **{"Upload-Concat": "partial"})
    refused = await create(http, auth, None, **{"Upload-Concat": f"final;{urls[0]} {unfinished}"})
    assert refused.status_code == 400
    # Relative and absolute URLs both name partial uploads.
    paths = [urls[0].removeprefix(srv.base), urls[1], urls[2]]
    final = await create(http, auth, None, **{"Upload-Concat": "final;" + " ".join(paths)})
    assert final.status_code == 201, final.text
    assert final.headers["upload-offset"] == str(len(data))
    asset = await asset_row(final.headers["mediasvc-asset-id"])
    assert asset["sha256"] == sha256(data) and asset["size_bytes"] == len(data)
    status = await head(http, final.headers["location"], auth)
    assert status.headers["upload-concat"].startswith("final;")
    assert status.headers["upload-length"] == str(len(data))
    patched = await send_patch(http, final.headers["location"], auth, len(data), b"x")
    assert patched.status_code == 403


# --- concurrency --------------------------------------------------------------------------------------------


async def test_concurrent_patch_on_one_upload_gets_423(http: httpx.AsyncClient, srv: TusServer,
                                                       auth: dict[str, str]) -> None:
    data = mp4_bytes(300_000)
    url = await created(http, auth, len(data))
    reader, writer = await raw_patch_start(srv.base, url, auth, 0, len(data), data[:100_000])
    try:
        await asyncio.sleep(0.3)  # the first PATCH holds the lock and is waiting for the rest of its body
        second = await send_patch(http, url, auth, 0, data)
        assert second.status_code == 423 and second.json()["error"]["code"] == "locked"
        writer.write(data[100_000:])
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        assert b" 204 " in status_line, status_line
    finally:
        writer.close()
    status = await head(http, url, auth)
    assert (await asset_row(status.headers["mediasvc-asset-id"]))["sha256"] == sha256(data)
    assert stored_file(srv, await row_of(url)).read_bytes() == data  # never interleaved


async def test_many_concurrent_uploads_keep_their_hashes(http: httpx.AsyncClient, srv: TusServer,
                                                         auth: dict[str, str]) -> None:
    sources = [mp4_bytes(200_000 + 9_973 * i) for i in range(24)]
    urls = await asyncio.gather(*[in_thread(tuspy_upload, srv.endpoint, auth, data, chunk_size=64 * 1024)
                                  for data in sources])
    for url, data in zip(urls, sources):
        status = await head(http, url, auth)
        assert status.headers["upload-offset"] == str(len(data))
        assert (await asset_row(status.headers["mediasvc-asset-id"]))["sha256"] == sha256(data)


async def test_tuspy_error_surfaces_for_refused_creation(srv: TusServer, auth: dict[str, str]) -> None:
    with pytest.raises(TusCommunicationError):
        await in_thread(tuspy_upload, srv.endpoint, auth, mp4_bytes(10_000), chunk_size=MiB,
                                meta={"filename": "answer.mp4", "profile": "no-such-profile"})


# --- the S3 backend (SeaweedFS): segments as multipart uploads, assembled at completion ---------------------


async def test_s3_backend_multipart_uploads(database_url: str, queue_name: str,
                                            s3_server: S3Server, tmp_path: Path) -> None:  # noqa: F811
    settings = base_settings(database_url, queue_name, tmp_path, env=s3_server.env(),
                             **{"plugins.tus.part_size": 5 * MiB})
    store = s3_server.store()
    async with granian(settings) as server:
        server.own_tables()
        key, _ = await create_api_key(f"tus-s3-{uuid.uuid4().hex[:8]}")
        auth = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=server.base, timeout=60) as http:
            chunked = mp4_bytes(13 * MiB + 5)
            whole = mp4_bytes(11 * MiB + 7)
            url = await in_thread(tuspy_upload, server.endpoint, auth, chunked, chunk_size=6 * MiB)
            one = await in_thread(tuspy_upload, server.endpoint, auth, whole, chunk_size=64 * MiB)
            for upload_url, data in ((url, chunked), (one, whole)):
                status = await head(http, upload_url, auth)
                asset = await asset_row(status.headers["mediasvc-asset-id"])
                assert asset["sha256"] == sha256(data)
                stored = (await obstore.get_async(store, asset["storage_key"])).bytes()
                assert sha256(bytes(stored)) == sha256(data)
                tenant = asset["storage_key"].split("/")[0]
                leftovers = [m["path"] for batch in obstore.list(store, f"{tenant}/tus") for m in batch]
                assert leftovers == []  # segments deleted once assembled

            # A cut mid-chunk, a bad checksum and termination on the object store too.
            data = mp4_bytes(7 * MiB)
            upload_url = await created(http, auth, len(data))
            upload_id = uuid.UUID(upload_url.rsplit("/", 1)[1])
            _, writer = await raw_patch_start(server.base, upload_url, auth, 0, len(data), data[:3 * MiB])
            await asyncio.sleep(0.3)
            writer.transport.abort()
            await wait_unlocked(settings.database_url, upload_id)
            offset = int((await head(http, upload_url, auth)).headers["upload-offset"])
            assert 0 <= offset <= 3 * MiB
            bad = base64.b64encode(hashlib.sha1(b"nope").digest()).decode()
            mismatch = await send_patch(http, upload_url, auth, offset, data[offset:],
                                        **{"Upload-Checksum": f"sha1 {bad}"})
            assert mismatch.status_code == 460
            assert (await head(http, upload_url, auth)).headers["upload-offset"] == str(offset)
            done = await send_patch(http, upload_url, auth, offset, data[offset:])
            assert done.status_code == 204, done.text
            asset = await asset_row(done.headers["mediasvc-asset-id"])
            assert asset["sha256"] == sha256(data)
            stored = (await obstore.get_async(store, asset["storage_key"])).bytes()
            assert sha256(bytes(stored)) == sha256(data)

            doomed = await created(http, auth, len(data))
            await send_patch(http, doomed, auth, 0, data[:6 * MiB])
            row = await row_of(doomed)
            segment_keys = [segment[2] for segment in row["metadata"]["tus"]["segments"]]
            tenant = row["storage_key"].split("/")[0]
            assert segment_keys and all(k.startswith(f"{tenant}/tus/") for k in segment_keys)
            assert (await http.delete(doomed, headers={**TUS, **auth})).status_code == 204
            for segment_key in segment_keys:
                with pytest.raises(FileNotFoundError):
                    await obstore.head_async(store, segment_key)
