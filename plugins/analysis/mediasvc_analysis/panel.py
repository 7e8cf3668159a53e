"""The asset page panel: the analysis summary the step or API merged into the asset's metadata."""

from __future__ import annotations

from typing import Any

from mediasvc.plugin import Panel


def asset_panel(asset: dict[str, Any]) -> list[Panel]:
    metadata = asset.get("metadata")
    summary = metadata.get("analysis") if isinstance(metadata, dict) else None
    if asset.get("kind") != "image" or not isinstance(summary, dict):
        return []
    return [Panel(title="Image analysis", template="analysis_panel.html", context={"analysis": summary}, order=50)]
