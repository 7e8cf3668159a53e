"""``GET /embed/{asset_id}?token=…``: a bare player page to put in an iframe (hls.js, captions from the master)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import msgspec
from litestar import Request, get
from litestar.params import FromPath, FromQuery
from litestar.response import Template

from mediasvc.delivery.api import authorize_playback, playback_info
from mediasvc.services import ServicesDep

HLS_JS = "vendor/hls-1.7.4.min.js"  # vendored from npm hls.js 1.7.4; see web/static/vendor/README.md


@get("/embed/{asset_id:uuid}", opt={"public": True}, include_in_schema=False)
async def embed_player(request: Request[Any, Any, Any], asset_id: FromPath[UUID], services: ServicesDep,
                       token: FromQuery[str | None] = None) -> Template:
    row, token, expires = await authorize_playback(request, services.settings, asset_id, token, "embed")
    # URLs on the origin this page was requested from: the player fetches playlists from the same host.
    here = msgspec.structs.replace(services.settings, cdn_base_url="", base_url=str(request.base_url).rstrip("/"))
    info = await playback_info(here, row, token, expires)
    return Template(template_name="embed.html", context={"info": info, "hls_js": HLS_JS,
                                                        "title": row["original_name"] or "mediasvc player"},
                    headers={"Cache-Control": "private, no-store"})  # embeddable: no frame-ancestors limit
