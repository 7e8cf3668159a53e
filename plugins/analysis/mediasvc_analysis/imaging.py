"""Bytes to a bounded RGB image, safely: the image plugin's checked opener (header only, pixel and side limits,
decompression-bomb warnings as errors, a format allow-list), then EXIF orientation, then a downscale so the
analyzers never see more than ``analysis_side`` pixels on the longer side."""

from __future__ import annotations

import io
from PIL import Image

from mediasvc_images.images import Variant, decode, open_checked
from mediasvc.plugin import PayloadTooLarge, PermanentProcessingError, UnsupportedMediaType, ValidationFailed

from mediasvc_analysis.config import AnalysisSettings


class DecodedImage:
    """The image analyzers get, and the original's oriented size (boxes refer to ``image``)."""

    def __init__(self, image: Image.Image, width: int, height: int, fmt: str | None) -> None:
        self.image, self.width, self.height, self.format = image, width, height, fmt
        self.phash: int | None = None  # set by the analysis (signed 64-bit)
        self.dhash: int | None = None


def _error_for(exc: PermanentProcessingError) -> Exception:
    message = str(exc)
    if "too large" in message or "more than the limit" in message or "outside 1.." in message:
        return PayloadTooLarge(f"Image refused: {message}", details={"reason": "pixels"})
    if "not a supported image" in message:
        return UnsupportedMediaType("Not a supported image (JPEG, PNG, GIF, WebP or AVIF)")
    return ValidationFailed(f"The image could not be decoded: {message}", details={"reason": "corrupt"})


def load_image(data: bytes, options: AnalysisSettings) -> DecodedImage:
    """Raise 413 (too many pixels / bytes), 415 (not an image) or 422 (corrupt) in the service's envelope."""
    if len(data) > options.max_upload_bytes:
        raise PayloadTooLarge(f"{len(data)} bytes is over the analysis limit of {options.max_upload_bytes} bytes",
                              details={"max_bytes": options.max_upload_bytes})
    if not data:
        raise ValidationFailed("The image is empty")
    side = options.analysis_side
    try:
        opened = open_checked(io.BytesIO(data), options.max_pixels, options.max_side)
        fmt = opened.format
        image, facts = decode(opened, (Variant("analysis", "fit", side, side),), options.max_pixels)
    except PermanentProcessingError as exc:
        raise _error_for(exc) from exc
    return DecodedImage(bounded_rgb(image, side), facts["width"], facts["height"], fmt)


def bounded_rgb(image: Image.Image, side: int) -> Image.Image:
    """RGB (alpha flattened on white), longer side at most ``side``."""
    if image.mode in ("RGBA", "LA", "PA"):
        background = Image.new("RGB", image.size, "white")
        background.paste(image.convert("RGBA"), mask=image.convert("RGBA").getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if max(image.size) > side:
        image = image.copy()
        image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return image


def scale_of(decoded: DecodedImage) -> float:
    """Original pixels per analysed pixel (boxes are reported in the original's oriented pixels)."""
    return decoded.width / max(1, decoded.image.width)

