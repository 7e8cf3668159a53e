"""Signed, expiring URLs for stored objects, answered by ``/media/serve/{key}`` and ``/media/stream/{key}``
(``mediasvc.api.media``). A module of its own so that the API, delivery and plugins mint the same URLs without
importing one another."""

from __future__ import annotations

from typing import Any

from mediasvc.signing import sign_path


def serve_url(settings: Any, key: str, *, expires_in: int | None = None, stream: bool = False,
              download_name: str | None = None) -> str:
    """A signed, expiring URL for a stored key, on the public (CDN) base URL. ``download_name`` (signed too)
    makes the response an attachment with that file name."""
    path = f"/media/{'stream' if stream else 'serve'}/{key}"
    ttl = expires_in or settings.storage.signed_url_ttl_seconds
    params = {"dl": download_name} if download_name else None
    return settings.public_base_url + sign_path(settings.secret_key, path, expires_in=ttl, params=params)


def rendition_urls(settings: Any, renditions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each rendition row with a signed ``url`` (HLS playlists excepted: they play through a token)."""
    return [{**r, "url": None if r["kind"] == "hls" else serve_url(settings, r["storage_key"])} for r in renditions]
