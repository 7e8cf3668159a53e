"""Hook implementations of mediasvc-transcription."""

from server.hookspecs import hookimpl  # noqa: F401
