"""Storage key rules for every backend: relative, '/'-separated, nothing that can escape or confuse a path."""

from __future__ import annotations

from mediasvc.plugin import BadRequest

MAX_KEY_LENGTH = 1024  # S3's limit, in UTF-8 bytes


def validate_key(key: str) -> str:
    """Return ``key`` unchanged when it is a usable storage key; raise ``BadRequest`` otherwise."""
    if not isinstance(key, str) or not key:
        raise BadRequest("storage key must be a non-empty string", details={"key": key})
    _check_path(key, what="key")
    return key


def validate_prefix(prefix: str) -> str:
    """Like ``validate_key`` but allows the empty prefix and a trailing '/'."""
    if not isinstance(prefix, str):
        raise BadRequest("storage prefix must be a string", details={"prefix": prefix})
    if prefix:
        _check_path(prefix.removesuffix("/"), what="prefix")
    return prefix


def _check_path(path: str, *, what: str) -> None:
    if len(path.encode()) > MAX_KEY_LENGTH:
        raise BadRequest(f"storage {what} is longer than {MAX_KEY_LENGTH} bytes", details={what: path[:80]})
    if path.startswith("/"):
        raise BadRequest(f"storage {what} must be relative (no leading '/')", details={what: path})
    if "\\" in path or any(ord(char) < 0x20 or char == "\x7f" for char in path):
        raise BadRequest(f"storage {what} contains a backslash or control character", details={what: path})
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise BadRequest(f"storage {what} has an empty, '.' or '..' segment", details={what: path})
