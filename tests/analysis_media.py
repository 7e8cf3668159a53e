"""Images for the analysis tests (helpers only): generated with Pillow, or scikit-image's sample photos."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw, ImageFont


def photo(name: str) -> Image.Image:
    """One of scikit-image's sample photos: chelsea (a cat), coffee (a cup), astronaut (a face), rocket."""
    from skimage import data

    return Image.fromarray(getattr(data, name)()).convert("RGB")


def text_image(text: str = "SUMMER SALE 50%", size: tuple[int, int] = (900, 260), angle: float = 0.0,
               colour: str = "black", background: str = "white") -> Image.Image:
    img = Image.new("RGB", size, background)
    ImageDraw.Draw(img).text((40, size[1] // 2 - 40), text, fill=colour, font=ImageFont.load_default(size=72))
    return img.rotate(angle, expand=True, fillcolor=background) if angle else img


def shapes_image(size: tuple[int, int] = (640, 480)) -> Image.Image:
    img = Image.new("RGB", size, (240, 240, 240))
    draw = ImageDraw.Draw(img)
    draw.rectangle((40, 40, 260, 260), fill=(200, 30, 30))
    draw.ellipse((320, 120, 600, 400), fill=(30, 60, 200))
    draw.polygon([(80, 440), (200, 300), (320, 440)], fill=(40, 160, 60))
    return img


def encode(img: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    return buffer.getvalue()
