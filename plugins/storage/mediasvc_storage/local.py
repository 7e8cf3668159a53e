"""Backends without their own URL signing: a local directory and process memory.

Their presigned URLs point at the core's ``/media/serve/{key}``, signed with ``mediasvc.plugin.sign_path``.
"""

from __future__ import annotations

import asyncio
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from obstore.store import LocalStore, MemoryStore

from mediasvc_storage.base import ObstoreBackend, check_presign_args
from mediasvc.plugin import BadRequest, ConfigurationError, ServiceUnavailable, sign_path

if TYPE_CHECKING:
    from mediasvc.plugin import Settings

SERVE_PREFIX = "/media/serve/"
_STAGING_NAME = re.compile(r"#\d+$")  # LocalStore keeps multipart uploads in "<name>#<n>" files


def serve_url(settings: Settings, key: str, method: str, expires_in: int) -> str:
    """A URL for ``/media/serve/{key}`` signed with the service's secret key."""
    method = check_presign_args(key, method, expires_in)
    if not settings.secret_key:
        raise ConfigurationError("MEDIASVC_SECRET_KEY is required to presign local storage URLs")
    # The signature covers the plain path (what the server sees decoded); the URL carries it percent-encoded.
    signed = sign_path(settings.secret_key, f"{SERVE_PREFIX}{key}", method=method, expires_in=expires_in)
    query = signed.rpartition("?")[2]
    return f"{settings.public_base_url}{SERVE_PREFIX}{quote(key, safe='/')}?{query}"


class LocalBackend(ObstoreBackend):
    """Files under ``settings.storage.root`` (default ``<data_dir>/storage``), created on first use."""

    name = "local"
    supports_attributes = False  # the DB keeps content types

    def __init__(self, root: Path, settings: Settings) -> None:
        super().__init__(None, settings)
        self.root = root

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalBackend:
        configured = settings.storage.root or str(Path(settings.data_dir) / "storage")
        try:
            root = Path(configured).expanduser().resolve()
        except (OSError, RuntimeError) as exc:
            raise ConfigurationError(f"MEDIASVC_STORAGE__ROOT: unusable path {configured!r}: {exc}") from exc
        if root.exists() and not root.is_dir():
            raise ConfigurationError(f"MEDIASVC_STORAGE__ROOT: {str(root)!r} exists and is not a directory")
        return cls(root, settings)

    @property
    def store(self) -> Any:
        if self._store is None:  # LocalStore needs the directory to exist
            self._store = LocalStore(self.root, mkdir=True, automatic_cleanup=True)
        return self._store

    def validate_key(self, key: str) -> str:
        key = super().validate_key(key)
        if any(_STAGING_NAME.search(segment) for segment in key.split("/")):
            raise BadRequest("storage key segments must not end in '#<digits>'", details={"key": key})
        return key

    def local_path(self, key: str) -> Path:
        """The file that holds (or would hold) ``key``; refuses anything that resolves outside the root."""
        key = self.validate_key(key)
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise BadRequest("storage key escapes the storage root", details={"key": key})
        return path

    async def presign(
        self, key: str, *, method: str = "GET", expires_in: int = 900, content_type: str | None = None
    ) -> str:
        return serve_url(self.settings, key, method, expires_in)

    async def check(self) -> None:
        """The root exists (created if needed) and a file can be written in it."""
        try:
            await asyncio.to_thread(_probe_writable, self.root)
        except OSError as exc:
            raise ServiceUnavailable(f"local storage root {str(self.root)!r} is not writable: {exc}") from exc


class MemoryBackend(ObstoreBackend):
    """Objects in process memory; for tests and throwaway dev runs."""

    name = "memory"

    @classmethod
    def from_settings(cls, settings: Settings) -> MemoryBackend:
        return cls(MemoryStore(), settings)

    async def presign(
        self, key: str, *, method: str = "GET", expires_in: int = 900, content_type: str | None = None
    ) -> str:
        return serve_url(self.settings, key, method, expires_in)

    async def check(self) -> None:
        """Memory is always reachable."""


def _probe_writable(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=root, prefix=".mediasvc-check-"):
        pass
