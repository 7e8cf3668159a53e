"""hls.js in Chromium starts on the early master (the lowest rung alone, the asset still ``processing``) and keeps
playing while the rest of the ladder is added and the asset turns ``ready``: no fatal error, time keeps moving.

The ladder is held after its first rung by the gate of ``tests.test_hls_playable_early`` and released while the
player runs.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest

from mediasvc.app import create_app
from tests.playback_helpers import tenant_with_key
from tests.test_dashboard_browser import ARGS, CHROMIUM, serve_with_granian, shots  # noqa: F401 (fixture)
from tests.test_hls_playable_early import PROFILES, GatePlugin, _uploaded, _wait_status
from tests.test_playback_browser import MEDIA_ARGS
from tests.test_processors_hls import make_source

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(),
                       reason=f"{CHROMIUM} is absent: install Debian's chromium (apt-get install -y chromium)"),
    pytest.mark.timeout(300),
]

SECONDS = 16


async def test_hls_js_plays_the_early_master_across_rungs_being_added(make_settings, tmp_path, shots: Path):
    from playwright.async_api import async_playwright

    source = make_source(tmp_path / "talk.mp4", seconds=SECONDS, width=854, height=480)
    settings = make_settings(profiles=PROFILES, run_worker_in_app=True,
                             **{"queue.name": f"early-play-{uuid.uuid4().hex[:8]}"})
    plugin = GatePlugin()
    app = create_app(settings, extra_plugins=[plugin])
    async with serve_with_granian(app) as base:
        tenant_id, _, key = await tenant_with_key()
        asset_id = await _uploaded(app.state.services, tenant_id, source)
        await asyncio.wait_for(plugin.processor.held.wait(), 120)  # the first rung and its master are stored
        async with httpx.AsyncClient(base_url=base) as http:
            info = (await http.get(f"/api/v1/playback/{asset_id}",
                                   headers={"Authorization": f"Bearer {key}"})).json()
        assert info["status"] == "processing" and info["ready_renditions"] == ["360p"] and info["hls_url"]
        token = info["hls_url"].split("/hls/", 1)[1].split("/", 1)[0]

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *MEDIA_ARGS])
            page = await browser.new_page(viewport={"width": 800, "height": 500})
            await page.goto(f"{base}/embed/{asset_id}?token={token}")
            video = page.locator("video#player")
            await video.evaluate("""v => { window.fatal = [];
                v.hls.on('hlsError', (_, d) => { if (d.fatal) window.fatal.push(d.details); });
                v.muted = true; v.play().catch(() => {}); }""")
            await page.wait_for_function("document.querySelector('video').currentTime > 2", timeout=60_000)
            assert await page.evaluate("document.querySelector('video').hls.levels.length") == 1
            row = (await _wait_status(asset_id, "processing", timeout=1))
            assert row["status"] == "processing"  # still: the player started on the early master

            # half speed: the rest of the ladder has time to land mid-clip even on a busy 2-core machine
            await video.evaluate("v => { v.playbackRate = 0.5; }")
            plugin.processor.gate.set()
            await _wait_status(asset_id, "ready")
            at_ready = await video.evaluate("v => v.currentTime")
            assert at_ready < SECONDS - 1, "the clip ended before the ladder did: nothing was played across it"
            await page.wait_for_function(f"document.querySelector('video').currentTime > {at_ready + 1}",
                                         timeout=60_000)
            assert await page.evaluate("window.fatal") == []
            assert await video.evaluate("v => v.error") is None
            assert await video.get_attribute("data-state") != "error"
            await page.screenshot(path=str(shots / "player-early-master.png"))
            await browser.close()
