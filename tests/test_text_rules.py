"""The one text rule at every entry point: a NUL or other control character in any client text field is a 422
``validation_failed`` naming the field, and nothing is stored; file names lose bidi overrides and other invisible
format characters, both when stored and when served (``Content-Disposition``)."""

from __future__ import annotations

import base64
import io
import uuid
from urllib.parse import unquote, urlsplit

import av
import httpx
import msgspec
import pytest

from mediasvc.errors import ValidationFailed
from mediasvc.media_urls import serve_url
from mediasvc.object_responses import content_disposition
from mediasvc.tables import Asset, Chunk, RecordingSession, Upload
from mediasvc.text_rules import CheckedText, check_text, check_tree, clean_name

RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: "\u202egpj.mp4" shows as "4pm.jpg"
TUS = {"Tus-Resumable": "1.0.0"}


def make_mp4() -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(5):
            frame = av.VideoFrame(32, 32, "yuv420p")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


MP4 = make_mp4()


def refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert error["message"] == f"{field}: control characters are not allowed"
    assert error["details"]["field"] == field
    assert error["request_id"] == response.headers["x-request-id"]


def tus_metadata(**pairs: str) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# --- the rule itself ----------------------------------------------------------------------------------------------


def test_control_characters_are_refused_with_the_field_path_tab_newline_cr_allowed():
    check_tree({"note": "line one\nline two\r\n\tindented", "n": 3, "ok": [True, None, 1.5]})
    for bad in ("\x00", "\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f", "\x7f"):
        with pytest.raises(ValidationFailed) as caught:
            check_tree({"a": {"b": ["fine", {"c": f"x{bad}y"}]}}, "metadata")
        assert caught.value.message == "metadata.a.b[1].c: control characters are not allowed", repr(bad)
    with pytest.raises(ValidationFailed) as caught:
        check_tree({"k\x00": 1}, "metadata")
    assert caught.value.details == {"field": "metadata.k\\x00"}  # a bad key is named readably
    assert check_text("plain", "owner") == "plain" and check_text(None, "owner") is None
    deep: object = "x\x00"
    for _ in range(5000):  # deeper than Python's recursion limit: still a 422, not a RecursionError
        deep = [deep]
    with pytest.raises(ValidationFailed):
        check_tree(deep, "metadata")


class Inner(msgspec.Struct):
    label: str = ""


class Payload(CheckedText, forbid_unknown_fields=True):
    name: str
    inner: list[Inner] = []


def test_checked_structs_run_the_rule_when_decoded():
    assert msgspec.json.decode(b'{"name": "a\\tb", "inner": [{"label": "x"}]}', type=Payload).name == "a\tb"
    with pytest.raises(ValidationFailed) as caught:
        msgspec.json.decode(b'{"name": "a", "inner": [{"label": "x"}, {"label": "\\u0000"}]}', type=Payload)
    assert caught.value.message == "inner[1].label: control characters are not allowed"


def test_names_lose_bidi_controls_and_invisible_format_characters():
    assert clean_name(f"{RLO}gpj.mp4") == "gpj.mp4"
    for char in ("\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
                 "\u200b", "\u200e", "\u200f", "\ufeff", "\u00ad", "\u061c"):
        assert clean_name(f"re{char}port.pdf") == "report.pdf", hex(ord(char))
    assert clean_name("réponse – 日本語.mp4") == "réponse – 日本語.mp4"  # visible text is kept
    header = content_disposition(f"{RLO}gpj.mp4")  # a name stored before the rule is served clean
    assert header == "attachment; filename=\"gpj.mp4\"; filename*=UTF-8''gpj.mp4"
    assert "%E2%80%AE" not in content_disposition(f"clip{RLO}4pm.exe")


# --- every entry point: 422, nothing stored -----------------------------------------------------------------------


