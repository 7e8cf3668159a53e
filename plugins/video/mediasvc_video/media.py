"""What every processor here shares: a safe local input, error classification, output keys and uploads.

The original is opened from a LOCAL file only (streamed into the step's scratch folder first when the backend
is an object store), through ``probe_local.open_local``: ``protocol_whitelist=file`` and a demuxer chosen from the
sniffed content out of an allow-list, so a playlist or anything else disguised as media never makes FFmpeg
read another file or fetch a URL. Broken, disguised or undecodable input raises ``PermanentProcessingError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import av
from av.video.frame import PictureType

from mediasvc_video.probe_local import UnsafeInput, open_local
from mediasvc.plugin import ObjectInfo, PermanentProcessingError, scratch_dir

T = TypeVar("T")
CHUNK = 1 << 20
PROGRESS_TIMEOUT = 10.0  # seconds one progress report (a row update, then the queue's) may take
FORWARDER_GRACE = 5.0  # seconds the step waits for its progress forwarder to stop
log = logging.getLogger("mediasvc.video")


class Cancelled(Exception):
    """The step was cancelled (timeout): the worker thread stops at its next progress report."""


def is_input_error(exc: BaseException) -> bool:
    """FFmpeg errors that mean the data is bad (not I/O or memory trouble on our side)."""
    if isinstance(exc, (UnsafeInput, PermanentProcessingError)):
        return True
    if isinstance(exc, av.FFmpegError):
        return not isinstance(exc, (OSError, MemoryError))
    return False


class UnsupportedMedia(PermanentProcessingError):
    """The content is not a format we open (a playlist, an image, anything disguised as media)."""

    code = "unsupported_media"


class UndecodableMedia(PermanentProcessingError):
    """FFmpeg found the data broken. The message is ours: FFmpeg's own names the file's absolute path and an
    errno (``[Errno 1094995529] Invalid data …: '/…/original.mp4'``); it stays in the log, as the cause."""

    code = "undecodable_media"


UNSUPPORTED = "not a supported audio/video file: the content is not MP4/MOV, WebM, Ogg, WAV or MP3"
UNDECODABLE = "the file cannot be decoded as audio or video (it is damaged, incomplete or not media)"


def decoded_frames(src: Any, vin: Any, ain: Any) -> Iterator[tuple[Any, int | None]]:
    """Every decoded frame of ``vin`` (and ``ain``) in demux order, as ``(frame, pts)``: video frames with no or
    a repeated timestamp are dropped, the others get ``pts`` from zero and lose the source's picture type (source
    I-frames must not force keyframes); audio frames come with ``pts`` None. The one decode loop of the encoders."""
    start = vin.start_time or 0
    last_pts = None
    for packet in src.demux([s for s in (vin, ain) if s is not None]):
        for frame in packet.decode():
            if packet.stream is not vin:
                yield frame, None
                continue
            if frame.pts is None or (last_pts is not None and frame.pts <= last_pts):
                continue
            last_pts = frame.pts
            frame.pict_type = PictureType.NONE
            yield frame, last_pts - start


@contextlib.contextmanager
def open_media(path: Path) -> Iterator[Any]:
    """Open ``path`` safely for reading; bad input becomes ``PermanentProcessingError`` with readable text of
    our own (never FFmpeg's message, which names the storage path): this is the plugin's error boundary."""
    if path.stat().st_size == 0:
        raise PermanentProcessingError("the file is empty")
    try:
        container = open_local(path)
    except UnsafeInput as exc:
        raise UnsupportedMedia(UNSUPPORTED) from exc
    except Exception as exc:
        if is_input_error(exc):
            raise UndecodableMedia(UNDECODABLE) from exc
        raise
    # drop a packet the demuxer could only read in part (the last one of a cut file): decoders reject it, and a
    # truncated file the probe kept as ``partial`` is then processed up to its last whole packet
    container.flags |= av.container.Flags.discard_corrupt.value
    try:
        yield container
    except Exception as exc:
        if is_input_error(exc) and not isinstance(exc, PermanentProcessingError):
            raise UndecodableMedia(UNDECODABLE) from exc
        raise
    finally:
        container.close()


@contextlib.asynccontextmanager
async def local_input(ctx: Any) -> AsyncIterator[Path]:
    """The original as a local file: the backend's own path, or a copy streamed from the object store into the
    step's scratch folder (under the data dir: a killed worker's copy is removed when a worker starts)."""
    key = ctx.asset["storage_key"]
    if (ctx.asset.get("metadata") or {}).get("original_deleted_at"):
        raise PermanentProcessingError("the original was deleted after its profile's retention period")
    path = ctx.storage.local_path(key)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"original {key!r} is missing")  # transient: storage may catch up
        yield path
        return
    suffix = Path(key).suffix if len(Path(key).suffix) <= 8 else ""
    handle = tempfile.NamedTemporaryFile(prefix="in-", suffix=suffix, delete=False,  # noqa: SIM115
                                         dir=scratch_dir(ctx))
    try:
        with handle:
            async for chunk in ctx.storage.get_stream(key):
                await asyncio.to_thread(handle.write, chunk)
        yield Path(handle.name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)


@contextlib.contextmanager
def temp_dir(ctx: Any) -> Iterator[Path]:
    """A folder for partial outputs, in the step's scratch folder; removed after."""
    path = Path(tempfile.mkdtemp(prefix="out-", dir=scratch_dir(ctx)))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def output_key(ctx: Any, relative: str) -> str:
    """A rendition's key next to the original: ``{tenant}/{kind}/{asset_id}/{relative}``."""
    return ctx.asset["storage_key"].rsplit("/", 1)[0] + "/" + relative.lstrip("/")


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    handle = await asyncio.to_thread(open, path, "rb")
    with handle:
        while chunk := await asyncio.to_thread(handle.read, CHUNK):
            yield chunk


