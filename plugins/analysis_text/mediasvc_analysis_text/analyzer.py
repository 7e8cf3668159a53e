"""The ``text`` analyzer: RapidOCR (PP-OCR detection, orientation and recognition models on onnxruntime).

The models are the ones bundled inside the ``rapidocr`` wheel, named by path: RapidOCR never downloads anything
here. Each finding is one line of text with its recognition confidence and bounding box (the axis-aligned box
around the detected quadrilateral; the quadrilateral itself is in ``attributes.polygon``).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from mediasvc.plugin import AnalysisResult, Box, Finding, ModelMissing

BUNDLED_MODELS = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
    "Cls.model_path": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}
MAX_SIDE = 2000  # RapidOCR's own cap on the detection input
DETECT_SIDE = 960
MIN_SINGLE_CHAR_SCORE = 0.8
MIN_SIDE = 32  # RapidOCR fails on images whose scaled short side rounds to zero: pad thin strips
MAX_ASPECT = 20


def bundled_model_paths() -> dict[str, str]:
    try:
        import rapidocr
    except ImportError as exc:
        raise ModelMissing("The text model is not installed: `pip install rapidocr`",
                           details={"package": "rapidocr"}) from exc
    folder = Path(rapidocr.__file__).parent / "models"
    paths = {key: folder / name for key, name in BUNDLED_MODELS.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise ModelMissing(f"RapidOCR's bundled models are missing ({', '.join(missing)}): reinstall rapidocr",
                           details={"package": "rapidocr"})
    return {key: str(path) for key, path in paths.items()}


def padded(pixels: np.ndarray) -> np.ndarray:
    """Pad right/bottom with white so no side is under MIN_SIDE or under 1/MAX_ASPECT of the other (box
    coordinates are unchanged: padding is only added after the image)."""
    height, width = pixels.shape[:2]
    target_h = max(height, MIN_SIDE, -(-width // MAX_ASPECT))
    target_w = max(width, MIN_SIDE, -(-height // MAX_ASPECT))
    if (target_h, target_w) == (height, width):
        return pixels
    canvas = np.full((target_h, target_w, 3), 255, dtype=np.uint8)
    canvas[:height, :width] = pixels
    return canvas


def looks_like_text(text: str, score: float) -> bool:
    """A lone symbol or a single unsure character read off a shape (a square as "■", a circle as "O") is not text."""
    stripped = text.strip()
    if not any(ch.isalnum() for ch in stripped):
        return False
    return len(stripped) > 1 or score >= MIN_SINGLE_CHAR_SCORE


def reading_order(findings: list[Finding]) -> list[Finding]:
    """Lines top to bottom (boxes whose centres are within half a line's height share a line), each left to right."""
    def centre(f: Finding) -> float:
        return f.box.y + f.box.height / 2 if f.box else 0.0

    lines: list[list[Finding]] = []
    for finding in sorted(findings, key=centre):
        line = lines[-1] if lines else None
        if line and finding.box and line[0].box and abs(centre(finding) - centre(line[0])) <= line[0].box.height / 2:
            line.append(finding)
        else:
            lines.append([finding])
    return [f for line in lines for f in sorted(line, key=lambda f: f.box.x if f.box else 0)]


class TextAnalyzer:
    name = "text"
    model = "pp-ocrv6-small"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._engine: Any = None
        self._lock = threading.Lock()
        self._run_lock = threading.Lock()  # RapidOCR keeps per-call state on the engine: one call at a time

    def engine(self) -> Any:
        with self._lock:
            if self._engine is None:
                from rapidocr import RapidOCR

                params: dict[str, Any] = {
                    **bundled_model_paths(),
                    "Global.log_level": "error",
                    "Global.max_side_len": MAX_SIDE,
                    # detection on the longer side scaled down to DETECT_SIDE (RapidOCR's default scales the
                    # *shorter* side up to 736, which makes wide images slow for no gain in accuracy)
                    "Det.limit_type": "max",
                    "Det.limit_side_len": DETECT_SIDE,
                    "EngineConfig.onnxruntime.intra_op_num_threads": self.threads,
                    "EngineConfig.onnxruntime.inter_op_num_threads": 1,
                }
                self._engine = RapidOCR(params=params)
            return self._engine

    def read(self, image: Any) -> Any:
        """RapidOCR's raw output for an RGB PIL image."""
        engine = self.engine()
        pixels = padded(np.asarray(image.convert("RGB")))
        with self._run_lock:
            return engine(pixels)

    def analyze(self, image: Any, *, max_results: int = 10, min_confidence: float = 0.0) -> AnalysisResult:
        started = time.perf_counter()
        output = self.read(image)
        findings = []
        for text, score, quad in zip(output.txts or (), output.scores or (), output.boxes if output.boxes is not None
                                     else ()):
            if float(score) < min_confidence or not looks_like_text(str(text), float(score)):
                continue
            xs, ys = [float(p[0]) for p in quad], [float(p[1]) for p in quad]
            x0, y0 = max(0, int(min(xs))), max(0, int(min(ys)))
            findings.append(Finding(
                name=str(text), confidence=round(float(score), 4),
                box=Box(x=x0, y=y0, width=max(1, int(max(xs)) - x0), height=max(1, int(max(ys)) - y0)),
                attributes={"polygon": [[round(x), round(y)] for x, y in zip(xs, ys)]},
            ))
        findings = reading_order(findings)
        return AnalysisResult(analysis_type=self.name, findings=findings[: max(0, max_results)], model=self.model,
                              elapsed_ms=(time.perf_counter() - started) * 1000)
