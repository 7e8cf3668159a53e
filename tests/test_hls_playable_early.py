"""Playable early: the ``hls`` step stores and publishes its lowest rung (and a master listing it) before the rest of
the ladder, so the playback API hands out a working HLS URL while the asset is still ``processing``; the master
gains a variant per finished rung. The original is playable as it is (``progressive_url``) from upload on when a
browser plays its container and codecs.

The app tests hold the ladder after its first rung with a gate: a processor that runs the real ``hls`` processor
with a context whose ``publish_rendition`` waits on the gate once the first master is published.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import pytest
from mediasvc_video.hls import HlsProcessor
from mediasvc_video.hls_ladder import parse_master_playlist

from mediasvc.app import create_app
from mediasvc.delivery.progressive import browser_playable
from mediasvc.hookspecs import hookimpl
from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
from mediasvc.tables import Asset
from mediasvc.testing import kit_settings, run_processor
from tests.conftest import serve_in_process
from tests.playback_helpers import tenant_with_key
from tests.test_processors_hls import make_source

pytestmark = pytest.mark.timeout(300)

PROFILES = {"early": {"kind": "video", "formats": ["mp4"], "max_bytes": 50_000_000, "bucket": "early",
                      "steps": ["probe", "gated_hls"]}}


class _GatedContext:
    """The step's context, except that publishing the first master waits until the test opens the gate."""

    def __init__(self, ctx: Any, gate: asyncio.Event, held: asyncio.Event) -> None:
        self._ctx, self._gate, self._held = ctx, gate, held

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    async def publish_rendition(self, rendition: Any) -> None:
        await self._ctx.publish_rendition(rendition)
        if rendition.name == "master" and not self._held.is_set():
            self._held.set()
            await self._gate.wait()


class GatedHls:
    name = "gated_hls"
    kinds = frozenset({"video"})
    timeout_seconds = 600

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.held = asyncio.Event()

    async def run(self, ctx: Any) -> Any:
        return await HlsProcessor().run(_GatedContext(ctx, self.gate, self.held))


class GatePlugin:
    def __init__(self) -> None:
        self.processor = GatedHls()

    @hookimpl
    def register_processors(self, settings):
        return [self.processor]


async def _uploaded(services: Any, tenant_id: uuid.UUID, source: Any) -> uuid.UUID:
    data = source.read_bytes()
    asset_id, key = reserve_key("early", services.settings.profiles["early"], "mp4")
    await services.storage.put(key, data)
    await create_uploaded_asset(services, asset_id=asset_id, tenant_id=tenant_id, profile_name="early",
                                original_name=source.name, storage_key=key, size_bytes=len(data),
                                sha256=hashlib.sha256(data).hexdigest(), content_type="video/mp4", method="test")
    return asset_id


async def _wait_status(asset_id: uuid.UUID, status: str, timeout: float = 180) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await Asset.select().where(Asset.id == asset_id).output(load_json=True).first()
        if row["status"] == status:
            return row
        assert row["status"] != "failed", row["error"]
        assert asyncio.get_running_loop().time() < deadline, f"still {row['status']}"
        await asyncio.sleep(0.1)


