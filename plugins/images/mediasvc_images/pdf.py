"""The ``pdf_thumbnail`` processor: the first page rendered with pypdfium2 to a 320 px JPEG and a 1200 px preview.

pdfium is not thread-safe, so every document is handled under one process-wide lock (in a worker thread, off the
event loop). The render scale is capped so that a page with a giant MediaBox cannot allocate an unbounded bitmap.
Encrypted, corrupt and non-PDF input raises ``PermanentProcessingError``.
"""

from __future__ import annotations

import asyncio
import io
import math
import threading
from typing import Any

from PIL import Image

from mediasvc.plugin import PermanentProcessingError, ProcessorResult, RenditionOut

from mediasvc_images.common import local_original, output_key, plugin_settings

THUMB_WIDTH = 320
PREVIEW_WIDTH = 1200
_PDFIUM_LOCK = threading.Lock()


def render_first_page(path: Any, max_pixels: int) -> tuple[dict[str, tuple[bytes, int, int]], dict[str, Any]]:
    import pypdfium2 as pdfium

    with open(path, "rb") as fh:
        head = fh.read(1024)
    if b"%PDF-" not in head:
        raise PermanentProcessingError("not a PDF (no %PDF- header)")
    with _PDFIUM_LOCK:
        try:
            pdf = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            message = str(exc)
            if "password" in message.lower():
                raise PermanentProcessingError("the PDF is encrypted (password required)") from exc
            raise PermanentProcessingError(f"corrupt PDF: {message}") from exc
        try:
            pages = len(pdf)
            if pages < 1:
                raise PermanentProcessingError("the PDF has no pages")
            page = pdf[0]
            try:
                width_pt, height_pt = page.get_size()
                if not (width_pt > 0 and height_pt > 0 and math.isfinite(width_pt) and math.isfinite(height_pt)):
                    raise PermanentProcessingError(f"bad page size {width_pt}x{height_pt}")
                scale = PREVIEW_WIDTH / width_pt
                # cap: the bitmap never exceeds max_pixels, whatever the page's aspect or size
                scale = min(scale, 0.995 * math.sqrt(max_pixels / (width_pt * height_pt)))  # pdfium rounds up
                bitmap = page.render(scale=scale, may_draw_forms=True)
                try:
                    image = bitmap.to_pil().convert("RGB")
                finally:
                    bitmap.close()
            finally:
                page.close()
        except pdfium.PdfiumError as exc:
            raise PermanentProcessingError(f"cannot render the PDF: {exc}") from exc
        finally:
            pdf.close()
    outputs: dict[str, tuple[bytes, int, int]] = {}
    for name, target in (("preview", PREVIEW_WIDTH), ("thumb", THUMB_WIDTH)):
        w = min(target, image.width)
        h = max(1, round(image.height * w / image.width))
        img = image if (w, h) == image.size else image.resize((w, h), Image.Resampling.LANCZOS, reducing_gap=3.0)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=85, optimize=True, progressive=True)
        outputs[name] = (buf.getvalue(), w, h)
    facts = {"page_count": pages, "page_width_pt": round(width_pt, 2), "page_height_pt": round(height_pt, 2)}
    return outputs, facts


class PdfThumbnailProcessor:
    name = "pdf_thumbnail"
    kinds = frozenset({"document"})
    timeout_seconds = 120
    needs: frozenset[str] = frozenset()

    async def run(self, ctx: Any) -> ProcessorResult:
        options = plugin_settings(ctx.settings)
        storage_key = ctx.asset["storage_key"]
        await ctx.progress(5)
        async with local_original(ctx, suffix=".pdf") as path:
            outputs, facts = await asyncio.to_thread(render_first_page, path, int(options["pdf_max_pixels"]))
        await ctx.progress(80)
        renditions = []
        for kind, name, filename, source in (("thumbnail", "default", "thumb.jpg", "thumb"),
                                              ("image", "preview", "preview.jpg", "preview")):
            data, w, h = outputs[source]
            key = output_key(storage_key, filename)
            info = await ctx.storage.put(key, data, content_type="image/jpeg")
            renditions.append(RenditionOut(kind=kind, name=name, storage_key=key, content_type="image/jpeg",
                                           size_bytes=info.size, width=w, height=h))
        await ctx.progress(100)
        metadata = {"page_count": facts["page_count"], "pdf": facts}
        return ProcessorResult(renditions=renditions, metadata=metadata)
