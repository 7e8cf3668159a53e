"""HLS playlist rewriting: only the URI lines and ``URI="…"`` attributes change; everything else passes through.

Relative URIs keep working through the token path (the token is a path segment), so the proxy rewrites only when
segment bytes should come from elsewhere: presigned object-store URLs or a CDN base URL.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from posixpath import dirname, join, normpath

_URI_ATTR = re.compile(r'URI="([^"]*)"')
SEGMENT_SUFFIXES = (".ts", ".m4s", ".mp4", ".aac", ".vtt", ".webvtt")


def is_absolute(uri: str) -> bool:
    return "://" in uri or uri.startswith("/")


def resolve(playlist_key: str, uri: str) -> str | None:
    """The storage key a relative URI in ``playlist_key`` points to; None if it leaves the playlist's tree."""
    if is_absolute(uri):
        return None
    key = normpath(join(dirname(playlist_key), uri.split("?", 1)[0]))
    return None if key.startswith("..") else key


async def rewrite_segments(text: str, playlist_key: str, url_for: Callable[[str], Awaitable[str]]) -> str:
    """Replace each relative segment URI (not nested playlists) with ``await url_for(storage_key)``."""
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            out.append(await _rewritten(stripped, playlist_key, url_for))
        elif stripped.startswith("#") and 'URI="' in stripped:
            parts, last = [], 0
            for match in _URI_ATTR.finditer(stripped):
                parts.append(stripped[last:match.start(1)])
                parts.append(await _rewritten(match.group(1), playlist_key, url_for))
                last = match.end(1)
            out.append("".join(parts) + stripped[last:])
        else:
            out.append(line)
    return "\n".join(out) + "\n"


async def _rewritten(uri: str, playlist_key: str, url_for: Callable[[str], Awaitable[str]]) -> str:
    if not uri.lower().split("?", 1)[0].endswith(SEGMENT_SUFFIXES):
        return uri  # a nested playlist: it stays behind the token
    key = resolve(playlist_key, uri)
    return await url_for(key) if key else uri
