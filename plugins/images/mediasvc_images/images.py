"""The ``image`` processor: web variants by profile, EXIF orientation applied, metadata stripped, a BlurHash.

Pipeline (one decode per asset):

1. ``Image.open`` reads only the header, inside ``warnings.catch_warnings`` with ``DecompressionBombWarning`` made an
   error; dimensions and the configured pixel limit are checked on the header before any
   pixel is decoded. Only JPEG, PNG, GIF, WebP and AVIF parsers are allowed.
2. JPEG sources are decoded at a reduced DCT scale with ``Image.draft`` — just large enough for the largest variant.
3. EXIF orientation is applied, non-sRGB ICC profiles are converted to sRGB, the mode is normalised (RGB / RGBA).
4. Variants are made largest first, each resized from the smallest image already made that still covers it.
5. Outputs carry no EXIF, XMP or GPS; an sRGB ICC profile is kept only when the source had one.

Anything wrong with the input (not an image, truncated, corrupt, too many pixels, absurd dimensions) raises
``PermanentProcessingError``: the step fails once, no retries.
"""

from __future__ import annotations

import asyncio
import io
import math
import struct
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageCms, ImageOps

from mediasvc.plugin import PermanentProcessingError, ProcessorResult, RenditionOut

from mediasvc_images.common import local_original, output_key, plugin_settings

ALLOWED_FORMATS = ("JPEG", "PNG", "GIF", "WEBP", "AVIF")
CONTENT_TYPES = {"WEBP": "image/webp", "JPEG": "image/jpeg", "AVIF": "image/avif"}
EXTENSIONS = {"WEBP": "webp", "JPEG": "jpg", "AVIF": "avif"}
RESAMPLE = Image.Resampling.LANCZOS


@dataclass(frozen=True)
class Variant:
    name: str
    mode: Literal["fit", "crop"]  # fit: inside the box, aspect kept; crop: centre crop to exactly the box
    width: int
    height: int
    format: Literal["WEBP", "JPEG"] = "WEBP"
    quality: int = 80
    avif: bool = False  # also written as AVIF when the ``avif`` plugin setting is on

    @property
    def filename(self) -> str:
        return f"{self.name}.{EXTENSIONS[self.format]}"


THUMBNAIL = Variant("thumbnail", "crop", 150, 150)
MEDIUM = Variant("medium", "fit", 600, 600)
LARGE = Variant("large", "fit", 1200, 1200, avif=True)

# Variants by profile name. A profile not listed here gets the first entry.
VARIANTS: dict[str, tuple[Variant, ...]] = {
    "default": (THUMBNAIL, MEDIUM, LARGE),
    "question_image": (Variant("display", "fit", 1920, 1080), THUMBNAIL, MEDIUM, LARGE),
    "avatar": (Variant("avatar", "crop", 256, 256, format="JPEG", quality=85), THUMBNAIL),
}


def variants_for(profile: str | None) -> tuple[Variant, ...]:
    return VARIANTS.get(profile or "", next(iter(VARIANTS.values())))


# --- geometry --------------------------------------------------------------------------------------------------


