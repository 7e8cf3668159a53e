"""The tus-only status (460, checksum extension); the others tus uses (410, 412, 423) are in server/errors.py."""

from __future__ import annotations

from mediasvc.errors import Gone, Locked, MediaServiceError, PreconditionFailed

__all__ = ["ChecksumMismatch", "Gone", "Locked", "PreconditionFailed"]


class ChecksumMismatch(MediaServiceError):
    """460 (tus checksum extension): the chunk's ``Upload-Checksum`` did not match; it was discarded."""

    status_code, code = 460, "checksum_mismatch"
