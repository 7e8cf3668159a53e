"""The tus-specific statuses, in the same JSON error envelope as every other error (see server/errors.py)."""

from __future__ import annotations

from server.errors import MediaServiceError


class PreconditionFailed(MediaServiceError):
    """412: the request's ``Tus-Resumable`` is missing or names a version this server does not speak."""

    status_code, code = 412, "precondition_failed"


class Gone(MediaServiceError):
    """410: the upload existed but was terminated, expired or failed; its bytes are gone."""

    status_code, code = 410, "gone"


class Locked(MediaServiceError):
    """423: another request (on this or another instance) is writing to the same upload right now."""

    status_code, code = 423, "locked"


class ChecksumMismatch(MediaServiceError):
    """460 (tus checksum extension): the chunk's ``Upload-Checksum`` did not match; it was discarded."""

    status_code, code = 460, "checksum_mismatch"