async def test_sessions_refuse_control_characters_and_store_nothing(client, auth):
    before = await RecordingSession.count()
    cases = [
        ({"metadata": {"k": "a\u0000b"}}, "metadata.k"),
        ({"metadata": {"k\u0000": "v"}}, "metadata.k\\x00"),
        ({"metadata": {"list": [{"deep": "\u001b[31m"}]}}, "metadata.list[0].deep"),
        ({"interview_id": "i\u0000"}, "interview_id"),
        ({"user_id": "u\u007f"}, "user_id"),
        ({"devices": [{"kind": "videoinput", "label": "Cam\u0000"}]}, "devices[0].label"),
    ]
    for body, field in cases:
        refused(await client.post("/api/v1/sessions", json=body, headers=auth), field)
    assert await RecordingSession.count() == before
    refused(await client.get("/api/v1/sessions", params={"user_id": "u\x00"}, headers=auth), "user_id")
    refused(await client.get("/api/v1/sessions", params={"interview_id": "\x01"}, headers=auth), "interview_id")
    for path in ("a%00b", "a%00b/gaps", "a%00b/chunks"):  # a client id in the path
        method = client.post if path.endswith("chunks") else client.get
        refused(await method(f"/api/v1/sessions/{path}", headers=auth), "session_ref")
    ok = await client.post("/api/v1/sessions", json={"metadata": {"note": "a\tb\nc\r\n"}}, headers=auth)
    assert ok.status_code == 201 and ok.json()["metadata"] == {"note": "a\tb\nc\r\n"}


async def test_assets_refuse_control_characters_and_store_nothing(client, auth):
    before = await Asset.count()
    base = {"profile": "video_response", "original_name": "answer.mp4"}
    cases = [
        ({"original_name": "a\u0000b.mp4"}, "original_name"),
        ({"metadata": {"k": "a\u0000b"}}, "metadata.k"),
        ({"metadata": {"a": {"b": ["x", "y\u0000"]}}}, "metadata.a.b[1]"),
        ({"owner": "o\u0000"}, "owner"),
        ({"content_type": "video/mp4\u0000"}, "content_type"),
    ]
    for changes, field in cases:
        refused(await client.post("/api/v1/assets", json=base | changes, headers=auth), field)
    assert await Asset.count() == before
    for name in ("owner", "kind", "profile"):
        refused(await client.get("/api/v1/assets", params={name: "x\x00"}, headers=auth), name)


async def test_presigned_uploads_refuse_control_characters_and_store_nothing(client, auth):
    before = await Upload.count()
    base = {"file_name": "answer.mp4", "profile": "video_response", "content_type": "video/mp4",
            "size_bytes": len(MP4)}
    for changes, field in [({"metadata": {"k": "a\u0000b"}}, "metadata.k"),
                           ({"file_name": "a\u0000.mp4"}, "file_name"), ({"owner": "\u0007"}, "owner")]:
        refused(await client.post("/api/v1/uploads", json=base | changes, headers=auth), field)
    assert await Upload.count() == before


async def test_tus_metadata_refuses_control_characters_and_stores_nothing(client, auth):
    before = await Upload.count()
    headers = {**auth, **TUS, "Upload-Length": str(len(MP4))}
    for pairs, field in [({"filename": "a\x00b.mp4"}, "Upload-Metadata.filename"),
                         ({"filename": "a.mp4", "owner": "o\x00"}, "Upload-Metadata.owner"),
                         ({"filename": "a.mp4", "note": "\x1b"}, "Upload-Metadata.note")]:
        metadata = tus_metadata(profile="video_response", **pairs)
        refused(await client.post("/api/v1/tus/", headers=headers | {"Upload-Metadata": metadata}), field)
    assert await Upload.count() == before


