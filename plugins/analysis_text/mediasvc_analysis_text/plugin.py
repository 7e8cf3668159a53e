"""Entry point ``analysis_text = "mediasvc_analysis_text.plugin"``: the ``text`` analyzer."""

from __future__ import annotations

from mediasvc.plugin import hookimpl

from mediasvc_analysis_text.analyzer import TextAnalyzer


@hookimpl
def register_analyzers(settings):
    threads = int((settings.plugins.get("analysis") or {}).get("threads", 1))
    return [TextAnalyzer(threads=threads)]
