"""Hook implementations of mediasvc-fasterwhisper."""

from server.hookspecs import hookimpl  # noqa: F401
