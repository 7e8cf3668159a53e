"""Hook implementations of mediasvc-whispercpp."""

from server.hookspecs import hookimpl  # noqa: F401
