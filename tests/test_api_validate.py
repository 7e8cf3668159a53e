"""POST /api/v1/validate: a file checked against a profile (sniffed type, size, probe) and never stored."""

from __future__ import annotations

import io
import os
import uuid
from pathlib import Path

import pytest
from litestar import Router

from mediasvc.api.validate import ValidateController
from mediasvc.app import create_app
from mediasvc.auth import api_key_guard, create_api_key
from tests.conftest import serve_in_process
from tests.test_api_uploads import MP4, PNG, assert_envelope

MiB = 1024 * 1024


@pytest.fixture
def small_avatar_settings(make_settings):
    return make_settings(profiles={"avatar": {"max_bytes": 1 * MiB}})


@pytest.fixture
async def app(small_avatar_settings):
    app = create_app(small_avatar_settings)
    if not any(route.path == "/api/v1/validate" for route in app.routes):  # until app.py mounts it
        app.register(Router(path="/api/v1", guards=[api_key_guard], route_handlers=[ValidateController]))
    return app


@pytest.fixture
async def client(app):
    async with serve_in_process(app) as http:
        yield http


def files_in(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []


def nothing_left(app) -> bool:
    data_dir = Path(app.state.services.settings.data_dir)
    return not files_in(data_dir / "storage") and not files_in(data_dir / "tmp")


async def validate(client, auth, data: bytes, name: str, profile: str | None = "video_response", **kwargs):
    form = {"profile": profile} if profile is not None else {}
    return await client.post("/api/v1/validate", data=form, files={"file": (name, data)}, headers=auth, **kwargs)


async def test_a_good_video_is_ok_with_a_probe_summary(app, client, auth):
    response = await validate(client, auth, MP4, "answer.mp4")
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["ok"], report["problems"], report["sniffed_type"], report["size_bytes"]) == \
        (True, [], "video/mp4", len(MP4))
    probe = report["probe"]
    assert probe["format"] == "mov"  # the demuxer chosen from the sniffed type
    assert probe["duration_seconds"] == pytest.approx(1.0, abs=0.15)
    assert (probe["width"], probe["height"], probe["video_codec"]) == (64, 48, "mpeg4")
    assert [s["type"] for s in probe["streams"]] == ["video"]
    assert nothing_left(app)


async def test_a_good_image_is_probed_for_its_dimensions(app, client, auth):
    report = (await validate(client, auth, PNG, "me.png", profile="avatar")).json()
    assert report["ok"] is True and report["sniffed_type"] == "image/png"
    assert (report["probe"]["width"], report["probe"]["height"]) == (4, 3)


async def test_wrong_magic_bytes_are_listed_as_problems(app, client, auth):
    report = (await validate(client, auth, PNG, "answer.mp4")).json()
    assert report["ok"] is False
    assert report["sniffed_type"] == "image/png"
    assert [p["code"] for p in report["problems"]] == ["unsupported_media_type"]
    assert "image/png" in report["problems"][0]["message"]

    report = (await validate(client, auth, MP4, "answer.exe")).json()  # the name is wrong too: both reported
    assert report["ok"] is False and len(report["problems"]) == 2
    assert nothing_left(app)


async def test_media_that_cannot_be_read_is_a_problem(client, auth):
    broken = MP4[:40] + os.urandom(2000)  # an MP4 signature followed by garbage
    report = (await validate(client, auth, broken, "answer.mp4")).json()
    assert report["ok"] is False
    assert [p["code"] for p in report["problems"]] == ["unreadable"]
    assert "error" in report["probe"]


async def test_oversize_stops_reading_and_is_a_problem(app, client, auth):
    data = PNG + os.urandom(3 * MiB)  # the avatar profile allows 1 MiB here
    # a file object: httpx sends it in 64 KiB chunks, as a network client would
    report = (await validate(client, auth, io.BytesIO(data), "me.png", profile="avatar")).json()
    assert report["ok"] is False and report["size_exceeded"] is True
    assert [p["code"] for p in report["problems"]] == ["payload_too_large"]
    assert 1 * MiB < report["size_bytes"] < len(data)  # stopped counting soon after the limit
    assert report["probe"] is None
    assert nothing_left(app)


async def test_profile_may_follow_the_file_or_come_in_the_query(client, auth):
    response = await client.post("/api/v1/validate", files=[("file", ("answer.mp4", MP4)),
                                                           ("profile", (None, "video_response"))], headers=auth)
    assert response.status_code == 200 and response.json()["ok"] is True, response.text
    response = await client.post("/api/v1/validate?profile=video_response", files={"file": ("answer.mp4", MP4)},
                                 headers=auth)
    assert response.status_code == 200 and response.json()["profile"] == "video_response"


async def test_bad_requests_get_the_envelope(client, auth):
    assert_envelope(await validate(client, auth, MP4, "answer.mp4", profile="nope"), 422, "validation_failed")
    assert_envelope(await client.post("/api/v1/validate?profile=nope", files={"file": ("a.mp4", MP4)},
                                      headers=auth), 422, "validation_failed")
    assert_envelope(await validate(client, auth, MP4, "answer.mp4", profile=None), 422, "validation_failed")
    assert_envelope(await client.post("/api/v1/validate", data={"profile": "avatar"}, files={"other": ("x", b"1")},
                                      headers=auth), 422, "validation_failed")
    assert_envelope(await client.post("/api/v1/validate", json={"profile": "avatar"}, headers=auth),
                    415, "unsupported_media_type")
    broken = b"--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\n\r\n" + PNG
    assert_envelope(await client.post("/api/v1/validate", content=broken, headers=auth | {
        "Content-Type": "multipart/form-data; boundary=xyz"}), 400, "bad_request")
    assert_envelope(await client.post("/api/v1/validate", files={"file": ("a.mp4", MP4)}), 401, "unauthorized")


async def test_without_a_media_prober_the_probe_is_skipped(make_settings):
    from tests.test_api_sessions import settings_without_video

    app = create_app(settings_without_video(make_settings))
    async with serve_in_process(app) as http:
        key, _ = await create_api_key(f"noprobe-{uuid.uuid4().hex[:6]}")
        report = (await validate(http, {"Authorization": f"Bearer {key}"}, MP4, "answer.mp4")).json()
    assert (report["ok"], report["sniffed_type"], report["probe"]) == (True, "video/mp4", None)
    assert nothing_left(app)  # nothing was spooled
