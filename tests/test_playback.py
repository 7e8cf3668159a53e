"""Token-protected HLS and the playback API: tokens, the playlist-rewriting proxy, Range on segments, CDN URLs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from mediasvc.app import create_app
from mediasvc.delivery.playlists import resolve, rewrite_segments
from mediasvc.delivery.tokens import InvalidToken, issue_token, verify_token
from mediasvc.settings import load_settings
from tests.conftest import serve_in_process
from tests.playback_helpers import CLIP_PROFILES, processed_video, tenant_with_key
from tests.s3_server import S3Server, s3_server  # noqa: F401 (the fixture)
from tests.test_processors_hls import make_source

pytestmark = pytest.mark.timeout(300)

ASSET = uuid.UUID("00000000-0000-4000-8000-000000000001")


def token_settings(**overrides):
    return load_settings(env={}, **{"secret_key": "s", **overrides})


# --- tokens --------------------------------------------------------------------------------------------------


def test_token_verifies_and_each_tampering_is_refused_with_its_reason():
    settings = token_settings()
    token, expires = issue_token(settings, ASSET, "viewer-1", ttl_seconds=60)
    claims = verify_token(settings, token, ASSET, client_ip="10.0.0.1")
    assert (claims.s, claims.a, claims.e) == ("viewer-1", str(ASSET), expires)

    payload, signature = token.split(".")
    cases = {
        "expired": (lambda: verify_token(settings, token, ASSET, client_ip=None, now=expires + 1)),
        "another asset": (lambda: verify_token(settings, token, uuid.uuid4(), client_ip=None)),
        "signature is invalid": (lambda: verify_token(settings, payload + "." + signature[::-1], ASSET,
                                                      client_ip=None)),
        "Malformed": (lambda: verify_token(settings, "not-a-token", ASSET, client_ip=None)),
        "signature is invalid ": (lambda: verify_token(token_settings(secret_key="other"), token, ASSET,
                                                       client_ip=None)),
    }
    for reason, check in cases.items():
        with pytest.raises(InvalidToken, match=reason.strip()):
            check()


def test_ip_bound_token_plays_only_from_that_address():
    settings = token_settings()
    token, _ = issue_token(settings, ASSET, "v", ttl_seconds=60, ip="203.0.113.7")
    assert verify_token(settings, token, ASSET, client_ip="203.0.113.7").ip
    assert "203.0.113.7" not in token  # the address is hashed, not carried in clear
    with pytest.raises(InvalidToken, match="another IP"):
        verify_token(settings, token, ASSET, client_ip="203.0.113.8")


def test_rotating_keys_keeps_live_tokens_until_the_old_key_is_removed():
    old = token_settings(**{"playback.keys": {"2026a": "first-secret"}, "playback.active_key": "2026a"})
    old_token, _ = issue_token(old, ASSET, "v", ttl_seconds=60)
    rotated = token_settings(**{"playback.keys": {"2026a": "first-secret", "2026b": "second-secret"},
                                "playback.active_key": "2026b"})
    assert verify_token(rotated, old_token, ASSET, client_ip=None).k == "2026a"
    new_token, _ = issue_token(rotated, ASSET, "v", ttl_seconds=60)
    assert verify_token(rotated, new_token, ASSET, client_ip=None).k == "2026b"
    retired = token_settings(**{"playback.keys": {"2026b": "second-secret"}, "playback.active_key": "2026b"})
    with pytest.raises(InvalidToken, match="retired"):
        verify_token(retired, old_token, ASSET, client_ip=None)
    assert verify_token(retired, new_token, ASSET, client_ip=None)


# --- playlist rewriting --------------------------------------------------------------------------------------


async def test_rewrite_replaces_segment_uris_only():
    variant = "\n".join([
        "#EXTM3U", "#EXT-X-VERSION:6", '#EXT-X-MAP:URI="init.mp4"', "#EXTINF:4.0,", "seg_000.ts",
        "#EXTINF:4.0,", "seg_001.ts?x=1", "#EXTINF:1.0,", "../../escape.ts", "#EXTINF:1.0,",
        "https://elsewhere/seg.ts", "nested.m3u8", "#EXT-X-ENDLIST",
    ])

    async def url_for(key: str) -> str:
        return f"https://cdn/{key}"

    out = (await rewrite_segments(variant, "t/video/a/hls/240p/index.m3u8", url_for)).splitlines()
    assert '#EXT-X-MAP:URI="https://cdn/t/video/a/hls/240p/init.mp4"' in out
    assert "https://cdn/t/video/a/hls/240p/seg_000.ts" in out
    assert "https://cdn/t/video/a/hls/240p/seg_001.ts" in out
    assert "../../escape.ts" not in out  # it escapes the asset's folder: left as it was, never signed
    assert "../../escape.ts".replace("../../", "https://cdn/t/video/") not in out
    assert "https://elsewhere/seg.ts" in out and "nested.m3u8" in out and out[-1] == "#EXT-X-ENDLIST"
    assert resolve("a/hls/master.m3u8", "../../../x.ts") is None


# --- through the app -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    return make_source(tmp_path_factory.mktemp("play") / "clip.mp4", seconds=3, width=320, height=240)


def app_settings(make_settings, **overrides):
    return make_settings(profiles=CLIP_PROFILES, run_worker_in_app=True,
                         **{"queue.name": f"play-{uuid.uuid4().hex[:8]}", **overrides})


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


async def test_token_protected_hls_through_the_proxy(make_settings, clip):
    settings = app_settings(make_settings, cdn_base_url="https://cdn.example.com")
    app = create_app(settings)
    async with serve_in_process(app) as http:
        services = app.state.services
        tenant_id, _, key = await tenant_with_key()
        auth = {"Authorization": f"Bearer {key}"}
        asset = await processed_video(services, tenant_id, clip)
        asset_id = asset["id"]

        minted = await http.post(f"/api/v1/assets/{asset_id}/playback-tokens", headers=auth,
                                 json={"subject": "candidate-7", "ttl_seconds": 120})
        assert minted.status_code == 201, minted.text
        body = minted.json()
        assert body["hls_url"] == f"https://cdn.example.com/hls/{body['token']}/{asset_id}/master.m3u8"
        base = f"/hls/{body['token']}/{asset_id}"

        master = await http.get(f"{base}/master.m3u8")
        assert master.status_code == 200
        assert master.headers["content-type"].startswith("application/vnd.apple.mpegurl")
        assert master.headers["cache-control"] == "private, max-age=2"
        assert master.headers["access-control-allow-origin"] == "*"
        assert "#EXT-X-STREAM-INF" in master.text and "240p/index.m3u8" in master.text

        variant = await http.get(f"{base}/240p/index.m3u8")
        segments = [line for line in variant.text.splitlines() if line and not line.startswith("#")]
        assert segments and all(s.startswith("seg_") for s in segments)  # relative: the token path carries them

        stored = await services.storage.get_bytes(f"{asset['storage_key'].rsplit('/', 1)[0]}/hls/240p/{segments[0]}")
        whole = await http.get(f"{base}/240p/{segments[0]}")
        assert whole.status_code == 200 and whole.content == stored
        assert whole.headers["cache-control"] == "private, max-age=31536000, immutable"
        part = await http.get(f"{base}/240p/{segments[0]}", headers={"Range": "bytes=100-1099"})
        assert part.status_code == 206 and part.content == stored[100:1100]
        assert part.headers["content-range"] == f"bytes 100-1099/{len(stored)}"
        again = await http.get(f"{base}/240p/{segments[0]}", headers={"If-None-Match": whole.headers["etag"]})
        assert again.status_code == 304 and again.content == b""

        expired, _ = issue_token(settings, asset_id, "candidate-7", ttl_seconds=60, now=time.time() - 3600)
        other, _ = issue_token(settings, uuid.uuid4(), "candidate-7", ttl_seconds=60)
        elsewhere, _ = issue_token(settings, asset_id, "candidate-7", ttl_seconds=60, ip="203.0.113.9")
        here, _ = issue_token(settings, asset_id, "candidate-7", ttl_seconds=60, ip="127.0.0.1")
        forged = body["token"][:-2] + ("AA" if not body["token"].endswith("AA") else "BB")
        for bad, reason in ((expired, "expired"), (other, "another asset"), (elsewhere, "another IP"),
                            (forged, "signature")):
            for path in ("master.m3u8", f"240p/{segments[0]}"):
                refused = await http.get(f"/hls/{bad}/{asset_id}/{path}")
                assert refused.status_code == 403, (reason, refused.text)
                error = refused.json()["error"]
                assert error["code"] == "invalid_token" and reason in error["message"]
        assert (await http.get(f"/hls/{here}/{asset_id}/master.m3u8")).status_code == 200
        assert (await http.get(f"{base}/240p/missing.ts")).status_code == 404
        assert (await http.get(f"{base}/240p/index.m3u8.bak")).status_code == 400

        info = (await http.get(f"/api/v1/playback/{asset_id}", headers=auth)).json()
        assert info["status"] == "ready" and info["kind"] == "video"
        assert info["hls_url"].startswith("https://cdn.example.com/hls/")
        assert info["thumbnail_url"].startswith("https://cdn.example.com/media/serve/")
        assert [v["name"] for v in info["variants"]] == ["240p"] and 2.5 < info["duration_seconds"] < 3.5
        with_token = await http.get(f"/api/v1/playback/{asset_id}", params={"token": body["token"]})
        assert with_token.status_code == 200 and body["token"] in with_token.json()["hls_url"]
        anonymous = await http.get(f"/api/v1/playback/{asset_id}")
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"

        detail = (await http.get(f"/api/v1/assets/{asset_id}", headers=auth)).json()
        urls = {(r["kind"], r["name"]): r["url"] for r in detail["renditions"]}
        assert urls[("hls", "master")] is None
        assert urls[("thumbnail", "default")].startswith("https://cdn.example.com/media/serve/")
        thumb = await http.get(path_of(urls[("thumbnail", "default")]))
        assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"

        # refusals of the token endpoint itself
        _, _, other_key = await tenant_with_key()
        assert (await http.post(f"/api/v1/assets/{asset_id}/playback-tokens", json={"subject": "x"},
                                headers={"Authorization": f"Bearer {other_key}"})).status_code == 404
        assert (await http.post(f"/api/v1/assets/{asset_id}/playback-tokens",
                                json={"subject": "x"})).status_code == 401
        too_long = await http.post(f"/api/v1/assets/{asset_id}/playback-tokens", headers=auth,
                                   json={"subject": "x", "ttl_seconds": 10 ** 7})
        assert too_long.status_code == 422 and too_long.json()["error"]["code"] == "validation_failed"
        no_subject = await http.post(f"/api/v1/assets/{asset_id}/playback-tokens", headers=auth,
                                     json={"ttl_seconds": 5})
        assert no_subject.status_code == 422 and "subject" in no_subject.text


async def test_public_profile_plays_without_a_token(make_settings, clip):
    app = create_app(app_settings(make_settings))
    async with serve_in_process(app) as http:
        tenant_id, _, _ = await tenant_with_key()
        asset = await processed_video(app.state.services, tenant_id, clip, profile="promo")
        info = await http.get(f"/api/v1/playback/{asset['id']}")
        assert info.status_code == 200, info.text
        master = await http.get(path_of(info.json()["hls_url"]))
        assert master.status_code == 200 and "#EXTM3U" in master.text
        embed = await http.get(f"/embed/{asset['id']}")
        assert embed.status_code == 200 and 'data-hls="' in embed.text


async def test_object_store_segments_skip_the_app(make_settings, clip, s3_server: S3Server):
    storage = {f"storage.{k.lower()}": v for k, v in {
        "backend": "s3", "bucket": s3_server.bucket, "endpoint": s3_server.endpoint, "region": s3_server.region,
        "access_key_id": s3_server.access_key_id, "secret_access_key": s3_server.secret_access_key,
        "path_style": True, "allow_http": True}.items()}
    for mode in ("presign", "cdn"):
        settings = app_settings(make_settings, **storage, **{"playback.segment_delivery": mode,
                                                            "playback.segment_base_url": "https://segments.example"})
        app = create_app(settings)
        async with serve_in_process(app) as http:
            tenant_id, _, key = await tenant_with_key()
            asset = await processed_video(app.state.services, tenant_id, clip)
            token, _ = issue_token(settings, asset["id"], "v", ttl_seconds=300)
            variant = await http.get(f"/hls/{token}/{asset['id']}/240p/index.m3u8")
            assert variant.status_code == 200, variant.text
            segments = [line for line in variant.text.splitlines() if line and not line.startswith("#")]
            hls_base = asset["storage_key"].rsplit("/", 1)[0] + "/hls"
            if mode == "cdn":
                assert segments[0] == f"https://segments.example/{hls_base}/240p/seg_000.ts"
                continue
            assert segments[0].startswith(f"{s3_server.endpoint}/{s3_server.bucket}/{hls_base}/240p/seg_000.ts?")
            async with httpx.AsyncClient() as direct:
                fetched = await direct.get(segments[0])
                assert fetched.status_code == 200
                assert fetched.content == await app.state.services.storage.get_bytes(f"{hls_base}/240p/seg_000.ts")
                tampered = await direct.get(segments[0].replace("seg_000", "seg_001"))
                assert tampered.status_code == 403  # the signature covers the key
            redirected = await http.get(f"/hls/{token}/{asset['id']}/240p/seg_000.ts")
            assert redirected.status_code == 302 and redirected.headers["location"].startswith(s3_server.endpoint)
