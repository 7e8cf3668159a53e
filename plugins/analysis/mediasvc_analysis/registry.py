"""The analyzers this process uses, per settings object.

The API and the batch job are handed the app's or worker's ``PluginHost`` and use ``host.analyzers``; the
``analyze`` step only gets a ``ProcessorContext`` (no host), so it looks the same instances up by its settings
object, and builds them from the plugin manager (entry points, blocked plugins honoured) when no host has been
seen in this process — a model is then still loaded once per process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from mediasvc.contracts import Analyzer

_known: dict[int, tuple[Any, Mapping[str, Analyzer]]] = {}
_lock = threading.Lock()


def remember(settings: Any, analyzers: Mapping[str, Analyzer]) -> Mapping[str, Analyzer]:
    """Register the analyzers for ``settings``; the first registered set stays (one set of models per process)."""
    with _lock:
        entry = _known.get(id(settings))
        if entry is not None and entry[0] is settings:
            return entry[1]
        _known[id(settings)] = (settings, analyzers)
    return analyzers


def analyzers_for(settings: Any) -> Mapping[str, Analyzer]:
    with _lock:
        entry = _known.get(id(settings))
    if entry is not None and entry[0] is settings:
        return entry[1]
    from mediasvc.plugins import _flatten, _unique, build_plugin_manager

    pm = build_plugin_manager(settings)
    return remember(settings, _unique("analyzer", _flatten(pm.hook.register_analyzers(settings=settings))))


def forget(settings: Any) -> None:
    """Drop the set registered for ``settings`` (the app stopped; its models can be freed)."""
    with _lock:
        entry = _known.get(id(settings))
        if entry is not None and entry[0] is settings:
            del _known[id(settings)]
