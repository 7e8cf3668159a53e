"""Entry point ``analysis_faces = "mediasvc_analysis_faces.plugin"``: the ``faces`` analyzer."""

from __future__ import annotations

from mediasvc.plugin import hookimpl

from mediasvc_analysis_faces.analyzer import FacesAnalyzer


@hookimpl
def register_analyzers(settings):
    threads = int((settings.plugins.get("analysis") or {}).get("threads", 1))
    return [FacesAnalyzer(threads=threads)]
