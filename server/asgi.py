"""ASGI entry for Granian (factory mode): `granian --interface asgi --factory server.asgi:app`."""

from litestar import Litestar

from mediasvc.app import create_app


def app() -> Litestar:
    # Settings are read here, in each worker process, from MEDIASVC_* and the TOML file.
    return create_app()
