"""mediasvc core: the Litestar app, hook specs, tables, auth, events and the dashboard shell."""

__version__ = "0.1.0"
