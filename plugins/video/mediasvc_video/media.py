"""What every processor here shares: a safe local input, error classification, output keys and uploads.

The original is opened from a LOCAL file only (streamed to a temp file first when the backend is an object
store), through ``probe_local.open_local``: ``protocol_whitelist=file`` and a demuxer chosen from the
sniffed content out of an allow-list, so a playlist or anything else disguised as media never makes FFmpeg
read another file or fetch a URL. Broken, disguised or undecodable input raises ``PermanentProcessingError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import av

from mediasvc_video.probe_local import UnsafeInput, open_local
from mediasvc.plugin import ObjectInfo, PermanentProcessingError

T = TypeVar("T")
CHUNK = 1 << 20


class Cancelled(Exception):
    """The step was cancelled (timeout): the worker thread stops at its next progress report."""


def is_input_error(exc: BaseException) -> bool:
    """FFmpeg errors that mean the data is bad (not I/O or memory trouble on our side)."""
    if isinstance(exc, (UnsafeInput, PermanentProcessingError)):
        return True
    if isinstance(exc, av.FFmpegError):
        return not isinstance(exc, (OSError, MemoryError))
    return False


@contextlib.contextmanager
def open_media(path: Path) -> Iterator[Any]:
    """Open ``path`` safely for reading; bad input becomes ``PermanentProcessingError``."""
    if path.stat().st_size == 0:
        raise PermanentProcessingError("the file is empty")
    try:
        container = open_local(path)
    except UnsafeInput as exc:
        raise PermanentProcessingError(f"not a supported audio/video file: {exc}") from exc
    except Exception as exc:
        if is_input_error(exc):
            raise PermanentProcessingError(f"cannot read the media: {exc}") from exc
        raise
    try:
        yield container
    except Exception as exc:
        if is_input_error(exc) and not isinstance(exc, PermanentProcessingError):
            raise PermanentProcessingError(f"cannot decode the media: {exc}") from exc
        raise
    finally:
        container.close()


@contextlib.asynccontextmanager
async def local_input(ctx: Any) -> AsyncIterator[Path]:
    """The original as a local file: the backend's own path, or a temp copy streamed from the object store."""
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
    handle = tempfile.NamedTemporaryFile(prefix="mediasvc-in-", suffix=suffix, delete=False)  # noqa: SIM115
    try:
        with handle:
            async for chunk in ctx.storage.get_stream(key):
                await asyncio.to_thread(handle.write, chunk)
        yield Path(handle.name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(handle.name)


@contextlib.contextmanager
def temp_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mediasvc-out-"))
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

    When the step is cancelled (its timeout), the thread's next ``report`` raises ``Cancelled``."""
    latest: list[float] = []
    stop = threading.Event()

    def report(percent: float) -> None:
        if stop.is_set():
            raise Cancelled("processing was cancelled")
        latest.append(percent)

    async def forward() -> None:
        sent = None
        while True:
            await asyncio.sleep(0.25)
            if latest and latest[-1] != sent:
                sent = latest[-1]
                await ctx.progress(sent)

    forwarder = asyncio.create_task(forward())
    try:
        return await asyncio.to_thread(fn, report)
    finally:
        stop.set()
        forwarder.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarder
