"""Blocking file work for tus uploads (open at an offset, fsync, read, hash, concatenate, remove), run on a thread
pool of its own so it never queues behind whatever else uses the event loop's default executor."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mediasvc.errors import MediaServiceError

READ_CHUNK = 1024 * 1024

# Blocking file work (writes, fsync, hashing) runs on threads of its own, never queued behind whatever else
# uses the event loop's default executor.
IO_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="mediasvc-tus-io")


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(IO_POOL, functools.partial(fn, *args, **kwargs))


class StorageInconsistent(MediaServiceError):
    status_code, code = 500, "internal_error"


def open_at(path: Path, offset: int) -> int:
    """Open the upload's file for writing at ``offset``, cutting off bytes past it (never committed)."""
    created = not path.exists()
    if created:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o640)
    try:
        size = os.fstat(fd).st_size
        if size < offset:
            raise StorageInconsistent(f"the stored file holds {size} bytes, fewer than the offset {offset}",
                                      details={"stored": size, "offset": offset})
        if size > offset:
            os.ftruncate(fd, offset)
        if created:
            fsync_dir(path.parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        dir_fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_head_of_file(path: Path, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(size)
    except FileNotFoundError:  # an empty upload never created its file
        return b""


def hash_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def concat_files(target: Path, sources: list[Path]) -> Any:
    target.parent.mkdir(parents=True, exist_ok=True)
    sha = hashlib.sha256()
    with open(target, "wb") as out:
        for source in sources:
            with open(source, "rb") as f:
                while block := f.read(READ_CHUNK):
                    sha.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    fsync_dir(target.parent)
    return sha


def remove_file(path: Path, root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    parent = path.parent
    while parent != root and parent.is_relative_to(root):  # drop directories the upload left empty
        try:
            parent.rmdir()
        except OSError:
            break
        parent = parent.parent


async def file_chunks(path: Path) -> AsyncIterator[bytes]:
    f = await in_thread(open, path, "rb")
    try:
        while block := await in_thread(f.read, READ_CHUNK):
            yield block
    finally:
        f.close()


async def update_hash(hasher: Any, chunk: bytes) -> None:
    if len(chunk) >= 256 * 1024:
        await in_thread(hasher.update, chunk)
    else:
        hasher.update(chunk)
