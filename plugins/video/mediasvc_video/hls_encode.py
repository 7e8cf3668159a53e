"""The ``hls`` ladder's encoder: the source is demuxed and decoded ONCE per call, and each rung is scaled, encoded
and muxed on a thread of its own, fed from the decode through a short queue.

PyAV releases the GIL while it scales (``sws_scale``) and encodes (``avcodec_send_frame``/``receive_packet``), so
the rungs run side by side instead of one after another in the decoding thread: the decode never waits for one
rung's scaling while another rung's x264 threads sit idle. Each thread owns everything it touches (its scaler,
encoders and muxer); the decoded frames they share are only read. Audio is resampled per rung in the decoding
thread (encoding rebases a frame's timestamps, so frames are never shared between encoders).

Keyframes line up across rungs: every encoder gets ``pict_type = I`` on the same frames (every 4 s of source
pts), GOP = fps*4 and ``scenecut=0``, and the source's own I-frames are cleared. Each rung is muxed by FFmpeg's
``hls`` muxer into ~4 s MPEG-TS segments under ``out_dir/{rung}/``.
"""

from __future__ import annotations

import math
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
from av.video.frame import PictureType
from av.video.reformatter import VideoReformatter

from mediasvc_video.hls_ladder import Rung, plan_ladder
from mediasvc_video.media import decoded_frames, open_media
from mediasvc_video.probe import VideoInput
from mediasvc.plugin import PermanentProcessingError

AUDIO_BITRATE = 128_000
SEGMENT_SECONDS = 4
QUEUE_FRAMES = 8  # decoded frames waiting per rung: bounds memory (8 x 3 MB at 1080p) and keeps rungs in step


class _RungOut:
    """One rung's encoder(s) and hls muxer."""

    def __init__(self, rung: Rung, folder: Path, rate: Fraction, time_base: Fraction, preset: str,
                 audio: dict[str, Any] | None) -> None:
        self.rung = rung
        folder.mkdir(parents=True, exist_ok=True)
        self.container = av.open(
            str(folder / "index.m3u8"), "w", format="hls",
            options={"hls_time": str(SEGMENT_SECONDS), "hls_playlist_type": "vod", "hls_list_size": "0",
                     "hls_segment_type": "mpegts", "hls_flags": "independent_segments",
                     "hls_segment_filename": str(folder / "seg_%03d.ts")})
        gop = max(1, math.ceil(float(rate) * SEGMENT_SECONDS - 1e-6))  # >= 4 s: only the forced ones cut
        self.video = self.container.add_stream("libx264", rate=rate, options={
            "preset": preset, "profile": "high", "g": str(gop), "keyint_min": str(gop),
            "sc_threshold": "0", "x264-params": "scenecut=0:open-gop=0",
            "maxrate": str(int(rung.bitrate * 1.07)), "bufsize": str(int(rung.bitrate * 1.5)),
        })
        self.video.width, self.video.height, self.video.pix_fmt = rung.width, rung.height, "yuv420p"
        self.video.bit_rate = rung.bitrate
        self.video.thread_type = "AUTO"
        self.video.codec_context.time_base = time_base
        self.audio = None
        if audio is not None:
            self.audio = self.container.add_stream("aac", rate=audio["rate"])
            self.audio.layout = audio["layout"]
            self.audio.bit_rate = AUDIO_BITRATE


