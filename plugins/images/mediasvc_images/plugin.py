"""Entry point ``images = "mediasvc_images.plugin"``: the ``image`` and ``pdf_thumbnail`` processors."""

from __future__ import annotations

from mediasvc.plugin import hookimpl

from mediasvc_images.images import ImageProcessor
from mediasvc_images.pdf import PdfThumbnailProcessor


@hookimpl
def register_processors(settings):
    return [ImageProcessor(), PdfThumbnailProcessor()]
