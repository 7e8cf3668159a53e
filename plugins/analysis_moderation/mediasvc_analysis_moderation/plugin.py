"""Entry point ``analysis_moderation = "mediasvc_analysis_moderation.plugin"``: the ``moderation`` analyzer."""

from __future__ import annotations

from mediasvc.plugin import hookimpl

from mediasvc_analysis_moderation.analyzer import ModerationAnalyzer


@hookimpl
def register_analyzers(settings):
    threads = int((settings.plugins.get("analysis") or {}).get("threads", 1))
    return [ModerationAnalyzer(threads=threads)]
