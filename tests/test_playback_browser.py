"""A real player: hls.js in Debian Chromium plays a token-protected stream from the app served by Granian.

The embed page (``/embed/{asset_id}?token=…``) loads the vendored hls.js; the test waits until ``currentTime``
is past two 4-second segments, takes a screenshot, then points the same player at an expired token and sees the
load fail with 403. Screenshots go to $MEDIASVC_SCREENSHOTS (default: a temp dir).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from mediasvc.app import create_app
from mediasvc.delivery.fast_path import ROUTE_LABEL
from mediasvc.delivery.tokens import issue_token
from tests.dashboard_helpers import make_operator
from tests.playback_helpers import CLIP_PROFILES, processed_video, tenant_with_key
from tests.test_dashboard_browser import ARGS, CHROMIUM, serve_with_granian, shots, sign_in  # noqa: F401 (fixture)
from tests.speech import HAVE_ESPEAK
from tests.test_processors_hls import make_source
from tests.test_transcription_api import TEXT, talking_video

# Headless Chromium blocks autoplay without a user gesture.
MEDIA_ARGS = ["--autoplay-policy=no-user-gesture-required"]

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"),
    pytest.mark.timeout(300),
]


async def test_hls_js_plays_a_token_protected_stream(make_settings, tmp_path, shots: Path):
    from playwright.async_api import async_playwright

    source = make_source(tmp_path / "lecture.mp4", seconds=12, width=320, height=240)
    settings = make_settings(profiles=CLIP_PROFILES, run_worker_in_app=True,
                             **{"queue.name": f"player-{uuid.uuid4().hex[:8]}"})
    app = create_app(settings)
    async with serve_with_granian(app) as base:
        tenant_id, _, _ = await tenant_with_key()
        asset = await processed_video(app.state.services, tenant_id, source)
        token, _ = issue_token(settings, asset["id"], "viewer", ttl_seconds=600)
        expired, _ = issue_token(settings, asset["id"], "viewer", ttl_seconds=60, now=time.time() - 3600)

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *MEDIA_ARGS])
            page = await browser.new_page(viewport={"width": 800, "height": 500})
            responses: list[tuple[int, str]] = []
            page.on("response", lambda r: responses.append((r.status, r.url)))
            console: list[str] = []
            page.on("console", lambda m: console.append(m.text))
            await page.goto(f"{base}/embed/{asset['id']}?token={token}")
            video = page.locator("video#player")
            await video.evaluate("v => { v.muted = true; v.play().catch(() => {}); }")
            try:
                await page.wait_for_function("document.querySelector('video').currentTime > 8.5", timeout=60_000)
            except Exception:
                state = await video.evaluate("v => [v.dataset.state, v.dataset.error, v.currentTime, v.readyState, v.paused, v.buffered.length && [v.buffered.start(0), v.buffered.end(v.buffered.length-1)], v.error && v.error.message]")
                raise AssertionError(f"not playing: {state}; console {console}") from None
            assert await video.get_attribute("data-state") == "playing"
            await video.evaluate("v => v.pause()")
            await page.screenshot(path=str(shots / "player-hls-token.png"))
            segment_hits = [url for status, url in responses if status == 200 and url.endswith(".ts")]
            assert len(segment_hits) >= 3 and all(f"/hls/{token}/" in url for url in segment_hits)

            # The same page, pointed at an expired token: the manifest load fails with 403.
            await page.goto(f"{base}/embed/{asset['id']}?token={token}")
            await page.evaluate("""url => { const v = document.querySelector('video');
                                             v.removeAttribute('data-state'); v.hls.destroy();
                                             v.dataset.hls = url; }""",
                                f"{base}/hls/{expired}/{asset['id']}/master.m3u8")
            await page.evaluate("""() => { const v = document.querySelector('video');
                                            document.dispatchEvent(new Event('htmx:afterSettle'));
                                            }""")
            await page.wait_for_function("document.querySelector('video').dataset.state === 'error'",
                                         timeout=30_000)
            error = await page.locator("video#player").get_attribute("data-error")
            assert error == "manifestLoadError (HTTP 403)"
            assert await page.locator(".player-error").is_visible()
            await page.screenshot(path=str(shots / "player-hls-expired.png"))

            refused = await page.goto(f"{base}/embed/{asset['id']}?token={expired}")
            assert refused.status == 403

            # An operator's asset page has the same player, with a token minted for the operator.
            await sign_in(page, base, await make_operator("viewer"))
            await page.goto(f"{base}/dashboard/assets/{asset['id']}")
            player = page.locator(".player video")
            await player.evaluate("v => { v.muted = true; v.play().catch(() => {}); }")
            await page.wait_for_function("document.querySelector('.player video').currentTime > 4.5",
                                         timeout=60_000)
            assert (await player.get_attribute("data-hls")).startswith("/hls/")
            await page.screenshot(path=str(shots / "dashboard-asset-player.png"), full_page=True)
            await browser.close()


async def test_granian_fast_path_matches_the_route(make_settings, tmp_path):
    """Under Granian, token-valid segment GETs skip routing (ASGI pathsend); the bytes and headers are the same
    as the route gives, and everything else (Range, refusals) still goes through the route."""
    import httpx

    source = make_source(tmp_path / "clip.mp4", seconds=3, width=320, height=240)
    settings = make_settings(profiles=CLIP_PROFILES, run_worker_in_app=True,
                             **{"queue.name": f"fast-{uuid.uuid4().hex[:8]}"})
    app = create_app(settings)
    async with serve_with_granian(app) as base:
        services = app.state.services
        tenant_id, _, _ = await tenant_with_key()
        asset = await processed_video(services, tenant_id, source)
        token, _ = issue_token(settings, asset["id"], "viewer", ttl_seconds=600)
        url = f"{base}/hls/{token}/{asset['id']}/240p/seg_000.ts"
        stored = await services.storage.get_bytes(asset["storage_key"].rsplit("/", 1)[0] + "/hls/240p/seg_000.ts")
        fast = services.metrics.http_requests.labels(method="GET", route=ROUTE_LABEL, status="200")
        async with httpx.AsyncClient() as http:
            first = await http.get(url)  # the route: it fills the asset cache
            before = fast._value.get()
            second = await http.get(url)
            assert fast._value.get() == before + 1  # answered by the fast path
            assert first.content == second.content == stored
            for header in ("content-type", "content-length", "etag", "last-modified", "cache-control",
                           "access-control-allow-origin", "accept-ranges"):
                assert first.headers[header] == second.headers[header], header
            ranged = await http.get(url, headers={"Range": "bytes=10-19"})
            assert ranged.status_code == 206 and ranged.content == stored[10:20]
            forged = await http.get(url.replace(token, token[:-3] + "abc"))
            assert forged.status_code == 403 and forged.json()["error"]["code"] == "invalid_token"
            assert forged.headers["access-control-allow-origin"] == "*"
            assert fast._value.get() == before + 1


@pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is absent (apt-get install -y espeak-ng)")
async def test_hls_js_shows_the_transcript_as_subtitles(make_settings, tmp_path, shots: Path):  # noqa: F811
    """The transcribe step adds a SUBTITLES rendition to the master: hls.js lists it and loads its cues."""
    from playwright.async_api import async_playwright

    source = talking_video(tmp_path / "answer.mp4", TEXT)
    profiles = {"talk": {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "talks",
                         "steps": ["probe", "hls", "audio", "transcribe"]}}
    settings = make_settings(profiles=profiles, run_worker_in_app=True,
                             plugins={"transcription": {"engine": "faster-whisper", "threads": 2}},
                             **{"queue.name": f"subs-{uuid.uuid4().hex[:8]}"})
    app = create_app(settings)
    async with serve_with_granian(app) as base:
        tenant_id, _, _ = await tenant_with_key()
        asset = await processed_video(app.state.services, tenant_id, source, profile="talk", timeout=240)
        token, _ = issue_token(settings, asset["id"], "viewer", ttl_seconds=600)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *MEDIA_ARGS])
            page = await browser.new_page(viewport={"width": 640, "height": 480})
            await page.goto(f"{base}/embed/{asset['id']}?token={token}")
            await page.wait_for_function("document.querySelector('video').hls?.subtitleTracks?.length > 0",
                                         timeout=30_000)
            track = await page.evaluate("() => document.querySelector('video').hls.subtitleTracks[0].lang")
            assert track == "en"
            await page.evaluate("""() => { const v = document.querySelector('video');
                                            v.hls.subtitleTrack = 0; v.muted = true; v.play().catch(() => {}); }""")
            await page.wait_for_function(
                """() => [...document.querySelector('video').textTracks]
                          .some(t => t.cues && t.cues.length > 0)""", timeout=60_000)
            cues = await page.evaluate("""() => [...document.querySelector('video').textTracks]
                .flatMap(t => [...(t.cues || [])].map(c => c.text)).join(' ')""")
            assert "problem" in cues.lower()
            await page.screenshot(path=str(shots / "player-subtitles.png"))
            await browser.close()
