"""The ``labels`` analyzer: the ImageNet-1k classes of the whole image, with broader classes as parents."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mediasvc.plugin import AnalysisResult, Finding, ModelMissing

from mediasvc_analysis_labels.hierarchy import parents_of
from mediasvc_analysis_labels.model_files import INPUT_SIZE, INSTALL_COMMAND, locate

CLASS_NAMES = (Path(__file__).with_name("imagenet_classes.txt")).read_text().splitlines()
CROP_FRACTION = 0.875  # the centre crop the EfficientNet-Lite evaluation uses (224 of 256)


def preprocess(image: Image.Image) -> np.ndarray:
    """Centre crop, resize to 224, scale as the TensorFlow Lite models expect ((x - 127) / 128), NCHW."""
    width, height = image.size
    side = min(width, height) * CROP_FRACTION
    box = ((width - side) / 2, (height - side) / 2, (width + side) / 2, (height + side) / 2)
    pixels = np.asarray(image.convert("RGB").resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BICUBIC, box=box),
                        dtype=np.float32)
    return ((pixels - 127.0) / 128.0).transpose(2, 0, 1)[None]


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


class LabelsAnalyzer:
    name = "labels"
    model = "efficientnet-lite0"

    def __init__(self, settings: Any, threads: int = 1) -> None:
        self.settings = settings
        self.threads = threads
        self._session: Any = None
        self._lock = threading.Lock()

    def session(self) -> Any:
        """The onnxruntime session, opened on first use; a model not prepared is a ModelMissing (503)."""
        with self._lock:
            if self._session is None:
                path = locate(self.settings)
                if path is None:
                    raise ModelMissing(f"The labels model is not installed: run `{INSTALL_COMMAND}`",
                                       details={"model": "labels-efficientnet-lite0", "command": INSTALL_COMMAND})
                import onnxruntime as ort

                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            return self._session

    def probabilities(self, image: Image.Image) -> np.ndarray:
        return softmax(self.session().run(None, {"image": preprocess(image)})[0][0])

    def analyze(self, image: Any, *, max_results: int = 10, min_confidence: float = 0.0) -> AnalysisResult:
        started = time.perf_counter()
        probs = self.probabilities(image)
        findings = []
        for index in np.argsort(-probs)[: max(0, max_results)]:
            confidence = float(probs[index])
            if confidence < min_confidence:
                break
            findings.append(Finding(name=CLASS_NAMES[index], confidence=round(confidence, 4),
                                    parents=parents_of(int(index)), attributes={"class_index": int(index)}))
        return AnalysisResult(analysis_type=self.name, findings=findings, model=self.model,
                              elapsed_ms=(time.perf_counter() - started) * 1000)
