"""Hook implementations of mediasvc-analysis-labels."""

from server.hookspecs import hookimpl  # noqa: F401
