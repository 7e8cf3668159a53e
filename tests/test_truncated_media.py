"""Issue 15, item 4: an MP4 whose ``mdat`` is cut keeps its header (duration 2 s) and used to be processed to
``ready`` with 0.7 s renditions. The probe now reads every packet and compares what is there with the declared
duration: a truncated file fails the probe (default), or, with ``[plugins.video] truncated = "flag"`` (or per
profile in ``truncated_by_profile``), is kept, flagged ``partial`` in ``metadata.probe`` and ``media.processed``.
An intact file, and a MediaRecorder-style WebM that declares no duration at all, still pass."""

from __future__ import annotations

import io
import uuid
from fractions import Fraction
from pathlib import Path

import av
import pytest
from mediasvc_video.probe import ProbeProcessor
from PIL import Image

from mediasvc.errors import ConfigurationError, PermanentProcessingError
from mediasvc.plugins import PluginHost
from mediasvc.settings import load_settings
from mediasvc.tables import Event, ProcessingJob
from mediasvc.testing import make_context, running_app
from tests.test_processors_video import make_video

TRUNCATED = r"the file is truncated: 0\.[5-9] s of 2\.0 s can be read"


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("truncated")
    # moov first (as ffmpeg -movflags +faststart and most phones write it): the header survives the cut
    whole = make_video(d / "clip.mp4", seconds=2.0, width=160, height=120, faststart=True).read_bytes()
    mdat = whole.find(b"mdat")
    assert 0 < whole.find(b"moov") < mdat
    cut_at = int(len(whole) * 0.4)  # ~0.7 s of 2 s survive, well inside mdat
    assert mdat < cut_at < len(whole)
    return {"whole": whole, "cut": whole[:cut_at], "live_webm": live_webm()}


