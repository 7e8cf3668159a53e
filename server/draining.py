"""Whether this API instance is draining (shutting down): ``/health`` then answers 503 ``draining``.

``mediasvc serve`` runs the app in Granian worker processes; on SIGTERM its main process creates a marker file
(its path reaches the workers in ``DRAIN_MARKER_ENV``), waits ``shutdown.drain_seconds`` so load balancers take
the instance out, and only then stops the workers. An app embedded in one process can call ``start()`` instead.
"""

from __future__ import annotations

import os
from pathlib import Path

# Not a MEDIASVC_ variable: it is wiring between `mediasvc serve` and its workers, not a setting.
DRAIN_MARKER_ENV = "_MEDIASVC_DRAIN_MARKER"


class DrainState:
    def __init__(self, marker: Path | None = None) -> None:
        self.marker = marker
        self._draining = False

    @classmethod
    def from_environment(cls) -> DrainState:
        marker = os.environ.get(DRAIN_MARKER_ENV)
        return cls(Path(marker) if marker else None)

    def start(self) -> None:
        self._draining = True
        if self.marker is not None:
            self.marker.touch()

    @property
    def draining(self) -> bool:
        if not self._draining and self.marker is not None and self.marker.exists():
            self._draining = True  # once draining, always draining: no more file checks
        return self._draining
