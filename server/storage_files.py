"""Stored objects as local files, for code that needs a path (FFmpeg, whisper.cpp): the local backend's own file,
else a streamed download into a folder the caller owns."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from mediasvc.errors import MediaServiceError


async def local_file(storage: Any, key: str, directory: Path, name: str) -> Path:
    """The object at ``key`` as a local file: the stored file itself on the local backend, else ``directory/name``
    downloaded from the object store."""
    with contextlib.suppress(MediaServiceError):
        local = storage.local_path(key)
        if local is not None and Path(local).is_file():
            return Path(local)
    target = directory / name
    handle = await asyncio.to_thread(open, target, "wb")
    try:
        async for data in storage.get_stream(key):
            await asyncio.to_thread(handle.write, data)
    finally:
        handle.close()
    return target
