"""Entry point ``analysis = "mediasvc_analysis.plugin"``: the ``analyze`` step, the analysis API, its table, the
batch job and the asset-page panel. Analyzers come from other plugins (``register_analyzers``)."""

from __future__ import annotations

from mediasvc.plugin import hookimpl

from mediasvc_analysis.config import SECTION, AnalysisSettings, analysis_settings


@hookimpl
def register_settings():
    return [(SECTION, AnalysisSettings)]


@hookimpl
def piccolo_apps():
    return ["mediasvc_analysis.piccolo_app"]


@hookimpl
def register_processors(settings):
    from mediasvc_analysis.processor import AnalyzeProcessor

    return [AnalyzeProcessor(timeout_seconds=analysis_settings(settings).job_timeout_seconds)]


@hookimpl
def register_routes(settings):
    from mediasvc_analysis.api import analysis_router

    return [analysis_router()]


@hookimpl
def register_jobs():
    from mediasvc_analysis.jobs import ANALYZE_JOB, analyze_asset_job

    return [(ANALYZE_JOB, analyze_asset_job)]


@hookimpl
def startup(app):
    from mediasvc_analysis.store import bind

    bind()


@hookimpl
def asset_panels(request, asset):
    from mediasvc_analysis.panel import asset_panel

    return asset_panel(asset)


@hookimpl
def register_event_types():
    from mediasvc_analysis.store import ASSET_FLAGGED, IMAGE_ANALYZED

    return [IMAGE_ANALYZED, ASSET_FLAGGED]
