"""The one analysis path the API, the batch job and the ``analyze`` step share: decode once, run each requested
analyzer, shape the findings into the API's response. Blocking: callers run ``analyze_bytes`` in a thread."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from mediasvc.plugin import AnalysisResult, Analyzer, Box, ValidationFailed

from mediasvc_analysis.config import ANALYSIS_TYPES, AnalysisSettings
from mediasvc_analysis.imaging import DecodedImage, load_image, scale_of
from mediasvc_analysis.phash import hashes, hex64
from mediasvc_analysis.schemas import (
    AnalyzeResponse,
    Face,
    Label,
    Moderation,
    ObjectDetection,
    TextDetection,
)


def resolve_types(requested: list[str] | None, analyzers: Mapping[str, Analyzer],
                  options: AnalysisSettings) -> list[str]:
    """The types to run: the request's (each must be installed), else the defaults that are installed."""
    installed = sorted(analyzers)
    if requested is None:
        chosen = [t for t in options.default_types if t in analyzers]
        if not chosen:
            raise ValidationFailed("No analyzer is installed for the default analysis types",
                                   details={"default_types": options.default_types, "installed": installed})
        return chosen
    if not requested:
        raise ValidationFailed("analysis_types must name at least one type", details={"installed": installed})
    unknown = [t for t in requested if t not in analyzers]
    if unknown:
        known = [t for t in unknown if t in ANALYSIS_TYPES]
        reason = "not installed" if known == unknown else "unknown"
        raise ValidationFailed(
            f"Analysis type(s) {', '.join(map(repr, unknown))} {reason}; installed: {', '.join(installed) or 'none'}",
            details={"unknown": unknown, "installed": installed},
        )
    return list(dict.fromkeys(requested))


def check_limits(max_labels: int | None, min_confidence: float | None, options: AnalysisSettings) -> tuple[int, float]:
    labels = options.max_labels if max_labels is None else max_labels
    confidence = options.min_confidence if min_confidence is None else min_confidence
    if not 1 <= labels <= 100:
        raise ValidationFailed("max_labels must be between 1 and 100", details={"max_labels": labels})
    if not 0.0 <= confidence <= 1.0:
        raise ValidationFailed("min_confidence must be between 0 and 1", details={"min_confidence": confidence})
    return labels, confidence


def _scaled(box: Box | None, scale: float, width: int, height: int) -> Box | None:
    if box is None:
        return None
    x, y = min(width - 1, round(box.x * scale)), min(height - 1, round(box.y * scale))
    return Box(x=max(0, x), y=max(0, y), width=max(1, min(width - x, round(box.width * scale))),
               height=max(1, min(height - y, round(box.height * scale))))


def shape_response(results: dict[str, AnalysisResult], decoded: DecodedImage, options: AnalysisSettings,
                   elapsed_ms: float) -> AnalyzeResponse:
    scale = scale_of(decoded)
    w, h = decoded.width, decoded.height
    response = AnalyzeResponse(analysis_types=list(results), width=w, height=h,
                               models={t: r.model for t, r in results.items()},
                               timings_ms={t: round(r.elapsed_ms, 2) for t, r in results.items()},
                               processing_time_ms=round(elapsed_ms, 2))
    for kind, result in results.items():
        found = result.findings
        if kind == "labels":
            response.labels = [Label(name=f.name, confidence=f.confidence, parents=f.parents) for f in found]
        elif kind == "text":
            response.text = [TextDetection(text=f.name, confidence=f.confidence, box=_scaled(f.box, scale, w, h))
                             for f in found]
        elif kind == "objects":
            response.objects = [ObjectDetection(name=f.name, confidence=f.confidence, parents=f.parents,
                                                box=_scaled(f.box, scale, w, h)) for f in found]
        elif kind == "faces":
            response.faces = [Face(confidence=f.confidence, box=_scaled(f.box, scale, w, h)) for f in found]
        elif kind == "moderation":
            scores = result.scores or {f.name: f.confidence for f in found}
            response.moderation = Moderation(scores=scores, threshold=options.moderation_threshold,
                                             flagged=scores.get("nsfw", 0.0) >= options.moderation_threshold)
    return response


def run_analyzers(decoded: DecodedImage, analyzers: Mapping[str, Analyzer], types: list[str], max_labels: int,
                  min_confidence: float) -> dict[str, AnalysisResult]:
    results = {}
    for kind in types:
        limit = max_labels if kind in ("labels", "objects") else 100
        results[kind] = analyzers[kind].analyze(decoded.image, max_results=limit, min_confidence=min_confidence)
    return results


def analyze_image(decoded: DecodedImage, analyzers: Mapping[str, Analyzer], types: list[str], *, max_labels: int,
                  min_confidence: float, options: AnalysisSettings, started: float | None = None,
                  with_hashes: bool = True) -> AnalyzeResponse:
    started = time.perf_counter() if started is None else started
    results = run_analyzers(decoded, analyzers, types, max_labels, min_confidence)
    if with_hashes:
        decoded.phash, decoded.dhash = hashes(decoded.image)
    response = shape_response(results, decoded, options, (time.perf_counter() - started) * 1000)
    response.phash = hex64(decoded.phash)
    return response


def analyze_bytes(data: bytes, analyzers: Mapping[str, Analyzer], types: list[str], *, max_labels: int,
                  min_confidence: float, options: AnalysisSettings,
                  with_hashes: bool = True) -> tuple[AnalyzeResponse, DecodedImage]:
    """Decode (limits enforced first) and analyse; the decoded image (with its perceptual hashes, which stored
    assets need and one-off uploads skip) comes back for storing and attributes."""
    started = time.perf_counter()
    decoded = load_image(data, options)
    response = analyze_image(decoded, analyzers, types, max_labels=max_labels, min_confidence=min_confidence,
                             options=options, started=started, with_hashes=with_hashes)
    return response, decoded


def summary(response: AnalyzeResponse) -> dict[str, Any]:
    """What the asset page shows, kept small: it is merged into the asset's metadata under ``analysis``."""
    return {
        "labels": [{"name": label.name, "confidence": label.confidence} for label in response.labels[:5]],
        "text": [t.text for t in response.text[:10]],
        "faces": len(response.faces),
        "objects": [o.name for o in response.objects[:10]],
        "moderation": response.moderation.scores if response.moderation else None,
        "flagged": bool(response.moderation and response.moderation.flagged),
        "phash": response.phash,
        "types": response.analysis_types,
    }
