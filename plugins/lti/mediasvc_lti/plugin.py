"""Hook implementations of mediasvc-lti."""

from server.hookspecs import hookimpl  # noqa: F401