async def upload(ctx: Any, key: str, path: Path, content_type: str) -> ObjectInfo:
    """Store a finished temp file under ``key`` (replacing what was there: a re-run never duplicates)."""
    return await ctx.storage.put(key, _file_chunks(path), content_type=content_type)


async def run_with_progress(ctx: Any, fn: Callable[[Callable[[float], None]], T]) -> T:
    """Run blocking ``fn(report)`` in a thread; ``report(percent)`` values reach ``ctx.progress`` from here.

    When the step is cancelled (its timeout), the thread's next ``report`` raises ``Cancelled``. The forwarder
    stops on its flag, each ``ctx.progress`` is bounded, and the forwarder is awaited for at most
    ``FORWARDER_GRACE`` seconds: a progress write that hangs (or swallows its cancellation) never wedges the step."""
    latest: list[float] = []
    stop = threading.Event()

    def report(percent: float) -> None:
        if stop.is_set():
            raise Cancelled("processing was cancelled")
        latest.append(percent)

    async def forward() -> None:
        sent = None
        while not stop.is_set():
            await asyncio.sleep(0.25)
            if latest and latest[-1] != sent and not stop.is_set():
                sent = latest[-1]
                try:
                    await asyncio.wait_for(ctx.progress(sent), PROGRESS_TIMEOUT)
                except Exception as exc:  # noqa: BLE001 - a lost progress report must not fail the step
                    log.warning("progress report of %s%% failed: %r", sent, exc)

    forwarder = asyncio.create_task(forward())
    try:
        return await asyncio.to_thread(fn, report)
    finally:
        stop.set()
        forwarder.cancel()
        # bounded: a forwarder stuck in a progress write that swallowed its cancellation is left behind (its
        # loop ends on the flag) rather than awaited forever
        done, _ = await asyncio.wait({forwarder}, timeout=FORWARDER_GRACE)
        if not done:
            log.warning("the progress forwarder did not stop within %ss; leaving it", FORWARDER_GRACE)
        elif not forwarder.cancelled() and forwarder.exception() is not None:
            log.warning("the progress forwarder failed: %r", forwarder.exception())
