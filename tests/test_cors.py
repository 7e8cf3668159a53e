"""CORS over real HTTP (the app under Granian, httpx): preflights from an allowed origin are answered without a
key, a disallowed origin gets no CORS headers, actual responses expose what a client reads, playback stays open
to any origin, and the settings refuse what browsers would refuse."""

from __future__ import annotations

import uuid

import httpx
import pytest

from mediasvc.app import create_app
from mediasvc.settings import SettingsError, load_settings
from tests.playback_helpers import tenant_with_key
from tests.test_api_sessions import make_chunk
from tests.test_dashboard_browser import serve_with_granian

FRONT = "http://front.example.test:5173"
PREFLIGHT_HEADERS = "authorization, content-type, upload-length, upload-offset, tus-resumable, upload-metadata"


def _list(value: str | None) -> set[str]:
    return {item.strip().lower() for item in (value or "").split(",") if item.strip()}


@pytest.fixture
async def served(make_settings):
    settings = make_settings(**{"cors.allow_origins": [FRONT]})
    app = create_app(settings)
    async with serve_with_granian(app) as base:
        _, _, key = await tenant_with_key()
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            yield http, {"Authorization": f"Bearer {key}"}


async def preflight(http: httpx.AsyncClient, path: str, origin: str, method: str = "POST") -> httpx.Response:
    return await http.options(path, headers={"Origin": origin, "Access-Control-Request-Method": method,
                                             "Access-Control-Request-Headers": PREFLIGHT_HEADERS})


@pytest.mark.parametrize("path, method", [
    ("/api/v1/sessions", "POST"), ("/api/v1/sessions/abc/chunks", "POST"), ("/api/v1/uploads", "POST"),
    (f"/media/uploads/{uuid.uuid4()}", "PUT"), ("/api/v1/tus", "POST"), (f"/api/v1/tus/{uuid.uuid4()}", "PATCH"),
    (f"/api/v1/assets/{uuid.uuid4()}/playback", "POST"),
])
async def test_preflight_from_an_allowed_origin_needs_no_key(served, path, method):
    http, _ = served
    response = await preflight(http, path, FRONT, method)
    assert response.status_code == 204, response.text
    assert response.headers["access-control-allow-origin"] == FRONT
    assert "origin" in _list(response.headers.get("vary"))
    assert method.lower() in _list(response.headers["access-control-allow-methods"])
    assert _list(PREFLIGHT_HEADERS) | {"x-request-id", "idempotency-key", "upload-concat"} <= _list(
        response.headers["access-control-allow-headers"])
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in response.headers


async def test_disallowed_origin_gets_no_cors_headers(served):
    http, auth = served
    refused = await preflight(http, "/api/v1/sessions", "http://evil.example.test")
    assert not any(k.startswith("access-control-") for k in refused.headers)
    assert refused.status_code == 401  # falls through to the app: no key, no CORS
    actual = await http.post("/api/v1/sessions", json={}, headers={**auth, "Origin": "http://evil.example.test"})
    assert actual.status_code == 201
    assert not any(k.startswith("access-control-") for k in actual.headers)
    # tus capability discovery (OPTIONS without a CORS request) still answers as before
    discovery = await http.options("/api/v1/tus")
    assert discovery.status_code == 204 and discovery.headers["tus-version"]


async def test_actual_responses_expose_what_a_client_reads(served):
    http, auth = served
    origin = {"Origin": FRONT}
    created = await http.post("/api/v1/sessions", json={"client_id": "cors-1"}, headers={**auth, **origin})
    assert created.status_code == 201
    assert created.headers["access-control-allow-origin"] == FRONT
    exposed = _list(created.headers["access-control-expose-headers"])
    assert {"location", "upload-offset", "upload-length", "tus-resumable", "mediasvc-asset-id", "x-request-id",
            "retry-after"} <= exposed
    chunk = await http.post(f"/api/v1/sessions/{created.json()['id']}/chunks", headers={**auth, **origin},
                            data={"sequence_index": "0"}, files={"file": ("c.mp4", make_chunk(0), "video/mp4")})
    assert chunk.status_code == 201 and chunk.headers["access-control-allow-origin"] == FRONT
    # errors carry CORS too, so the page can read the envelope
    unauthorized = await http.get("/api/v1/sessions", headers=origin)
    assert unauthorized.status_code == 401 and unauthorized.headers["access-control-allow-origin"] == FRONT
    tus = await http.post("/api/v1/tus", headers={**auth, **origin, "Tus-Resumable": "1.0.0", "Upload-Length": "10",
                                                   "Upload-Metadata": "filename YS5tcDQ=,profile dmlkZW9fcmVzcG9uc2U="})
    assert tus.status_code == 201, tus.text
    assert tus.headers["access-control-allow-origin"] == FRONT and tus.headers["location"]
    assert {"location", "upload-offset", "tus-resumable"} <= _list(tus.headers["access-control-expose-headers"])


async def test_playback_is_open_to_any_origin(served):
    http, _ = served
    refused = await http.get(f"/hls/bad-token/{uuid.uuid4()}/master.m3u8", headers={"Origin": "http://any.test"})
    assert refused.status_code in (400, 403)
    assert refused.headers["access-control-allow-origin"] == "*"  # the player can read the refusal
    bare = await http.get("/media/serve/x?e=1&s=bad")
    assert bare.status_code == 403 and bare.headers["access-control-allow-origin"] == "*"
    pre = await http.options(f"/hls/t/{uuid.uuid4()}/master.m3u8",
                             headers={"Origin": "http://any.test", "Access-Control-Request-Method": "GET",
                                      "Access-Control-Request-Headers": "range"})
    assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "*"


async def test_no_origins_configured_means_no_cors(make_settings):
    app = create_app(make_settings())
    async with serve_with_granian(app) as base, httpx.AsyncClient(base_url=base) as http:
        response = await preflight(http, "/api/v1/sessions", FRONT)
        assert response.status_code == 401 and "access-control-allow-origin" not in response.headers


def test_settings_from_env_and_refusals():
    settings = load_settings(env={"MEDIASVC_CORS__ALLOW_ORIGINS": f"{FRONT}, https://b.example.com"})
    assert settings.cors.allow_origins == [FRONT, "https://b.example.com"]
    with pytest.raises(SettingsError, match="CORS__ALLOW_CREDENTIALS"):
        load_settings(env={"MEDIASVC_CORS__ALLOW_ORIGINS": "*", "MEDIASVC_CORS__ALLOW_CREDENTIALS": "true"})
    with pytest.raises(SettingsError, match="CORS__ALLOW_ORIGINS"):
        load_settings(env={"MEDIASVC_CORS__ALLOW_ORIGINS": "front.example.com/app"})
