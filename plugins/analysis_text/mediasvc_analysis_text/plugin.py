"""Hook implementations of mediasvc-analysis-text."""

from server.hookspecs import hookimpl  # noqa: F401
