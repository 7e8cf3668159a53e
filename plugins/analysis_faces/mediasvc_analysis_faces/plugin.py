"""Hook implementations of mediasvc-analysis-faces."""

from server.hookspecs import hookimpl  # noqa: F401
