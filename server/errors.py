"""One error hierarchy and one mapper: the JSON envelope for the API, a toast for htmx, a page otherwise.

Plugins raise these, never framework HTTP exceptions. The envelope:
``{"error": {"code": "not_found", "message": "...", "details": {...}, "request_id": "..."}}``.
"""

from __future__ import annotations

import errno
import html
import logging
import uuid
from typing import Any

import asyncpg
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

try:  # the Redis queue's client (saq[redis]); absent when the queue runs on PostgreSQL only
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
except ImportError:  # pragma: no cover
    RedisConnectionError = RedisTimeoutError = ConnectionError  # type: ignore[misc,assignment]

log = logging.getLogger("mediasvc.errors")


class ConfigurationError(RuntimeError):
    """Settings or plugins that cannot work; raised at start-up with the culprit named."""


class PermanentProcessingError(Exception):
    """Input that can never succeed (corrupt, disguised, over a limit): the step fails once and is never retried."""


class MediaServiceError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.headers = headers or {}


class BadRequest(MediaServiceError):
    status_code, code = 400, "bad_request"


class Unauthorized(MediaServiceError):
    status_code, code = 401, "unauthorized"


class Forbidden(MediaServiceError):
    status_code, code = 403, "forbidden"


class NotFound(MediaServiceError):
    status_code, code = 404, "not_found"


class Conflict(MediaServiceError):
    status_code, code = 409, "conflict"


class Gone(MediaServiceError):
    """It existed (an upload, a token's target) but was terminated or expired."""

    status_code, code = 410, "gone"


class PreconditionFailed(MediaServiceError):
    """A required precondition header is missing or wrong (e.g. tus's ``Tus-Resumable``)."""

    status_code, code = 412, "precondition_failed"


class Locked(MediaServiceError):
    """Another request, on this or another instance, holds the resource right now."""

    status_code, code = 423, "locked"


class PayloadTooLarge(MediaServiceError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(MediaServiceError):
    status_code, code = 415, "unsupported_media_type"


class ValidationFailed(MediaServiceError):
    status_code, code = 422, "validation_failed"


class ServiceUnavailable(MediaServiceError):
    """Something the request needs is down for now (the database, the queue): the client should retry after
    ``Retry-After`` seconds."""

    status_code, code = 503, "service_unavailable"
    retry_after_seconds: int | None = 5

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None):
        super().__init__(message, details=details, headers=headers)
        if self.retry_after_seconds is not None:
            self.headers.setdefault("Retry-After", str(self.retry_after_seconds))


class ModelMissing(ServiceUnavailable):
    """A model is not prepared on this machine; the message names the command or package that provides it."""

    code = "model_missing"
    retry_after_seconds = None  # retrying does not help until an operator installs it


class InsufficientStorage(MediaServiceError):
    """The disk (or quota) that holds the data is full: nothing of the request was kept; retry once space is
    freed (an upload resumes from its offset)."""

    status_code, code = 507, "insufficient_storage"


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
    503: "service_unavailable",
    507: "insufficient_storage",
}

# A dependency that cannot be reached right now: the database (asyncpg: refused, reset, shut down, starting up,
# out of connections), the Redis queue, or any socket-level connection error. Answered 503 + Retry-After.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError, asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TooManyConnectionsError,
    RedisConnectionError, RedisTimeoutError, ConnectionError,
)
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def _dependency_error(exc: BaseException) -> MediaServiceError | None:
    """The 503 (a dependency down) or 507 (disk full) an unexpected error stands for, looking through its causes;
    None for anything else (a bug: 500)."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        if isinstance(seen, OSError) and seen.errno in _DISK_FULL:
            return InsufficientStorage("The storage that holds uploads is full; nothing of this request was kept. "
                                       "Retry when space is freed", details={"reason": "disk_full"})
        if isinstance(seen, _UNREACHABLE) or (isinstance(seen, asyncpg.InterfaceError) and "closed" in str(seen)):
            component = "database" if type(seen).__module__.startswith("asyncpg") else (
                "queue" if type(seen).__module__.startswith("redis") else "dependency")
            return ServiceUnavailable(f"The {component} is unavailable right now; retry shortly",
                                      details={"component": component, "reason": type(seen).__name__})
        seen = seen.__cause__ or seen.__context__
    return None


def error_body(code: str, message: str, details: dict[str, Any] | None, request_id: str | None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}, "request_id": request_id}}


def _describe(exc: Exception) -> tuple[int, str, str, dict[str, Any], dict[str, str]]:
    if isinstance(exc, MediaServiceError):
        return exc.status_code, exc.code, exc.message, exc.details, exc.headers
    if isinstance(exc, ValidationException):
        extra = exc.extra if isinstance(exc.extra, list) else []
        malformed = "malformed" in str(exc.detail).lower() or "decode" in str(exc.detail).lower()
        status = 400 if malformed else 422
        return status, _HTTP_CODES[status], str(exc.detail), {"errors": extra} if extra else {}, {}
    if isinstance(exc, HTTPException):
        status = exc.status_code
        code = _HTTP_CODES.get(status, "http_error" if status < 500 else "internal_error")
        headers = dict(exc.headers or {})
        return status, code, str(exc.detail), {}, headers
    mapped = _dependency_error(exc)
    if mapped is not None:
        return mapped.status_code, mapped.code, mapped.message, mapped.details, mapped.headers
    return 500, "internal_error", "Internal server error", {}, {}


def exception_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, code, message, details, headers = _describe(exc)
    request_id = getattr(request.state, "request_id", None)
    if request_id is None:  # unmatched routes (404/405) never reach route middleware: give them an id here
        request_id = uuid.uuid4().hex
        headers["X-Request-ID"] = request_id
    if status >= 500:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc,
                  extra={"request_id": request_id})
    if request.headers.get("hx-request") == "true":
        toast = f'<div class="toast toast-error" role="alert">{html.escape(message)}</div>'
        headers.update({"HX-Retarget": "#toasts", "HX-Reswap": "beforeend"})
        return Response(toast, status_code=status, media_type=MediaType.HTML, headers=headers)
    wants_html = "text/html" in request.headers.get("accept", "") and not request.url.path.startswith("/api/")
    if wants_html:
        page = (
            f"<!doctype html><title>{status} {html.escape(code)}</title><h1>{status}</h1>"
            f"<p>{html.escape(message)}</p><p><small>request {html.escape(request_id or '')}</small></p>"
        )
        return Response(page, status_code=status, media_type=MediaType.HTML, headers=headers)
    return Response(error_body(code, message, details, request_id), status_code=status, headers=headers,
                    media_type=MediaType.JSON)
