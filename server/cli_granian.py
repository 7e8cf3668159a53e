"""Granian for `mediasvc serve`, with a drain period before it stops.

Granian alone, on SIGTERM, closes its listening socket at once (a load balancer sees connection refused) and then
stops its workers, each finishing its in-flight requests until ``workers_kill_timeout``. Here the first SIGTERM
only marks the instance draining (``/health`` answers 503 in every worker) and keeps serving for
``shutdown.drain_seconds``; then Granian's own shutdown runs, bounded by ``shutdown.timeout_seconds``.
SIGINT (Ctrl+C) and a second SIGTERM stop at once, as before.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import click
from granian import Granian  # only the CLI imports this module: Granian is the server, not a library of ours

from mediasvc.draining import DrainState
from mediasvc.settings import ShutdownSettings


class DrainingGranian(Granian):  # type: ignore[misc, valid-type]
    def __init__(self, *args: Any, drain: DrainState, shutdown: ShutdownSettings, **kwargs: Any) -> None:
        super().__init__(*args, workers_kill_timeout=shutdown.timeout_seconds, **kwargs)
        self.drain = drain
        self.drain_seconds = shutdown.drain_seconds
        self.stop_timeout = shutdown.timeout_seconds
        self._drain_timer: threading.Timer | None = None

    def signal_handler_interrupt(self, signum: int | None = None, *args: Any, **kwargs: Any) -> None:
        if signum == signal.SIGTERM and self._drain_timer is None and self.drain_seconds > 0:
            self.drain.start()
            click.echo(f"mediasvc: SIGTERM: draining for {self.drain_seconds:g}s (/health answers 503), then "
                       f"stopping; in-flight requests get up to {self.stop_timeout}s", err=True)
            self._drain_timer = threading.Timer(self.drain_seconds, self._stop)
            self._drain_timer.daemon = True
            self._drain_timer.start()
            return
        self._stop()

    def _stop(self) -> None:
        super().signal_handler_interrupt()
