"""Hook implementations of mediasvc-analysis."""

from server.hookspecs import hookimpl  # noqa: F401
