"""The `image` and `pdf_thumbnail` processors (plugins/images): exact variant sizes, orientation, stripped metadata,
BlurHash, never upscaling, bad input failing permanently, and one end-to-end run through the job runner."""

from __future__ import annotations

import asyncio
import hashlib
import io
import struct
import uuid
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from mediasvc_images.images import ImageProcessor
from mediasvc_images.pdf import PdfThumbnailProcessor
from PIL import ExifTags, Image

from mediasvc.plugin import ProcessorResult
from mediasvc.processing import PermanentProcessingError
from mediasvc.settings import load_settings
from mediasvc.testing import make_context

BASE83 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz#$%*+,-.:;=?@[]^_{|}~"


def make_env(tmp_path: Path, backend: str = "local", **plugin_opts: Any):
    return load_settings(env={}, data_dir=str(tmp_path), secret_key="k", **{"storage.backend": backend},
                         plugins={"images": plugin_opts} if plugin_opts else {})


async def run_image(tmp_path: Path, data: bytes, ext: str, profile: str, backend: str = "local", **opts):
    ctx = await make_context(data, kind="image", profile=profile, extension=ext,
                             settings=make_env(tmp_path, backend, **opts))
    storage = ctx.storage
    result = await ImageProcessor().run(ctx)
    assert isinstance(result, ProcessorResult) and ctx.asset["metadata"] == {}  # reported, not written
    files = {o.name: await storage.get_bytes(o.storage_key) for o in result.renditions}
    return ctx, {o.name: o for o in result.renditions}, files, result.metadata


# --- generated media -----------------------------------------------------------------------------------------


NOISE_SEED = 1  # with this picture the corrupted JPEG below fails to decode, every run


def photo(width: int, height: int) -> Image.Image:
    """Photo-like content (noise over gradients). The noise is seeded: Pillow's effect_noise is not, and a
    different picture each run made the corrupt-JPEG test decode without an error now and then."""
    rng = np.random.default_rng(NOISE_SEED)
    noise = Image.fromarray(np.clip(rng.normal(128, 48, (height, width)), 0, 255).astype(np.uint8), "L")
    grad = Image.linear_gradient("L").resize((width, height))
    grad2 = Image.radial_gradient("L").resize((width, height))
    return Image.merge("RGB", (Image.blend(noise, grad, 0.6), grad2, Image.blend(noise, grad2, 0.5)))