async def test_master_lists_the_first_rung_while_processing_then_all(make_settings, tmp_path):
    source = make_source(tmp_path / "clip.mp4", seconds=5, width=854, height=480)
    settings = make_settings(profiles=PROFILES, run_worker_in_app=True,
                             **{"queue.name": f"early-{uuid.uuid4().hex[:8]}"})
    plugin = GatePlugin()
    app = create_app(settings, extra_plugins=[plugin])
    async with serve_in_process(app) as client:
        tenant_id, _, key = await tenant_with_key()
        asset_id = await _uploaded(app.state.services, tenant_id, source)
        headers = {"Authorization": f"Bearer {key}"}

        # the original plays as it is from upload on (H.264/AAC in MP4)
        info = (await client.get(f"/api/v1/playback/{asset_id}", headers=headers)).json()
        assert info["progressive_url"] and info["progressive_url"] == info["original_url"]
        served = await client.get(info["progressive_url"].removeprefix(settings.public_base_url),
                                  headers={"Range": "bytes=0-99"})
        assert served.status_code == 206 and served.content == source.read_bytes()[:100]

        await asyncio.wait_for(plugin.processor.held.wait(), 120)
        info = (await client.get(f"/api/v1/playback/{asset_id}", headers=headers)).json()
        assert info["status"] == "processing" and info["ready_renditions"] == ["360p"]
        assert info["hls_url"] and [v["name"] for v in info["variants"]] == ["360p"]
        master = await client.get(info["hls_url"].removeprefix(settings.public_base_url))
        assert master.status_code == 200 and master.headers["cache-control"] == "no-cache"
        assert [v["URI"] for v in parse_master_playlist(master.text)] == ["360p/index.m3u8"]
        rung = await client.get(info["hls_url"].removeprefix(settings.public_base_url).replace(
            "master.m3u8", "360p/index.m3u8"))
        assert rung.status_code == 200 and "#EXT-X-ENDLIST" in rung.text

        plugin.processor.gate.set()
        await _wait_status(asset_id, "ready")
        info = (await client.get(f"/api/v1/playback/{asset_id}", headers=headers)).json()
        assert info["status"] == "ready" and info["ready_renditions"] == ["360p", "480p"]
        master = await client.get(info["hls_url"].removeprefix(settings.public_base_url))
        assert [v["URI"] for v in parse_master_playlist(master.text)] == ["360p/index.m3u8", "480p/index.m3u8"]
        for _ in range(30):  # the playback lookup keeps an unfinished asset's status for up to 1 s
            if master.headers["cache-control"].startswith("private, max-age="):
                break
            await asyncio.sleep(0.1)
            master = await client.get(info["hls_url"].removeprefix(settings.public_base_url))
        assert master.headers["cache-control"].startswith("private, max-age=")


async def test_each_rung_is_published_before_the_next_is_encoded(tmp_path):
    """The kit's context records what was published and what was stored at that moment: the first rung and a
    master naming it alone come before any other rung exists; the master grows one rung at a time."""
    source = make_source(tmp_path / "clip.mp4", seconds=5, width=1280, height=720)
    run = await run_processor(HlsProcessor(), source, kind="video")
    published = [(p.rendition.name, p.rendition.metadata.get("rungs")) for p in run.context.published]
    assert published == [("360p", None), ("master", ["360p"]), ("480p", None), ("master", ["360p", "480p"]),
                         ("720p", None), ("master", ["360p", "480p", "720p"])]
    first_master = run.context.published[1]
    assert not any("/hls/480p/" in k or "/hls/720p/" in k for k in first_master.stored)
    assert any(k.endswith("/hls/360p/seg_000.ts") for k in first_master.stored)
    assert [r.name for r in run.result.renditions] == ["master", "360p", "480p", "720p"]


async def test_one_pass_when_early_is_off(tmp_path):
    """``hls_first_rung_early = false``: one decode for the whole ladder, so every rung is encoded before the
    first is published (the masters still grow one rung at a time as they are stored)."""
    source = make_source(tmp_path / "clip.mp4", seconds=3, width=854, height=480)
    settings = kit_settings(plugins={"video": {"hls_first_rung_early": False}})
    run = await run_processor(HlsProcessor(), source, kind="video", settings=settings)
    assert [p.rendition.name for p in run.context.published] == ["360p", "master", "480p", "master"]
    first_master = run.context.published[1]
    assert not any("/hls/480p/" in k for k in first_master.stored)  # stored one rung at a time
    assert run.progress[-1] == 100 and run.progress == sorted(run.progress)
    assert [r.name for r in run.result.renditions] == ["master", "360p", "480p"]


@pytest.mark.parametrize(("row", "playable"), [
    ({"kind": "video", "content_type": "video/mp4", "metadata": {}}, True),
    ({"kind": "video", "content_type": "video/quicktime", "metadata": {}}, False),
    ({"kind": "video", "metadata": {"probe": {"mime": "video/mp4", "video_codec": "h264", "audio_codec": "aac"}}},
     True),
    ({"kind": "video", "metadata": {"probe": {"mime": "video/mp4", "video_codec": "hevc", "audio_codec": "aac"}}},
     False),
    ({"kind": "video", "metadata": {"probe": {"mime": "video/webm", "video_codec": "vp9", "audio_codec": None}}},
     True),
    ({"kind": "video", "metadata": {"probe": {"mime": "video/webm", "video_codec": "vp9",
                                              "audio_codec": "aac"}}}, False),
    ({"kind": "audio", "content_type": "video/mp4", "metadata": {}}, False),
])
def test_browser_playable_originals(row, playable):
    assert browser_playable(row) is playable
