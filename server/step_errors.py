"""What a failed step tells the world: a stable code and readable text, never internals.

A step's error is stored in ``processing_jobs.error`` and ``assets.error`` and shown by the API, the dashboard and
the ``media.processing_failed`` event. Exceptions carry internals there: FFmpeg's messages name the original's
absolute storage path and an errno (``[Errno 1094995529] Invalid data …: '/srv/…/original.mp4'``), and an
unexpected exception can say anything. So:

- ``PermanentProcessingError``: the text was written by a plugin for people, and is shown as it is, scrubbed of
  absolute paths and errno text all the same. Its code is the exception's ``code`` class attribute when it has one
  (``truncated_media``, ``undecodable_media`` …), else ``invalid_input``.
- a timeout: ``timeout``, "timed out after N s".
- a stall (``mediasvc.step_watch``): ``stalled``, "no progress for N s".
- anything else: ``internal_error``, "internal error while processing (see the worker log, step …)".

``report_failure`` writes the whole exception, traceback and cause included, to the log under the step's id, so
an operator finds the detail from the id the client was shown.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from mediasvc.errors import PermanentProcessingError
from mediasvc.step_watch import StepStalled

log = logging.getLogger("mediasvc.processing")

INVALID_INPUT = "invalid_input"
TIMEOUT = "timeout"
INTERNAL_ERROR = "internal_error"
STALLED = "stalled"
MAX_MESSAGE = 300  # characters kept of a plugin's message

_CODE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_ERRNO = re.compile(r"\[(?:Errno|WinError) -?\d+\]\s*")
# an absolute POSIX path of two or more parts, not the tail of a URL or of a relative path ("a/b", "1/2")
_PATH = re.compile(r"(?<![\w.~:/\\-])/(?:[^\s/'\"<>|;,()\[\]{}]+/)+[^\s/'\"<>|;,()\[\]{}]*")


def scrub(text: str) -> str:
    """``text`` without errno markers, with an absolute path cut to its last part, on one line, capped."""
    text = _ERRNO.sub("", text)
    text = _PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1] or "…", text)
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def describe_failure(exc: BaseException, *, step_id: Any = None, seconds: float | None = None) -> tuple[str, str]:
    """``(code, message)`` for a step that failed with ``exc``; ``seconds`` is how long it ran (for a timeout)."""
    if isinstance(exc, PermanentProcessingError):
        code = getattr(exc, "code", None)
        code = code if isinstance(code, str) and _CODE.match(code) else INVALID_INPUT
        return code, scrub(str(exc)) or "the input cannot be processed"
    if isinstance(exc, StepStalled):  # the worker was alive but the step's progress stopped moving
        return STALLED, str(exc)
    if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError on Python 3.11
        return TIMEOUT, f"timed out after {seconds:.0f} s" if seconds is not None else "timed out"
    where = f", step {step_id}" if step_id is not None else ""
    return INTERNAL_ERROR, f"internal error while processing (see the worker log{where})"


def report_failure(exc: BaseException, *, step: str, step_id: Any, asset_id: Any,
                   seconds: float | None = None) -> tuple[str, str]:
    """``describe_failure``, after logging the whole exception (and its cause) with the step's id."""
    code, message = describe_failure(exc, step_id=step_id, seconds=seconds)
    level = logging.ERROR if code == INTERNAL_ERROR else logging.WARNING
    log.log(level, "step %s %s of asset %s failed [%s]: %s", step, step_id, asset_id, code, message, exc_info=exc)
    return code, message