class _Pipe(io.RawIOBase):
    """A write-only stream that cannot seek: the muxer cannot go back to write the duration."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk) -> int:
        self.data += chunk
        return len(chunk)


def live_webm() -> bytes:
    """VP9, 2 s, written as MediaRecorder does: streamed, so the header declares no duration."""
    pipe = _Pipe()
    with av.open(pipe, "w", format="webm") as out:
        v = out.add_stream("libvpx-vp9", rate=30, options={"deadline": "realtime", "cpu-used": "8"})
        v.width, v.height, v.pix_fmt = 160, 120, "yuv420p"
        for i in range(60):
            frame = av.VideoFrame.from_image(Image.new("RGB", (160, 120), (i * 4, 0, 0)))
            frame.pts, frame.time_base = i, Fraction(1, 30)
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
    data = bytes(pipe.data)
    with av.open(io.BytesIO(data), format="matroska") as check:
        assert not check.duration and all(not s.duration for s in check.streams)  # really nothing declared
    return data


async def probe(tmp_path: Path, data: bytes, ext: str = "mp4", *, profile: str = "video_response", **video):
    settings = load_settings(env={}, data_dir=str(tmp_path / "data"), secret_key="x", plugins={"video": video})
    ctx = await make_context(data, kind="video", profile=profile, settings=settings, extension=ext)
    return (await ProbeProcessor().run(ctx)).metadata["probe"]


async def test_a_truncated_mp4_fails_the_probe_by_default(tmp_path, clips):
    with pytest.raises(PermanentProcessingError, match=TRUNCATED) as raised:
        await probe(tmp_path, clips["cut"])
    assert raised.value.code == "truncated_media"


async def test_flag_keeps_a_truncated_mp4_as_partial_with_the_duration_that_can_be_read(tmp_path, clips):
    info = await probe(tmp_path, clips["cut"], truncated="flag")
    assert info["partial"] is True
    assert info["declared_duration"] == 2.0
    assert 0.5 < info["duration"] < 1.0  # what a player gets, not the header's 2 s


async def test_the_policy_can_be_set_per_profile(tmp_path, clips):
    lenient = {"truncated_by_profile": {"video_response": "flag"}}
    assert (await probe(tmp_path, clips["cut"], **lenient))["partial"] is True
    with pytest.raises(PermanentProcessingError, match=TRUNCATED):
        await probe(tmp_path, clips["cut"], profile="other", **lenient)


@pytest.mark.parametrize("policy", ["fail", "flag"])
async def test_intact_files_pass_on_both_settings(tmp_path, clips, policy):
    info = await probe(tmp_path, clips["whole"], truncated=policy)
    assert info["partial"] is False and "declared_duration" not in info
    assert abs(info["duration"] - 2.0) < 0.05
    info = await probe(tmp_path, clips["live_webm"], "webm", truncated=policy)  # nothing declared: nothing to miss
    assert info["partial"] is False and abs(info["duration"] - 2.0) < 0.1


def test_a_bad_policy_fails_start_up_naming_the_setting(tmp_path):
    settings = load_settings(env={}, data_dir=str(tmp_path), secret_key="x",
                             plugins={"video": {"truncated": "ok"}})
    with pytest.raises(ConfigurationError, match=r"plugins\.video.*truncated"):
        PluginHost(settings).plugin_settings  # noqa: B018


# --- end to end: upload through the API, the worker runs the profile ------------------------------------------


async def outbox(event_type: str, asset_id: uuid.UUID) -> dict:
    """The event's data as written to the outbox with the asset's status (what every sink delivers)."""
    row = await Event.select(Event.payload).where(
        Event.type == event_type, Event.payload.arrow("asset_id") == f'"{asset_id}"'
    ).output(load_json=True).first()
    assert row is not None, f"no {event_type} event for {asset_id}"
    return row["payload"]


async def test_through_the_service_a_cut_upload_fails_or_is_flagged_partial(make_settings, clips):
    profile = {"kind": "video", "formats": ["mp4"], "max_bytes": 10_000_000, "bucket": "clips"}
    settings = make_settings(**{
        "run_worker_in_app": True,
        "queue.name": f"trunc-{uuid.uuid4().hex[:8]}",
        "profiles": {"strict": {**profile, "steps": ["probe", "mp4"]},
                     "lenient": {**profile, "steps": ["probe", "mp4"]}},
        "plugins": {"video": {"truncated_by_profile": {"lenient": "flag"}}},
    })
    async with running_app(settings) as app:
        strict = await app.upload(clips["cut"], profile="strict", file_name="answer.mp4")
        lenient = await app.upload(clips["cut"], profile="lenient", file_name="answer.mp4")
        intact = await app.upload(clips["whole"], profile="strict", file_name="answer.mp4")

        failed = await app.wait_for_asset(strict)
        assert failed["status"] == "failed"
        steps = {s["step"]: s for s in failed["steps"]}
        assert steps["probe"]["status"] == "failed" and steps["probe"]["attempts"] == 1  # never retried
        assert steps["mp4"]["status"] == "skipped"  # nothing transcoded from a fragment
        assert (await outbox("media.processing_failed", strict))["error"] == failed["error"]
        assert failed["error"].startswith("probe: the file is truncated: 0.")

        kept = await app.wait_for_asset(lenient)
        assert kept["status"] == "ready", kept["error"]
        assert kept["metadata"]["probe"]["partial"] is True
        assert kept["metadata"]["probe"]["declared_duration"] == 2.0
        mp4 = next(r for r in kept["renditions"] if r["kind"] == "mp4")
        assert mp4["duration_seconds"] < 1.0  # the rendition is as long as what could be read
        assert (await outbox("media.processed", lenient))["partial"] is True

        whole = await app.wait_for_asset(intact)
        assert whole["status"] == "ready", whole["error"]
        assert whole["metadata"]["probe"]["partial"] is False
        assert (await outbox("media.processed", intact))["partial"] is False
        assert await ProcessingJob.count().where(ProcessingJob.asset == strict,
                                                 ProcessingJob.status == "failed") == 1
