"""Images benchmark: a 12 MP photo-like JPEG → 150x150 crop + 600 fit + 1200 fit WebP q80, images per second on one
core, for our pipeline (`mediasvc_images`: header check, `draft()` reduced-scale decode, cascaded resizes, BlurHash),
a plain Pillow pipeline (full decode, every variant resized from the original) and pyvips when importable.

Quality: PSNR of each pipeline's 1200 variant (decoded WebP) against a lossless reference (the full-resolution
decode resized once with LANCZOS), and of ours against plain Pillow's, computed exactly from Pillow's difference
histogram (no numpy needed).

    uv run python bench/images.py [--rounds 8] [--markdown]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from PIL import Image, ImageChops, ImageOps

from mediasvc_images.common import DEFAULTS
from mediasvc_images.images import LARGE, MEDIUM, THUMBNAIL, process_file

VARIANTS = (THUMBNAIL, MEDIUM, LARGE)


def make_source(path: Path, width: int = 4000, height: int = 3000) -> None:
    """Photo-like: noise over gradients and some shapes, so JPEG and WebP have real work to do."""
    noise = Image.effect_noise((width, height), 40)
    grad = Image.linear_gradient("L").resize((width, height))
    radial = Image.radial_gradient("L").resize((width, height))
    mandel = Image.effect_mandelbrot((width, height), (-2.0, -1.2, 1.0, 1.2), 60)
    # mid-frequency texture (detail that survives the downscale to 1200, like foliage or fabric)
    texture = Image.effect_noise((width // 6, height // 6), 70).resize((width, height), Image.Resampling.BICUBIC)
    img = Image.merge("RGB", (Image.blend(Image.blend(noise, grad, 0.55), texture, 0.4),
                              Image.blend(Image.blend(mandel, radial, 0.5), texture, 0.3),
                              Image.blend(noise, radial, 0.6)))
    img.save(path, "JPEG", quality=90)


def plain_pillow(path: Path) -> dict[str, bytes]:
    """The straightforward way: decode full size, resize every variant from the original."""
    out = {}
    with Image.open(path) as im:
        im.load()
        w, h = im.size
        for v in VARIANTS:
            if v.mode == "crop":
                img = ImageOps.fit(im, (v.width, v.height), Image.Resampling.LANCZOS)
            else:
                s = min(v.width / w, v.height / h, 1.0)
                img = im.resize((round(w * s), round(h * s)), Image.Resampling.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, "WEBP", quality=80, method=4)
            out[v.name] = buf.getvalue()
    return out


def ours(path: Path, blurhash: bool = True) -> dict[str, bytes]:
    results, _ = process_file(path, None, {**DEFAULTS, "blurhash": blurhash}, variants=VARIANTS)
    return {r.name: r.data for r in results}


def pyvips_pipeline(path: Path):
    import pyvips  # noqa: F401  (only when installed: pyvips[binary])

    def run(p: Path) -> dict[str, bytes]:
        out = {}
        out["thumbnail"] = pyvips.Image.thumbnail(str(p), 150, height=150, crop="centre").webpsave_buffer(Q=80)
        out["medium"] = pyvips.Image.thumbnail(str(p), 600, height=600).webpsave_buffer(Q=80)
        out["large"] = pyvips.Image.thumbnail(str(p), 1200, height=1200).webpsave_buffer(Q=80)
        return out

    return run


def psnr(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size, (a.size, b.size)
    hist = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).histogram()
    sse = sum(count * (i % 256) ** 2 for i, count in enumerate(hist))
    mse = sse / (a.width * a.height * 3)
    return float("inf") if mse == 0 else 10 * math.log10(255 ** 2 / mse)


def decode_webp(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as im:
        return im.convert("RGB")


def bench(fn, path: Path, rounds: int) -> tuple[float, list[float]]:
    fn(path)  # warm-up
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn(path)
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "source.jpg"
        make_source(src)
        pipelines = {"ours (draft + cascade + BlurHash)": ours,
                     "ours without BlurHash": lambda p: ours(p, blurhash=False),
                     "plain Pillow": plain_pillow}
        vips_note = None
        try:
            pipelines["pyvips"] = pyvips_pipeline(src)
        except ImportError:
            vips_note = "not measured: pyvips[binary] not installed"
        # interleave rounds so drift (thermal, other load) hits every pipeline alike
        times: dict[str, list[float]] = {name: [] for name in pipelines}
        for fn in pipelines.values():
            fn(src)
        for _ in range(args.rounds):
            for name, fn in pipelines.items():
                t = time.perf_counter()
                fn(src)
                times[name].append(time.perf_counter() - t)
        medians = {name: statistics.median(ts) for name, ts in times.items()}
        outputs = {name: fn(src) for name, fn in pipelines.items()}
        with Image.open(src) as im:
            im.load()
            reference = im.resize((1200, 900), Image.Resampling.LANCZOS)
        quality = {name: psnr(decode_webp(out["large"]), reference) for name, out in outputs.items()}
        ours_vs_plain = psnr(decode_webp(outputs["ours (draft + cascade + BlurHash)"]["large"]),
                             decode_webp(outputs["plain Pillow"]["large"]))
        src_bytes = src.stat().st_size

    plain = medians["plain Pillow"]
    print(f"# images benchmark, {date.today().isoformat()}, {platform.machine()} {platform.python_version()}, "
          f"Pillow {Image.__version__}, one core, {args.rounds} interleaved rounds, median")
    print(f"source: 4000x3000 JPEG q90, {src_bytes / 1e6:.1f} MB; variants: 150 crop, 600 fit, 1200 fit, WebP q80 m4")
    rows = []
    for name, med in medians.items():
        sizes = "/".join(f"{len(outputs[name][v.name]) / 1000:.0f}" for v in VARIANTS)
        rows.append((name, f"{1 / med:.2f}", f"{med * 1000:.0f}", f"{plain / med:.2f}x",
                     f"{quality[name]:.2f}", sizes))
    if vips_note:
        rows.append(("pyvips", vips_note, "", "", "", ""))
    header = ("pipeline", "images/s (1 core)", "ms/image", "vs plain Pillow", "PSNR 1200 vs reference (dB)",
              "KB 150/600/1200")
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        for r in (header, *rows):
            print("  ".join(f"{c:<34}" if i == 0 else f"{c:>12}" for i, c in enumerate(r)))
    print(f"PSNR of our 1200 variant vs plain Pillow's 1200 variant: {ours_vs_plain:.2f} dB")


if __name__ == "__main__":
    main()
