"""The reliability battery, scenario E: the data dir's disk fills up during a tus upload on the local backend.
The app runs under Granian in this loop with its data dir on a small tmpfs; the answer must be a clear 507 in the
JSON envelope (never a 500), nothing partial may stay behind the offset, and once space is freed the upload
resumes from its offset and completes with the right sha256. docs/reliability.md lists the results."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mediasvc.auth import create_api_key
from mediasvc.tables import Asset, Upload

from tests.test_api_tus import OCTETS, TUS, granian, metadata, mp4_bytes

pytestmark = [pytest.mark.reliability, pytest.mark.timeout(120)]

MiB = 1024 * 1024
PROFILES = {"raw": {"kind": "video", "formats": ["mp4"], "max_bytes": 50 * MiB, "bucket": "raw", "steps": []}}


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """An 8 MiB tmpfs: the data dir's own file system, which a test can fill."""
    mount = Path(tempfile.mkdtemp(prefix="mediasvc-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        mount.rmdir()
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            mount.rmdir()


def fill(disk: Path, leave: int) -> Path:
    """Write a file until the disk is full, then give back ``leave`` bytes."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


async def test_e_full_disk_is_507_and_the_upload_resumes_after_space_is_freed(make_settings, small_disk):
    settings = make_settings(data_dir=str(small_disk), profiles=PROFILES)
    data = mp4_bytes(3 * MiB)
    async with granian(settings) as srv, httpx.AsyncClient(base_url=srv.base, timeout=30) as http:
        srv.own_tables()
        key, _ = await create_api_key(f"disk-{uuid.uuid4().hex[:8]}")
        auth = {"Authorization": f"Bearer {key}"}
        created = await http.post("/api/v1/tus/", headers={**TUS, **auth, "Upload-Length": str(len(data)),
                                                              "Upload-Metadata": metadata("big.mp4", "raw")})
        assert created.status_code == 201, created.text
        url = created.headers["location"]

        async def patch(offset: int, body: bytes) -> httpx.Response:
            return await http.patch(url, content=body, headers={**TUS, **OCTETS, **auth,
                                                                 "Upload-Offset": str(offset)})

        first = await patch(0, data[:MiB])
        assert first.status_code == 204 and first.headers["upload-offset"] == str(MiB)
        upload = await Upload.select().where(Upload.id == uuid.UUID(url.rsplit("/", 1)[1])).first()
        stored = srv.storage.local_path(upload["storage_key"])

        filler = fill(small_disk, leave=256 * 1024)  # room for a quarter of what comes next
        full = await patch(MiB, data[MiB:])
        assert full.status_code == 507, full.text
        error = full.json()["error"]
        assert error["code"] == "insufficient_storage" and "full" in error["message"], error
        assert full.headers["tus-resumable"] == "1.0.0"
        head = await http.head(url, headers={**TUS, **auth})
        assert head.headers["upload-offset"] == str(MiB)  # the offset did not move
        assert stored.stat().st_size == MiB  # nothing partial behind the committed offset

        filler.unlink()  # space freed: the client resumes where HEAD says
        rest = await patch(MiB, data[MiB:])
        assert rest.status_code == 204, rest.text
        asset_id = rest.headers["mediasvc-asset-id"]
        asset = await Asset.select().where(Asset.id == uuid.UUID(asset_id)).first()
        assert asset["sha256"] == hashlib.sha256(data).hexdigest() and asset["size_bytes"] == len(data)
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == asset["sha256"]  # nothing corrupt
        assert sorted(p.name for p in small_disk.iterdir()) == ["storage"]  # no stray file left
