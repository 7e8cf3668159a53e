"""mediasvc-sample: two processors and an asset panel, written only against ``mediasvc.plugin``.

The result of the tutorial in docs/plugins.md (a test keeps the two identical).
"""

from __future__ import annotations

from typing import Any

from mediasvc.plugin import Panel, hookimpl

from mediasvc_sample.processors import ChecksumProcessor, WaveformProcessor


@hookimpl
def register_processors(settings):
    return [ChecksumProcessor(), WaveformProcessor()]


@hookimpl
def asset_panels(request, asset: dict[str, Any]) -> list[Panel]:
    metadata = asset.get("metadata")
    found = {key: metadata[key] for key in ("sample_checksum", "sample_waveform")
             if isinstance(metadata, dict) and key in metadata}
    if not found:
        return []
    return [Panel(title="Sample plugin", template="mediasvc_sample/panel.html", context=found)]
