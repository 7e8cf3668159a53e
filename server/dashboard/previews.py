"""What the asset page shows of the media itself: an HLS player for videos, the image variants for images.

URLs are relative (signed paths on this host), so the page works on whatever address the operator uses.
"""

from __future__ import annotations

from typing import Any

from mediasvc.delivery.embed import HLS_JS
from mediasvc.delivery.tokens import issue_token
from mediasvc.settings import Settings
from mediasvc.signing import sign_path

PLAYER_TOKEN_SECONDS = 4 * 3600
IMAGE_KINDS = ("image", "thumbnail", "poster", "pdf_thumbnail")


def preview_context(settings: Settings, asset: dict[str, Any], renditions: list[dict[str, Any]],
                    operator_email: str) -> dict[str, Any]:
    def signed(key: str) -> str:
        return sign_path(settings.secret_key, f"/media/serve/{key}",
                         expires_in=settings.storage.signed_url_ttl_seconds)

    player = None
    master = next((r for r in renditions if r["kind"] == "hls" and r["name"] == "master"), None)
    if master is not None and asset["status"] != "deleted":
        token, _ = issue_token(settings, asset["id"], f"operator:{operator_email}", ttl_seconds=PLAYER_TOKEN_SECONDS)
        poster = next((r for r in renditions if r["kind"] == "poster"), None)
        player = {"hls_url": f"/hls/{token}/{asset['id']}/master.m3u8", "hls_js": HLS_JS,
                  "poster_url": signed(poster["storage_key"]) if poster else None}
    images = [{"kind": r["kind"], "name": r["name"], "url": signed(r["storage_key"]), "width": r["width"],
               "height": r["height"], "content_type": r["content_type"], "size_bytes": r["size_bytes"]}
              for r in renditions if r["kind"] in IMAGE_KINDS]
    return {"player": player, "images": images}
