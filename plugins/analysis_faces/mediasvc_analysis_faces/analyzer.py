"""The ``faces`` analyzer: OpenCV's Haar cascade for frontal faces (the cascade files ship in opencv-python).

Detection runs on a grayscale copy scaled so its longer side is at most ``DETECT_SIDE`` pixels (bounded time on any
input); boxes are mapped back to the analysed image's pixels. Confidence is derived from the cascade's level
weight (how far past the last stage's threshold the window passed), squashed into 0..1.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mediasvc.plugin import AnalysisResult, Box, Finding, ModelMissing

CASCADE = "haarcascade_frontalface_default.xml"
DETECT_SIDE = 1024
MIN_FACE_FRACTION = 0.04  # smaller than 4% of the shorter side: too small to matter (and mostly false hits)


class FacesAnalyzer:
    name = "faces"
    model = "opencv-haar-frontalface"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._cascade: Any = None
        self._lock = threading.Lock()
        self._detect_lock = threading.Lock()  # a CascadeClassifier is not safe to share between threads

    def cascade(self) -> Any:
        import cv2

        with self._lock:
            if self._cascade is None:
                path = Path(cv2.data.haarcascades) / CASCADE
                if not path.is_file():
                    raise ModelMissing(f"OpenCV's {CASCADE} is missing: reinstall opencv-python-headless",
                                       details={"package": "opencv-python-headless"})
                self._cascade = cv2.CascadeClassifier(str(path))
            return self._cascade

    def analyze(self, image: Any, *, max_results: int = 10, min_confidence: float = 0.0) -> AnalysisResult:
        import cv2

        started = time.perf_counter()
        cv2.setNumThreads(self.threads)
        width, height = image.size
        scale = min(1.0, DETECT_SIDE / max(width, height))
        gray = image.convert("L")
        if scale < 1.0:
            gray = gray.resize((max(1, round(width * scale)), max(1, round(height * scale))))
        pixels = cv2.equalizeHist(np.asarray(gray, dtype=np.uint8))
        min_side = max(24, int(min(pixels.shape) * MIN_FACE_FRACTION))
        findings: list[Finding] = []
        if min(pixels.shape) >= min_side:
            cascade = self.cascade()
            with self._detect_lock:
                rects, _levels, weights = cascade.detectMultiScale3(
                    pixels, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side), outputRejectLevels=True)
            for (x, y, w, h), weight in zip(rects, np.ravel(weights) if len(rects) else []):
                confidence = round(1.0 / (1.0 + math.exp(-float(weight))), 4)
                if confidence < min_confidence:
                    continue
                findings.append(Finding(name="face", confidence=confidence, box=Box(
                    x=int(x / scale), y=int(y / scale), width=int(w / scale), height=int(h / scale))))
        findings.sort(key=lambda f: f.confidence, reverse=True)
        return AnalysisResult(analysis_type=self.name, findings=findings[: max(0, max_results)], model=self.model,
                              elapsed_ms=(time.perf_counter() - started) * 1000)