def scaled_size(variant: Variant, width: int, height: int) -> tuple[int, int]:
    """The full-frame size the source is scaled to for ``variant`` (before a crop). Never larger than the source."""
    if variant.mode == "fit":
        scale = min(variant.width / width, variant.height / height, 1.0)
    else:  # cover the box
        scale = min(max(variant.width / width, variant.height / height), 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def output_size(variant: Variant, width: int, height: int) -> tuple[int, int]:
    """The final size of ``variant`` for a ``width`` x ``height`` source (oriented)."""
    if variant.mode == "fit":
        return scaled_size(variant, width, height)
    # crop: exactly the box, or the largest centred box of the same aspect the source can give without upscaling
    scale = min(width / variant.width, height / variant.height, 1.0)
    return max(1, math.floor(variant.width * scale)), max(1, math.floor(variant.height * scale))


def _cover(src: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Centre crop of ``src`` to the aspect of ``size``, resized to ``size``."""
    if src.size == size:
        return src.copy()
    return ImageOps.fit(src, size, RESAMPLE, centering=(0.5, 0.5))


# --- decode ----------------------------------------------------------------------------------------------------


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1) or 1)
    except Exception:  # a broken EXIF block must not fail the image; it is dropped anyway
        return 1


def open_checked(path: Any, max_pixels: int, max_side: int) -> Image.Image:
    """Open ``path`` reading only its header; refuse bombs and absurd sizes before decoding.

    The limit is checked here, per call: Pillow's own ``MAX_IMAGE_PIXELS`` is process-wide, so it is only ever
    raised (to let a larger configured limit through), never lowered under another caller's feet."""
    if Image.MAX_IMAGE_PIXELS is not None and max_pixels > Image.MAX_IMAGE_PIXELS:
        Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path, formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PermanentProcessingError(f"image too large: {exc}") from exc
    except Image.UnidentifiedImageError as exc:
        raise PermanentProcessingError("not a supported image (JPEG, PNG, GIF, WebP or AVIF)") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PermanentProcessingError(f"corrupt image header: {exc}") from exc
    width, height = im.size
    if width < 1 or height < 1 or width > max_side or height > max_side:
        im.close()
        raise PermanentProcessingError(f"image dimensions {width}x{height} are outside 1..{max_side}")
    if width * height > max_pixels:
        im.close()
        raise PermanentProcessingError(f"image has {width * height} pixels, more than the limit of {max_pixels}")
    return im


def decode(im: Image.Image, variants: tuple[Variant, ...], max_pixels: int) -> tuple[Image.Image, dict[str, Any]]:
    """Decode (at reduced scale for JPEG), orient, normalise colour. Returns the image and source facts."""
    src_w, src_h = im.size
    orientation = _orientation(im)
    swapped = orientation in (5, 6, 7, 8)
    ow, oh = (src_h, src_w) if swapped else (src_w, src_h)
    facts: dict[str, Any] = {"width": ow, "height": oh, "format": im.format}
    icc = im.info.get("icc_profile")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            if getattr(im, "is_animated", False):
                facts["frames"] = getattr(im, "n_frames", 1)
                im.seek(0)  # animated GIF/WebP: the first frame
            if im.format == "JPEG":
                need_w = max(scaled_size(v, ow, oh)[0] for v in variants)
                need_h = max(scaled_size(v, ow, oh)[1] for v in variants)
                need_w, need_h = max(need_w, 32), max(need_h, 32)
                im.draft("RGB", (need_h, need_w) if swapped else (need_w, need_h))
            im.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PermanentProcessingError(f"image too large: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise PermanentProcessingError(f"corrupt or truncated image: {exc}") from exc
    if swapped or orientation != 1:
        try:
            im = ImageOps.exif_transpose(im) or im
        except Exception as exc:  # pragma: no cover - broken orientation data: keep pixels as stored
            raise PermanentProcessingError(f"bad EXIF orientation: {exc}") from exc
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)
    target_mode = "RGBA" if has_alpha else "RGB"
    keep_icc = None
    if icc:
        im, keep_icc = _to_srgb(im, icc, target_mode)
    if im.mode != target_mode:
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            im = im.point(lambda v: v / 256).convert("L")  # 16-bit grey: scale, do not clip
        im = im.convert(target_mode)
    im.info.clear()
    if keep_icc:
        im.info["icc_profile"] = keep_icc
    return im, facts


def _to_srgb(im: Image.Image, icc: bytes, target_mode: str) -> tuple[Image.Image, bytes | None]:
    """Keep an sRGB profile as it is; convert anything else (Display P3, Adobe RGB, CMYK) to sRGB and drop it."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = (ImageCms.getProfileDescription(profile) or "").lower()
    except Exception:
        return im, None  # an unreadable profile is dropped
    if "srgb" in description:
        return im, icc
    if im.mode not in ("RGB", "RGBA", "CMYK", "L"):
        return im, None
    try:
        out_mode = target_mode if im.mode in ("RGB", "RGBA") else "RGB"
        converted = ImageCms.profileToProfile(im, profile, ImageCms.createProfile("sRGB"), outputMode=out_mode)
        return (converted or im), None
    except Exception:
        return im, None


# --- variants --------------------------------------------------------------------------------------------------


def make_variants(im: Image.Image, variants: tuple[Variant, ...]) -> dict[str, Image.Image]:
    """Every variant, largest first, each from the smallest full-frame image already made that covers it."""
    width, height = im.size
    full_frames: list[Image.Image] = [im]  # images with the source's aspect, decreasing size
    out: dict[str, Image.Image] = {}
    order = sorted(variants, key=lambda v: -(scaled_size(v, width, height)[0] * scaled_size(v, width, height)[1]))
    for variant in order:
        need = scaled_size(variant, width, height)
        src = min((f for f in full_frames if f.width >= need[0] and f.height >= need[1]),
                  key=lambda f: f.width * f.height)
        if variant.mode == "fit":
            img = src if src.size == need else src.resize(need, RESAMPLE, reducing_gap=3.0)
            full_frames.append(img)
        else:
            img = _cover(src, output_size(variant, width, height))
        out[variant.name] = img
    return out


def encode(img: Image.Image, fmt: str, quality: int) -> bytes:
    buf = io.BytesIO()
    icc = img.info.get("icc_profile")
    params: dict[str, Any] = {"quality": quality}
    if icc:
        params["icc_profile"] = icc
    if fmt == "JPEG":
        if img.mode == "RGBA":  # JPEG has no alpha: flatten on white
            flat = Image.new("RGB", img.size, (255, 255, 255))
            flat.paste(img, mask=img.getchannel("A"))
            img = flat
        params.update(optimize=True, progressive=True)
    elif fmt == "WEBP":
        params.update(method=4)
    elif fmt == "AVIF":
        params.update(quality=min(quality, 60), speed=8)
    img.save(buf, fmt, **params)  # no exif=/xmp= given: Pillow writes none
    return buf.getvalue()


def blurhash_of(img: Image.Image) -> str:
    """BlurHash (4x3 components) of a 32x32 downscale; alpha composited on white."""
    from blurhash import encode as bh_encode

    small = img.resize((32, 32), Image.Resampling.BILINEAR)
    if small.mode == "RGBA":
        flat = Image.new("RGB", small.size, (255, 255, 255))
        flat.paste(small, mask=small.getchannel("A"))
        small = flat
    small = small.convert("RGB")
    data = list(small.getdata())
    rows = [[list(data[y * 32 + x]) for x in range(32)] for y in range(32)]
    return bh_encode(rows, 4, 3)


@dataclass
class Encoded:
    variant: Variant
    name: str
    filename: str
    format: str
    data: bytes
    width: int
    height: int


def process_file(path: Any, profile: str | None, options: dict[str, Any],
                 variants: tuple[Variant, ...] | None = None) -> tuple[list[Encoded], dict[str, Any]]:
    """The whole CPU-bound pipeline on a local file (runs in a worker thread; also used by the benchmark)."""
    variants = variants or variants_for(profile)
    max_pixels, max_side = int(options["max_pixels"]), int(options["max_side"])
    im = open_checked(path, max_pixels, max_side)
    try:
        return _process_opened(im, variants, max_pixels, options)
    finally:
        im.close()


def _process_opened(im: Image.Image, variants: tuple[Variant, ...], max_pixels: int,
                    options: dict[str, Any]) -> tuple[list[Encoded], dict[str, Any]]:
    decoded, facts = decode(im, variants, max_pixels)
    images = make_variants(decoded, variants)
    results: list[Encoded] = []
    for variant in variants:
        img = images[variant.name]
        results.append(Encoded(variant, variant.name, variant.filename, variant.format,
                               encode(img, variant.format, variant.quality), img.width, img.height))
        if variant.avif and options.get("avif"):
            results.append(Encoded(variant, f"{variant.name}_avif", f"{variant.name}.avif", "AVIF",
                                   encode(img, "AVIF", variant.quality), img.width, img.height))
    if options.get("blurhash", True):
        smallest = min(images.values(), key=lambda i: i.width * i.height)
        # a crop is not the whole picture: use the smallest full-frame image for the placeholder
        full = [images[v.name] for v in variants if v.mode == "fit"]
        facts["blurhash"] = blurhash_of(min(full, key=lambda i: i.width * i.height) if full else smallest)
    return results, facts


class ImageProcessor:
    name = "image"
    kinds = frozenset({"image"})
    timeout_seconds = 120
    needs: frozenset[str] = frozenset()

    async def run(self, ctx: Any) -> ProcessorResult:
        options = plugin_settings(ctx.settings)
        profile = ctx.asset.get("profile")
        storage_key = ctx.asset["storage_key"]
        await ctx.progress(5)
        async with local_original(ctx) as path:
            results, facts = await asyncio.to_thread(process_file, path, profile, options)
        await ctx.progress(80)
        renditions = []
        for r in results:
            key = output_key(storage_key, r.filename)
            info = await ctx.storage.put(key, r.data, content_type=CONTENT_TYPES[r.format])
            renditions.append(RenditionOut(kind="image", name=r.name, storage_key=key,
                                           content_type=CONTENT_TYPES[r.format], size_bytes=info.size,
                                           width=r.width, height=r.height))
        metadata: dict[str, Any] = {"width": facts["width"], "height": facts["height"],
                                    "image": {k: v for k, v in facts.items() if k in ("format", "frames")}}
        if "blurhash" in facts:
            metadata["blurhash"] = facts["blurhash"]
        await ctx.progress(100)
        return ProcessorResult(renditions=renditions, metadata=metadata)