def jpeg_with_exif(width: int = 4000, height: int = 3000, orientation: int = 6) -> bytes:
    img = photo(width, height)
    img.paste((255, 0, 0), (0, 0, width // 4, height // 4))  # a red block top-left in stored pixels
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    exif[ExifTags.Base.Make] = "TestCam"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (52.0, 31.0, 12.5)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (13.0, 24.0, 1.0)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif)
    return buf.getvalue()


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR (correct CRC) declares width x height, followed by a tiny IDAT and IEND."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


def assert_no_exif(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as im:
        assert not im.getexif(), "EXIF survived"
        assert "exif" not in im.info and "xmp" not in im.info
        assert b"Exif\x00\x00" not in data and b"TestCam" not in data


def assert_blurhash(value: str) -> None:
    assert isinstance(value, str) and set(value) <= set(BASE83)
    size_flag = BASE83.index(value[0])
    nx, ny = size_flag % 9 + 1, size_flag // 9 + 1
    assert (nx, ny) == (4, 3)
    assert len(value) == 4 + 2 * nx * ny  # 28 characters for 4x3 components


# --- the image processor -------------------------------------------------------------------------------------


async def test_question_image_from_an_oriented_12mp_jpeg(tmp_path):
    source = jpeg_with_exif()
    with Image.open(io.BytesIO(source)) as im:  # the source really carries orientation 6 and GPS
        assert im.size == (4000, 3000) and im.getexif()[ExifTags.Base.Orientation] == 6
        assert im.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    ctx, outs, files, meta = await run_image(tmp_path, source, "jpg", "question_image")
    # orientation 6: the 4000x3000 landscape is a 3000x4000 portrait
    assert {n: (o.width, o.height) for n, o in outs.items()} == {
        "display": (810, 1080), "thumbnail": (150, 150), "medium": (450, 600), "large": (900, 1200)}
    for name, out in outs.items():
        assert out.kind == "image" and out.content_type == "image/webp"
        assert out.storage_key == ctx.asset["storage_key"].rsplit("/", 1)[0] + f"/{name}.webp"
        assert out.size_bytes == len(files[name]) > 0
        with Image.open(io.BytesIO(files[name])) as im:
            assert im.format == "WEBP" and im.size == (out.width, out.height)
        assert_no_exif(files[name])
    # the red block stored top-left is top-right once rotated 90° clockwise
    with Image.open(io.BytesIO(files["large"])) as im:
        rgb = im.convert("RGB")
        r, g, b = rgb.getpixel((im.width - 40, 40))
        assert r > 200 and g < 60 and b < 60
        r, g, b = rgb.getpixel((40, 40))
        assert not (r > 200 and g < 60)
    assert (meta["width"], meta["height"]) == (3000, 4000)
    assert_blurhash(meta["blurhash"])
    assert ctx.progress_seen[-1] == 100


async def test_avatar_is_a_256_jpeg_crop_and_a_150_webp(tmp_path):
    source = jpeg_with_exif(1600, 900, orientation=1)
    _, outs, files, meta = await run_image(tmp_path, source, "jpg", "avatar")
    assert {n: (o.width, o.height, o.content_type) for n, o in outs.items()} == {
        "avatar": (256, 256, "image/jpeg"), "thumbnail": (150, 150, "image/webp")}
    assert outs["avatar"].storage_key.endswith("/avatar.jpg")
    with Image.open(io.BytesIO(files["avatar"])) as im:
        assert im.format == "JPEG" and im.mode == "RGB"
    for data in files.values():
        assert_no_exif(data)
    assert (meta["width"], meta["height"]) == (1600, 900)


async def test_png_with_alpha_keeps_alpha_and_is_not_upscaled(tmp_path):
    img = photo(800, 500).convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize((800, 500)))
    _, outs, files, meta = await run_image(tmp_path, png_bytes(img), "png", "some_other_profile")
    assert {n: (o.width, o.height) for n, o in outs.items()} == {
        "thumbnail": (150, 150), "medium": (600, 375), "large": (800, 500)}  # 1200 fit would upscale: kept
    with Image.open(io.BytesIO(files["large"])) as im:
        assert im.format == "WEBP" and im.mode == "RGBA"
    assert_blurhash(meta["blurhash"])


async def test_small_images_are_never_upscaled(tmp_path):
    small = png_bytes(photo(100, 80))
    _, outs, _, _ = await run_image(tmp_path, small, "png", "question_image")
    assert {n: (o.width, o.height) for n, o in outs.items()} == {
        "display": (100, 80), "thumbnail": (80, 80), "medium": (100, 80), "large": (100, 80)}
    _, outs, _, _ = await run_image(tmp_path, small, "png", "avatar")
    assert {n: (o.width, o.height) for n, o in outs.items()} == {"avatar": (80, 80), "thumbnail": (80, 80)}


async def test_animated_gif_uses_the_first_frame(tmp_path):
    frames = [Image.new("RGB", (300, 200), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    _, outs, files, meta = await run_image(tmp_path, buf.getvalue(), "gif", "question_image")
    assert (outs["large"].width, outs["large"].height) == (300, 200)
    with Image.open(io.BytesIO(files["large"])) as im:
        assert getattr(im, "n_frames", 1) == 1
        r, g, b = im.convert("RGB").getpixel((150, 100))
        assert r > 200 and g < 50 and b < 50  # red: frame 0
    assert meta["image"] == {"format": "GIF", "frames": 3}


async def test_avif_option_and_non_local_storage(tmp_path):
    """With `avif` on, `large` is also written as AVIF; a backend without local files is streamed to a temp file."""
    source = png_bytes(photo(1500, 1000))
    _, outs, files, _ = await run_image(tmp_path, source, "png", "question_image", backend="memory",
                                        avif=True)
    assert outs["large_avif"].content_type == "image/avif"
    assert outs["large_avif"].storage_key.endswith("/large.avif")
    with Image.open(io.BytesIO(files["large_avif"])) as im:
        assert im.format == "AVIF" and im.size == (1200, 800)


BAD_IMAGES = {
    "zero bytes": (b"", "jpg"),
    "text named .png": (b"hello, I am not a picture\n" * 20, "png"),
    "png declaring 100 MP": (png_header_only(10_000, 10_000), "png"),
    "png declaring 400 MP": (png_header_only(20_000, 20_000), "png"),
    "absurd dimensions": (png_header_only(1, 1_000_000), "png"),
    "zero width": (png_header_only(0, 100), "png"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', "png"),
}


@pytest.mark.parametrize("case", list(BAD_IMAGES))
async def test_bad_images_fail_permanently(tmp_path, case):
    data, ext = BAD_IMAGES[case]
    with pytest.raises(PermanentProcessingError):
        await run_image(tmp_path, data, ext, "question_image")


async def test_truncated_and_corrupt_jpegs_fail_permanently(tmp_path):
    good = jpeg_with_exif(1200, 900, orientation=1)
    with pytest.raises(PermanentProcessingError):
        await run_image(tmp_path, good[: len(good) // 2], "jpg", "question_image")
    corrupt = good[:2000] + bytes(range(256)) * 40 + good[12240:]
    with pytest.raises(PermanentProcessingError):
        await run_image(tmp_path, corrupt[:-5000], "jpg", "question_image")


async def test_srgb_icc_profile_is_kept_and_exif_dropped(tmp_path):
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    buf = io.BytesIO()
    photo(900, 600).save(buf, "JPEG", icc_profile=icc, exif=Image.Exif())
    _, _, files, _ = await run_image(tmp_path, buf.getvalue(), "jpg", "avatar")
    with Image.open(io.BytesIO(files["avatar"])) as im:
        assert im.info.get("icc_profile") == icc


async def test_pixel_limit_comes_from_settings(tmp_path):
    source = png_bytes(photo(1000, 1000))  # 1 MP
    with pytest.raises(PermanentProcessingError, match="too large|more than the limit"):
        await run_image(tmp_path, source, "png", "question_image", max_pixels=500_000)
    _, outs, _, _ = await run_image(tmp_path, source, "png", "question_image", max_pixels=2_000_000)
    assert outs["large"].width == 1000


# --- the PDF processor ---------------------------------------------------------------------------------------


async def run_pdf(tmp_path: Path, data: bytes, **opts):
    ctx = await make_context(data, kind="document", profile="interview_attachment", extension="pdf",
                             settings=make_env(tmp_path, **opts))
    storage = ctx.storage
    result = await PdfThumbnailProcessor().run(ctx)
    assert isinstance(result, ProcessorResult) and ctx.asset["metadata"] == {}  # reported, not written
    outs = result.renditions
    return (ctx, {o.name: o for o in outs}, {o.name: await storage.get_bytes(o.storage_key) for o in outs},
            result.metadata)


def pillow_pdf(pages: int = 3, size=(600, 800)) -> bytes:
    imgs = [photo(*size) for _ in range(pages)]
    buf = io.BytesIO()
    imgs[0].save(buf, "PDF", save_all=True, append_images=imgs[1:], resolution=72.0)
    return buf.getvalue()


async def test_pdf_first_page_thumbnail_and_preview(tmp_path):
    _, outs, files, meta = await run_pdf(tmp_path, pillow_pdf())
    assert (outs["default"].kind, outs["default"].width, outs["default"].height) == ("thumbnail", 320, 427)
    assert (outs["preview"].kind, outs["preview"].width, outs["preview"].height) == ("image", 1200, 1600)
    assert outs["default"].storage_key.endswith("/thumb.jpg")
    for out in outs.values():
        with Image.open(io.BytesIO(files[out.name])) as im:
            assert im.format == "JPEG" and im.size == (out.width, out.height)
    assert meta["page_count"] == 3 and meta["pdf"]["page_count"] == 3


async def test_pdf_giant_page_render_is_capped(tmp_path):
    import pypdfium2 as pdfium

    pdf = pdfium.PdfDocument.new()
    pdf.new_page(100, 14_400).close()  # 1200 px wide would be a 1200 x 172 800 bitmap
    buf = io.BytesIO()
    pdf.save(buf)
    pdf.close()
    _, outs, _, meta = await run_pdf(tmp_path, buf.getvalue())
    preview = outs["preview"]
    assert preview.width * preview.height <= 12_000_000
    assert preview.width < 1200 and outs["default"].width <= 320
    assert meta["page_count"] == 1


def encrypted_pdf() -> bytes:
    """A one-page PDF encrypted with the standard security handler (RC4 40-bit, R2) and user password "secret"."""

    def rc4(key: bytes, data: bytes) -> bytes:
        s = list(range(256))
        j = 0
        for i in range(256):
            j = (j + s[i] + key[i % len(key)]) % 256
            s[i], s[j] = s[j], s[i]
        out, i, j = bytearray(), 0, 0
        for byte in data:
            i = (i + 1) % 256
            j = (j + s[i]) % 256
            s[i], s[j] = s[j], s[i]
            out.append(byte ^ s[(s[i] + s[j]) % 256])
        return bytes(out)

    pad = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")
    doc_id = b"0123456789abcdef"
    owner_key = hashlib.md5((b"owner" + pad)[:32]).digest()[:5]
    o_value = rc4(owner_key, (b"secret" + pad)[:32])
    permissions = -4
    key = hashlib.md5((b"secret" + pad)[:32] + o_value + struct.pack("<i", permissions) + doc_id).digest()[:5]
    u_value = rc4(key, pad)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>",
               b"<< /Filter /Standard /V 1 /R 2 /O <" + o_value.hex().encode() + b"> /U <" + u_value.hex().encode()
               + b"> /P " + str(permissions).encode() + b" >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (b"trailer\n<< /Size %d /Root 1 0 R /Encrypt 4 0 R /ID [<" % (len(objects) + 1) + doc_id.hex().encode()
            + b"> <" + doc_id.hex().encode() + b">] >>\nstartxref\n%d\n%%%%EOF\n" % xref)
    return bytes(out)


BAD_PDFS = {
    "zero bytes": b"",
    "not a pdf": b"MZ\x90\x00 this is an exe" * 50,
    "corrupt pdf": b"%PDF-1.4\n" + b"x" * 5000,
    "encrypted": encrypted_pdf(),
}


@pytest.mark.parametrize("case", list(BAD_PDFS))
async def test_bad_pdfs_fail_permanently(tmp_path, case):
    with pytest.raises(PermanentProcessingError) as info:
        await run_pdf(tmp_path, BAD_PDFS[case])
    if case == "encrypted":
        assert "encrypted" in str(info.value)


# --- end to end through the job runner -----------------------------------------------------------------------


async def test_end_to_end_avatar_question_image_and_pdf_become_ready(make_settings):
    from mediasvc.app import create_app
    from mediasvc.auth import get_or_create_tenant
    from mediasvc.ingest.assets import create_uploaded_asset, reserve_key
    from mediasvc.tables import Asset, ProcessingJob, Rendition
    from tests.conftest import serve_in_process

    settings = make_settings(**{"run_worker_in_app": True, "queue.name": f"img-{uuid.uuid4().hex[:8]}"})
    app = create_app(settings)
    cases = {"avatar": ("jpg", jpeg_with_exif(1200, 900, orientation=6), "image/jpeg"),
             "bomb": ("png", png_header_only(10_000, 10_000), "image/png"),
             "question_image": ("png", png_bytes(photo(2400, 1200)), "image/png"),
             "interview_attachment": ("pdf", pillow_pdf(2), "application/pdf")}
    async with serve_in_process(app):
        services = app.state.services
        assert {"image", "pdf_thumbnail"} <= set(services.host.processors)
        tenant = await get_or_create_tenant(f"img-{uuid.uuid4().hex[:6]}")
        ids = {}
        for name, (ext, data, ctype) in cases.items():
            profile = name
            profile = "question_image" if profile == "bomb" else profile
            asset_id, key = reserve_key("img", settings.profiles[profile], ext)
            await services.storage.put(key, data)
            ids[name] = await create_uploaded_asset(
                services, asset_id=asset_id, tenant_id=tenant, profile_name=profile, original_name=f"x.{ext}",
                storage_key=key, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest(),
                content_type=ctype, method="test")
        deadline = asyncio.get_running_loop().time() + 30
        rows = {}
        while asyncio.get_running_loop().time() < deadline:
            rows = {p: await Asset.select().where(Asset.id == i).output(load_json=True).first()
                    for p, i in ids.items()}
            if all(r["status"] in ("ready", "failed") for r in rows.values()):
                break
            await asyncio.sleep(0.1)
        bomb = rows.pop("bomb")
        assert bomb["status"] == "failed" and "image: image too large" in bomb["error"]
        bomb_jobs = await ProcessingJob.select().where(ProcessingJob.asset == ids.pop("bomb"))
        assert [(j["status"], j["attempts"]) for j in bomb_jobs] == [("failed", 1)]  # no retry loop
        for profile, row in rows.items():
            assert row["status"] == "ready", (profile, row["status"], row["error"])
        renditions = {p: {(r["kind"], r["name"]): (r["width"], r["height"], r["content_type"])
                          for r in await Rendition.select().where(Rendition.asset == i)} for p, i in ids.items()}
        assert renditions["avatar"] == {("image", "avatar"): (256, 256, "image/jpeg"),
                                        ("image", "thumbnail"): (150, 150, "image/webp")}
        assert renditions["question_image"] == {
            ("image", "display"): (1920, 960, "image/webp"), ("image", "thumbnail"): (150, 150, "image/webp"),
            ("image", "medium"): (600, 300, "image/webp"), ("image", "large"): (1200, 600, "image/webp")}
        assert renditions["interview_attachment"] == {("thumbnail", "default"): (320, 427, "image/jpeg"),
                                                      ("image", "preview"): (1200, 1600, "image/jpeg")}
        meta = rows["avatar"]["metadata"]
        assert (meta["width"], meta["height"]) == (900, 1200)  # orientation 6 applied
        assert_blurhash(meta["blurhash"])
        assert rows["interview_attachment"]["metadata"]["page_count"] == 2
        jobs = await ProcessingJob.select().where(ProcessingJob.asset == ids["question_image"])
        assert [(j["step"], j["status"], j["attempts"]) for j in jobs] == [("image", "succeeded", 1)]