async def test_chunk_fields_refuse_control_characters_and_store_nothing(client, auth):
    session = (await client.post("/api/v1/sessions", json={}, headers=auth)).json()["id"]
    url = f"/api/v1/sessions/{session}/chunks"
    before = await Chunk.count()
    for fields, field in [({"question_id": "q\x00"}, "question_id"), ({"session_id": "s\x01"}, "session_id")]:
        response = await client.post(url, headers=auth, data={"sequence_index": "0", **fields},
                                     files={"file": ("chunk.mp4", MP4, "video/mp4")})
        refused(response, field)
    # httpx (like browsers) percent-escapes control characters in a file name: send the raw bytes by hand
    body = (b'--b\r\nContent-Disposition: form-data; name="sequence_index"\r\n\r\n0\r\n'
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="chunk\x01.mp4"\r\n'
            b"Content-Type: video/mp4\r\n\r\n" + MP4 + b"\r\n--b--\r\n")
    response = await client.post(url, content=body,
                                 headers={**auth, "Content-Type": "multipart/form-data; boundary=b"})
    refused(response, "file.filename")
    assert await Chunk.count() == before
    ok = await client.post(url, headers=auth, data={"sequence_index": "0", "question_id": "q1"},
                           files={"file": ("chunk.mp4", MP4, "video/mp4")})
    assert ok.status_code == 201, ok.text


# --- names: stored and served clean ------------------------------------------------------------------------------


async def test_asset_names_are_stored_without_bidi_controls(client, auth):
    created = await client.post("/api/v1/assets", headers=auth, json={
        "profile": "video_response", "original_name": f"{RLO}gpj.mp4", "metadata": {"title": f"{RLO}kept"}})
    assert created.status_code == 201, created.text
    assert created.json()["original_name"] == "gpj.mp4"
    assert created.json()["metadata"] == {"title": f"{RLO}kept"}  # only names are cleaned
    row = await Asset.select(Asset.original_name).where(Asset.id == uuid.UUID(created.json()["id"])).first()
    assert row["original_name"] == "gpj.mp4"


async def test_tus_file_names_are_stored_without_bidi_controls(client, auth):
    metadata = tus_metadata(profile="video_response", filename=f"an\u200bswer{RLO}.mp4")
    created = await client.post("/api/v1/tus/", headers={**auth, **TUS, "Upload-Length": str(len(MP4)),
                                                         "Upload-Metadata": metadata})
    assert created.status_code == 201, created.text
    upload_id = uuid.UUID(created.headers["location"].rstrip("/").rsplit("/", 1)[-1])
    row = await Upload.select(Upload.original_name).where(Upload.id == upload_id).first()
    assert row["original_name"] == "answer.mp4"


async def test_presigned_name_is_stored_and_served_clean(app, client, auth):
    ticket = await client.post("/api/v1/uploads", headers=auth, json={
        "file_name": f"{RLO}gpj.mp4", "profile": "video_response", "content_type": "video/mp4",
        "size_bytes": len(MP4)})
    assert ticket.status_code == 201, ticket.text
    ticket = ticket.json()
    put = await client.put(path_of(ticket["url"]), content=MP4, headers=ticket["headers"])
    assert put.status_code in (200, 201, 204), put.text
    confirmed = await client.post(path_of(ticket["confirm_url"]), headers=auth)
    assert confirmed.status_code in (200, 201), confirmed.text
    asset = (await client.get(f"/api/v1/assets/{ticket['asset_id']}", headers=auth)).json()
    assert asset["original_name"] == "gpj.mp4"
    download = await client.get(f"/api/v1/assets/{ticket['asset_id']}/download", headers=auth)
    assert download.status_code == 302
    served = await client.get(path_of(download.headers["location"]))
    assert served.status_code == 200 and served.content == MP4
    assert served.headers["content-disposition"] == "attachment; filename=\"gpj.mp4\"; filename*=UTF-8''gpj.mp4"


async def test_a_name_stored_before_the_rule_is_served_clean(app, client):
    services = app.state.services
    key = f"t/video/{uuid.uuid4()}/original.mp4"
    await services.storage.put(key, MP4)
    served = await client.get(path_of(serve_url(services.settings, key, download_name=f"x{RLO}gpj.mp4")))
    assert served.status_code == 200
    disposition = served.headers["content-disposition"]
    assert RLO not in unquote(disposition.split("filename*=UTF-8''", 1)[1])
    assert disposition.endswith("filename*=UTF-8''xgpj.mp4")
