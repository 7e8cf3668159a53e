"""Hook implementations of mediasvc-zoom."""

from server.hookspecs import hookimpl  # noqa: F401