class RungWorker:
    """A rung's thread: takes decoded frames from its queue, scales, encodes and muxes them. A failure is kept and
    re-raised in the decoding thread at its next ``put`` (the thread keeps draining its queue meanwhile, so the
    decoding thread never blocks on a dead rung)."""

    def __init__(self, out: _RungOut, rotation: int, audio: dict[str, Any] | None) -> None:
        self.out = out
        self.rotation = rotation
        self.scaler = VideoReformatter()
        self.resampler = (av.AudioResampler(format="fltp", layout=audio["layout"], rate=audio["rate"])
                          if audio is not None and out.audio is not None else None)
        self.samples = 0
        self.error: BaseException | None = None
        self.stopping = False
        self.queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(maxsize=QUEUE_FRAMES)
        self.thread = threading.Thread(target=self._run, name=f"hls-{out.rung.name}", daemon=True)
        self.thread.start()

    def put_video(self, frame: Any, pts: int, time_base: Fraction, kind: Any) -> None:
        self._put(("v", frame, pts, time_base, kind))

    def put_audio(self, frame: Any | None) -> None:
        """A decoded audio frame (None: flush), resampled here with this rung's own resampler."""
        if self.resampler is None:
            return
        for f in self.resampler.resample(frame):  # sample-count timestamps from zero, like the video's
            f.pts, f.time_base = self.samples, Fraction(1, f.sample_rate)
            self.samples += f.samples
            self._put(("a", f))

    def finish(self) -> None:
        """Flush and close the rung; raises what went wrong in its thread."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def abort(self) -> None:
        """Stop without flushing (another rung failed, or the step was cancelled)."""
        self.stopping = True
        self.queue.put(None)
        self.thread.join()

    def _put(self, item: tuple[Any, ...]) -> None:
        if self.error is not None:
            raise self.error
        self.queue.put(item)

    def _scaled(self, frame: Any) -> Any:
        rung = self.out.rung
        if not self.rotation:
            return self.scaler.reformat(frame, width=rung.width, height=rung.height, format="yuv420p")
        # scale first (unrotated), then turn the small picture by the display rotation (counter-clockwise)
        pre_w, pre_h = (rung.height, rung.width) if self.rotation in (90, 270) else (rung.width, rung.height)
        image = self.scaler.reformat(frame, width=pre_w, height=pre_h, format="rgb24").to_image()
        return av.VideoFrame.from_image(image.rotate(self.rotation, expand=True)).reformat(format="yuv420p")

    def _run(self) -> None:
        out = self.out
        try:
            while (item := self.queue.get()) is not None:
                if self.error is not None or self.stopping:
                    continue  # drain: the decoding thread must never block on a full queue
                try:
                    if item[0] == "v":
                        _, frame, pts, time_base, kind = item
                        scaled = self._scaled(frame)
                        scaled.pts, scaled.time_base, scaled.pict_type = pts, time_base, kind
                        out.container.mux(out.video.encode(scaled))
                    elif out.audio is not None:
                        out.container.mux(out.audio.encode(item[1]))
                except BaseException as exc:  # noqa: BLE001 - handed to the decoding thread
                    self.error = exc
            if self.error is None and not self.stopping:
                out.container.mux(out.video.encode(None))
                if out.audio is not None:
                    out.container.mux(out.audio.encode(None))
        except BaseException as exc:  # noqa: BLE001 - handed to the decoding thread
            self.error = exc
        finally:
            try:
                out.container.close()
            except BaseException as exc:  # noqa: BLE001
                self.error = self.error or exc


def transcode_ladder(path: Path, out_dir: Path, preset: str, report: Any, part: str = "all") -> dict[str, Any]:
    """Decode ``path`` once and write rungs of the ladder's plan under ``out_dir/{rung}/``, each on its own thread:
    ``part`` "all", "first" (the lowest rung alone) or "rest" (all but the lowest). Returns the plan, the rungs
    written and stats; ``report(percent)`` gets 0-100 of this pass."""
    with open_media(path) as src:
        source = VideoInput(src)
        vin, ain, duration, rotation = source.video, source.audio, source.duration, source.rotation
        plan = plan_ladder(source.shown_width, source.shown_height)
        rungs = {"all": plan, "first": plan[:1], "rest": plan[1:]}[part]
        rate = vin.average_rate or vin.guessed_rate or Fraction(30)
        rate = Fraction(rate).limit_denominator(1001)
        time_base = vin.time_base or Fraction(1, 90000)

        audio_spec = None
        if ain is not None:
            channels = min(2, ain.codec_context.channels or 2)
            audio_spec = {"rate": ain.codec_context.sample_rate or 48000,
                          "layout": "stereo" if channels == 2 else "mono"}

        workers: list[RungWorker] = []
        finished = False
        try:
            for r in rungs:
                workers.append(RungWorker(_RungOut(r, out_dir / r.name, rate, time_base, preset, audio_spec),
                                          rotation, audio_spec))
            frames = 0
            next_key = 0.0  # seconds of (zero-based) pts at which every rung gets a forced keyframe
            for frame, pts in decoded_frames(src, vin, ain):
                if pts is None:
                    for w in workers:
                        w.put_audio(frame)
                    continue
                seconds = float(pts * time_base)
                force = seconds + 1e-6 >= next_key
                if force:
                    while next_key <= seconds + 1e-6:
                        next_key += SEGMENT_SECONDS
                kind = PictureType.I if force else PictureType.NONE
                for w in workers:
                    w.put_video(frame, pts, time_base, kind)
                frames += 1
                if duration:
                    report(min(100.0, 100.0 * seconds / duration))
            if frames == 0:
                raise PermanentProcessingError("no video frame could be decoded")
            for w in workers:
                w.put_audio(None)
            finished = True
            errors = []
            for w in workers:  # every rung is flushed and closed, even after one failed
                try:
                    w.finish()
                except BaseException as exc:  # noqa: BLE001 - the first one is raised below
                    errors.append(exc)
            if errors:
                raise errors[0]
        finally:
            if not finished:
                for w in workers:
                    w.abort()
    return {"plan": plan, "rungs": rungs, "frames": frames, "fps": float(rate), "has_audio": audio_spec is not None,
            "duration": duration}
