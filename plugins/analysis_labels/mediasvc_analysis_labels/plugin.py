"""Entry point ``analysis_labels = "mediasvc_analysis_labels.plugin"``: the ``labels`` analyzer and its model."""

from __future__ import annotations

from mediasvc.plugin import hookimpl

from mediasvc_analysis_labels.analyzer import LabelsAnalyzer
from mediasvc_analysis_labels.model_files import SPEC


def _threads(settings) -> int:
    return int((settings.plugins.get("analysis") or {}).get("threads", 1))


@hookimpl
def register_models(settings):
    return [SPEC]


@hookimpl
def register_analyzers(settings):
    return [LabelsAnalyzer(settings, threads=_threads(settings))]
