"""A generic tus client (only ``filename`` and ``filetype`` in Upload-Metadata, no ``profile``) uploads:
``[plugins.tus] default_profile`` = ``auto`` (the profile matching the type, confirmed by sniffing the first
bytes), a profile name, or ``required`` (422 as before). The real tus client (tuspy) over real HTTP (the app under
Granian in the test loop, its worker inside), real PostgreSQL and Redis; and a plain tus 1.0 conformance walk that
never sends ``profile``.

tus-js-client is not run here: it is not installed on this machine, and the tests never download packages."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from PIL import Image
from tusclient.exceptions import TusCommunicationError

from mediasvc.app import create_app
from mediasvc.auth import create_api_key
from mediasvc.errors import ConfigurationError
from mediasvc.profiles import DEFAULT_PROFILES, match_profiles
from mediasvc.tables import Asset, Upload
from tests.test_api_tus import (
    OCTETS,
    TUS,
    TusServer,
    asset_row,
    base_settings,
    granian,
    head,
    in_thread,
    mp4_bytes,
    row_of,
    send_patch,
    sha256,
    stored_file,
    tuspy_upload,
)

KiB = 1024


def png_bytes(width: int = 160, height: int = 120) -> bytes:
    image = Image.new("RGB", (width, height))
    image.putdata([((x * 7) % 256, (y * 5) % 256, (x * y) % 256) for y in range(height) for x in range(width)])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def plain_metadata(**pairs: str) -> str:
    """What a generic tus client sends: its own keys, never ``profile``."""
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


def settings_for(database_url: str, tmp: Path, default_profile: str | None = None, **overrides: Any) -> Any:
    values: dict[str, Any] = {"queue.name": f"tusdef-{uuid.uuid4().hex[:8]}", **overrides}
    if default_profile is not None:
        values["plugins.tus.default_profile"] = default_profile
    return base_settings(database_url, "unused", tmp, **values)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def auto_server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TusServer]:
    """The default setting (``auto``), with its worker: the video profile probes only, to stay quick."""
    settings = settings_for(database_url, tmp_path_factory.mktemp("tusdef"), run_worker_in_app=True,
                            profiles={"video_response": {"steps": ["probe"], "optional_steps": []}})
    async with granian(settings) as server:
        yield server


@pytest.fixture
async def srv(auto_server: TusServer) -> TusServer:
    auto_server.own_tables()
    return auto_server


@pytest.fixture
async def auth(srv: TusServer) -> dict[str, str]:
    key, _ = await create_api_key(f"tusdef-{uuid.uuid4().hex[:10]}")
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def http(srv: TusServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=srv.base, timeout=30) as client:
        yield client


async def settled(asset_id: str, timeout: float = 90) -> dict[str, Any]:
    """The asset once its processing is over (ready or failed)."""
    for _ in range(int(timeout * 10)):
        row = await Asset.select().where(Asset.id == uuid.UUID(asset_id)).output(load_json=True).first()
        if row is not None and row["status"] in ("ready", "failed"):
            return row
        await asyncio.sleep(0.1)
    raise AssertionError(f"asset {asset_id} still {row and row['status']} after {timeout} s")


# --- choosing the profile ------------------------------------------------------------------------------------


def test_match_profiles_by_extension_kind_and_size() -> None:
    profiles = DEFAULT_PROFILES
    assert match_profiles(profiles, extension="png", mime="image/png") == ["question_image", "avatar"]
    assert match_profiles(profiles, extension=".PNG", mime="") == ["question_image", "avatar"]
    # the size decides between two that fit the type: one whose limit holds it comes first
    assert match_profiles(profiles, extension="png", mime="image/png", size=8 * 1024 * 1024)[0] == "question_image"
    assert match_profiles(profiles, extension="webm", mime="audio/webm") == ["audio_response"]
    assert match_profiles(profiles, extension="webm", mime="video/webm; codecs=vp9") == ["video_response"]
    assert match_profiles(profiles, extension="webm", mime="application/octet-stream")[0] == "video_response"
    assert match_profiles(profiles, extension="pdf", mime="application/pdf") == ["interview_attachment"]
    assert match_profiles(profiles, extension="mp4", mime="image/png") == []  # the two disagree
    assert match_profiles(profiles, extension="", mime="image/png") == []
    assert match_profiles(profiles, extension="txt", mime="text/plain") == []
    small_first = {"big": DEFAULT_PROFILES["question_image"], "small": DEFAULT_PROFILES["avatar"]}
    assert match_profiles(small_first, extension="jpg", size=7 * 1024 * 1024) == ["big", "small"]
    reordered = {"small": DEFAULT_PROFILES["avatar"], "big": DEFAULT_PROFILES["question_image"]}
    assert match_profiles(reordered, extension="jpg", size=7 * 1024 * 1024) == ["big", "small"]
    assert match_profiles(reordered, extension="jpg", size=1024) == ["small", "big"]


def test_an_unknown_default_profile_fails_start_up(database_url: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="default_profile is 'nope'.*video_response"):
        create_app(settings_for(database_url, tmp_path, default_profile="nope"))


# --- auto: generic clients ----------------------------------------------------------------------------------


async def test_tuspy_png_with_only_filename_and_filetype_becomes_a_processed_image(
        http: httpx.AsyncClient, srv: TusServer, auth: dict[str, str]) -> None:
    data = png_bytes()
    url = await in_thread(tuspy_upload, srv.endpoint, auth, data, chunk_size=16 * KiB,
                          meta={"filename": "../holiday photo.png", "filetype": "image/png"})
    status = await head(http, url, auth)
    assert status.status_code == 200 and status.headers["upload-offset"] == str(len(data))
    asset = await settled(status.headers["mediasvc-asset-id"])
    assert asset["profile"] == "question_image"  # the first image profile in settings order
    assert asset["status"] == "ready", asset
    assert asset["original_name"] == "holiday photo.png" and asset["content_type"] == "image/png"
    assert asset["sha256"] == sha256(data)
    row = await row_of(url)
    assert row["profile"] == "question_image" and row["metadata"]["tus"]["profile_chosen_by"] == "auto"


async def test_tuspy_mp4_becomes_a_video_response_and_a_blob_name_gets_its_extension(
        http: httpx.AsyncClient, srv: TusServer, auth: dict[str, str]) -> None:
    data = mp4_bytes(400_000)
    url = await in_thread(tuspy_upload, srv.endpoint, auth, data, chunk_size=128 * KiB,
                          meta={"filename": "answer.mp4", "filetype": "video/mp4"})
    asset = await settled((await head(http, url, auth)).headers["mediasvc-asset-id"])
    assert asset["profile"] == "video_response" and asset["status"] == "ready", asset
    assert asset["content_type"] == "video/mp4" and asset["sha256"] == sha256(data)
    assert asset["metadata"]["probe"]["duration"] > 0  # the video profile's step ran on it

    # a Blob with no name of its own: the extension comes from the declared type
    blob = await http.post("/api/v1/tus/", content=data, headers={
        **TUS, **OCTETS, **auth, "Upload-Length": str(len(data)),
        "Upload-Metadata": plain_metadata(filename="blob", filetype="video/mp4")})
    assert blob.status_code == 201, blob.text
    named = await asset_row(blob.headers["mediasvc-asset-id"])
    assert named["original_name"] == "blob.mp4" and named["profile"] == "video_response"
    assert named["storage_key"].endswith("/original.mp4")


async def test_a_lying_filetype_is_refused_at_the_first_bytes_and_nothing_is_kept(
        http: httpx.AsyncClient, srv: TusServer, auth: dict[str, str]) -> None:
    data = mp4_bytes(600_000)  # MP4 bytes declared as a PNG: the auto choice is an image profile
    chunk = 100 * KiB
    with pytest.raises(TusCommunicationError) as refused:
        await in_thread(tuspy_upload, srv.endpoint, auth, data, chunk_size=chunk,
                        meta={"filename": "photo.png", "filetype": "image/png"})
    assert refused.value.status_code == 415
    error = httpx.Response(415, content=refused.value.response_content).json()["error"]
    assert error["code"] == "unsupported_media_type" and "video/mp4" in error["message"]
    assert error["details"]["profile"] == "question_image" and error["request_id"]
    rows = await Asset.count().where(Asset.original_name == "photo.png", Asset.sha256 == sha256(data))
    assert rows == 0
    upload = await Upload.select().where(Upload.original_name == "photo.png").order_by(
        Upload.created_at, ascending=False).output(load_json=True).first()
    assert upload["status"] == "failed" and upload["asset"] is None
    assert upload["offset"] == chunk  # refused at the first PATCH, not after the whole file
    assert await asset_row(upload["metadata"]["tus"]["asset_id"]) is None
    assert not stored_file(srv, upload).exists()
    assert (await head(http, f"/api/v1/tus/{upload['id']}", auth)).status_code == 410


async def test_no_matching_profile_is_422_naming_the_allowed_types(http: httpx.AsyncClient, srv: TusServer,
                                                                   auth: dict[str, str]) -> None:
    for meta in (plain_metadata(filename="notes.txt", filetype="text/plain"),
                 plain_metadata(filename="clip.mp4", filetype="image/png"),  # the name and the type disagree
                 plain_metadata(filename="blob"), ""):
        response = await http.post("/api/v1/tus/", headers={**TUS, **auth, "Upload-Length": "10",
                                                             "Upload-Metadata": meta})
        assert response.status_code == 422, (meta, response.text)
        error = response.json()["error"]
        assert error["code"] == "validation_failed" and "send 'profile'" in error["message"]
        assert "png" in error["details"]["allowed"]["image"] and "mp4" in error["details"]["allowed"]["video"]
        assert "video_response" in error["details"]["available"]


# --- the other settings: a profile name, required ------------------------------------------------------------


async def test_a_named_default_profile_is_used_for_every_unnamed_upload(database_url: str, tmp_path: Path) -> None:
    async with granian(settings_for(database_url, tmp_path, default_profile="avatar")) as server:
        server.own_tables()
        key, _ = await create_api_key(f"tusdef-{uuid.uuid4().hex[:10]}")
        auth = {"Authorization": f"Bearer {key}"}
        data = png_bytes()
        url = await in_thread(tuspy_upload, server.endpoint, auth, data, chunk_size=64 * KiB,
                              meta={"filename": "me.png", "filetype": "image/png"})
        async with httpx.AsyncClient(timeout=30) as http:
            asset = await asset_row((await head(http, url, auth)).headers["mediasvc-asset-id"])
            assert asset["profile"] == "avatar"  # not question_image, which auto would pick
            assert (await row_of(url))["metadata"]["tus"]["profile_chosen_by"] == "setting"
            # a named profile still wins over the setting
            named = await in_thread(tuspy_upload, server.endpoint, auth, data, chunk_size=64 * KiB,
                                    meta={"filename": "q.png", "profile": "question_image"})
            assert (await row_of(named))["profile"] == "question_image"
            # the setting's profile still checks the extension: an MP4 is not an avatar
            wrong = await http.post(server.endpoint, headers={
                **TUS, **auth, "Upload-Length": "1000", "Upload-Metadata": plain_metadata(filename="a.mp4")})
            assert wrong.status_code == 415 and wrong.json()["error"]["details"]["profile"] == "avatar"


async def test_required_refuses_an_upload_without_profile_as_before(database_url: str, tmp_path: Path) -> None:
    async with granian(settings_for(database_url, tmp_path, default_profile="required")) as server:
        server.own_tables()
        key, _ = await create_api_key(f"tusdef-{uuid.uuid4().hex[:10]}")
        auth = {"Authorization": f"Bearer {key}"}
        with pytest.raises(TusCommunicationError) as refused:
            await in_thread(tuspy_upload, server.endpoint, auth, png_bytes(), chunk_size=64 * KiB,
                            meta={"filename": "me.png", "filetype": "image/png"})
        assert refused.value.status_code == 422
        error = httpx.Response(422, content=refused.value.response_content).json()["error"]
        assert error["message"] == "Upload-Metadata must carry 'profile'"
        assert "avatar" in error["details"]["available"]
        url = await in_thread(tuspy_upload, server.endpoint, auth, png_bytes(), chunk_size=64 * KiB,
                              meta={"filename": "me.png", "profile": "avatar"})
        assert (await row_of(url))["status"] == "complete"


# --- a plain tus 1.0 client, row by row ----------------------------------------------------------------------


async def test_plain_tus_conformance_without_profile(http: httpx.AsyncClient, srv: TusServer,
                                                     auth: dict[str, str]) -> None:
    """The rows a generic tus 1.0 client relies on, none of them sending ``profile``; every failing row is
    listed at once."""
    data = mp4_bytes(300_000)
    meta = plain_metadata(filename="take.mp4", filetype="video/mp4")
    failures: list[str] = []

    def row(name: str, ok: bool, response: httpx.Response | None = None) -> None:
        if not ok:
            failures.append(f"{name}: {response.status_code if response else ''} "
                            f"{response.text[:200] if response else ''}")

    async def create(**headers: str) -> httpx.Response:
        return await http.post("/api/v1/tus/", headers={**TUS, **auth, "Upload-Metadata": meta, **headers})

    def location(response: httpx.Response) -> str:  # a refused creation: later rows fail, not crash
        return response.headers.get("location", f"/api/v1/tus/{uuid.uuid4()}")

    options = await http.options("/api/v1/tus/")
    row("OPTIONS: 204 with Tus-Version and Tus-Extension", options.status_code == 204
        and options.headers.get("tus-version") == "1.0.0" and "creation" in options.headers.get("tus-extension", ""),
        options)
    made = await create(**{"Upload-Length": str(len(data))})
    row("creation: 201 with Location", made.status_code == 201 and "location" in made.headers, made)
    url = location(made)
    first = await head(http, url, auth)
    row("HEAD: offset 0, length, no-store", first.status_code == 200 and first.headers.get("upload-offset") == "0"
        and first.headers.get("upload-length") == str(len(data))
        and first.headers.get("cache-control") == "no-store", first)
    row("creation: Upload-Expires", "upload-expires" in first.headers, first)
    part = await send_patch(http, url, auth, 0, data[:100_000])
    row("PATCH: 204 with the new offset", part.status_code == 204
        and part.headers.get("upload-offset") == "100000", part)
    mismatch = await send_patch(http, url, auth, 50_000, data[50_000:60_000])
    row("PATCH at a wrong offset: 409", mismatch.status_code == 409, mismatch)
    wrong_type = await http.patch(url, content=b"x", headers={**TUS, **auth, "Upload-Offset": "100000",
                                                              "Content-Type": "application/octet-stream"})
    row("PATCH with another Content-Type: 415", wrong_type.status_code == 415, wrong_type)
    no_version = await http.patch(url, content=b"x", headers={**OCTETS, **auth, "Upload-Offset": "100000"})
    row("no Tus-Resumable: 412", no_version.status_code == 412, no_version)
    resumed = await head(http, url, auth)
    row("resume: HEAD gives the offset", resumed.headers.get("upload-offset") == "100000", resumed)
    digest = base64.b64encode(hashlib.sha1(data[100_000:]).digest()).decode()
    last = await send_patch(http, url, auth, 100_000, data[100_000:], **{"Upload-Checksum": f"sha1 {digest}"})
    row("checksum: the last PATCH with sha1 completes", last.status_code == 204
        and last.headers.get("upload-offset") == str(len(data)), last)
    asset_id = last.headers.get("mediasvc-asset-id")
    asset = await asset_row(asset_id) if asset_id else None
    row("completion: an asset with the whole file's sha256",
        asset is not None and asset["sha256"] == sha256(data) and asset["profile"] == "video_response", last)

    bad = await create(**{"Upload-Length": "1000"})
    wrong_sum = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    mismatched = await send_patch(http, location(bad), auth, 0, data[:1000],
                                  **{"Upload-Checksum": f"sha1 {wrong_sum}"})
    row("checksum mismatch: 460", mismatched.status_code == 460, mismatched)

    whole = await http.post("/api/v1/tus/", content=data, headers={
        **TUS, **OCTETS, **auth, "Upload-Length": str(len(data)), "Upload-Metadata": meta})
    row("creation-with-upload: 201, offset = length", whole.status_code == 201
        and whole.headers.get("upload-offset") == str(len(data)), whole)

    deferred = await create(**{"Upload-Defer-Length": "1"})
    durl = location(deferred)
    row("creation-defer-length: 201", deferred.status_code == 201, deferred)
    one = await send_patch(http, durl, auth, 0, data[:100_000])
    two = await send_patch(http, durl, auth, 100_000, data[100_000:], **{"Upload-Length": str(len(data))})
    row("defer-length: the length on a later PATCH completes", one.status_code == 204 and two.status_code == 204
        and "mediasvc-asset-id" in two.headers, two)

    gone = await create(**{"Upload-Length": "5000"})
    terminated = await http.delete(location(gone), headers={**TUS, **auth})
    after = await head(http, location(gone), auth)
    row("termination: 204, then 404 or 410", terminated.status_code == 204 and after.status_code in (404, 410),
        after)

    partials = []
    for piece in (data[:150_000], data[150_000:]):
        made_part = await http.post("/api/v1/tus/", content=piece, headers={
            **TUS, **OCTETS, **auth, "Upload-Length": str(len(piece)), "Upload-Concat": "partial",
            "Upload-Metadata": meta})
        partials.append(location(made_part))
    final = await http.post("/api/v1/tus/", headers={**TUS, **auth, "Upload-Metadata": meta,
                                                     "Upload-Concat": "final;" + " ".join(partials)})
    final_asset = await asset_row(final.headers["mediasvc-asset-id"]) if final.status_code == 201 else None
    row("concatenation: the final upload is the joined asset", final_asset is not None
        and final_asset["sha256"] == sha256(data) and final_asset["profile"] == "video_response", final)

    assert not failures, "\n".join(failures)
