"""Hook implementations of mediasvc-analysis-moderation."""

from server.hookspecs import hookimpl  # noqa: F401
