"""Playback endpoints: mint playback tokens, and everything a player needs to play an asset."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any
from uuid import UUID

from litestar import Controller, Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.status_codes import HTTP_201_CREATED

from mediasvc.auth import PrincipalDep, authenticate
from mediasvc.delivery.hls import client_ip
from mediasvc.delivery.progressive import browser_playable
from mediasvc.delivery.tokens import issue_token, verify_token
from mediasvc.errors import NotFound, Unauthorized, ValidationFailed
from mediasvc.media_urls import serve_url
from mediasvc.openapi_doc import openapi_opt
from mediasvc.schemas import CaptionTrack, PlaybackInfo, PlaybackToken, PlaybackTokenRequest, PlaybackVariant
from mediasvc.services import ServicesDep
from mediasvc.settings import Settings
from mediasvc.tables import Asset, Rendition


def hls_url(settings: Settings, token: str, asset_id: UUID) -> str:
    return f"{settings.public_base_url}/hls/{token}/{asset_id}/master.m3u8"


def playback_url(settings: Settings, token: str, asset_id: UUID) -> str:
    return f"{settings.public_base_url}/api/v1/playback/{asset_id}?token={token}"


async def _asset(asset_id: UUID, tenant_id: UUID | None = None) -> dict[str, Any]:
    query = Asset.select().where(Asset.id == asset_id, Asset.status != "deleted")
    if tenant_id is not None:
        query = query.where(Asset.tenant == tenant_id)
    row = await query.output(load_json=True).first()
    if row is None:
        raise NotFound(f"Asset {asset_id} not found", details={"asset_id": str(asset_id)})
    return row


class PlaybackController(Controller):
    tags = ["playback"]

    @post("/assets/{asset_id:uuid}/playback-tokens", status_code=HTTP_201_CREATED,
          summary="Mint a playback token: HMAC-signed, expiring, bound to the asset and a subject (and an IP)")
    async def create_token(self, asset_id: FromPath[UUID], data: JSONBody[PlaybackTokenRequest],
                           principal: PrincipalDep, services: ServicesDep) -> PlaybackToken:
        settings = services.settings
        await _asset(asset_id, principal.tenant_id)
        ttl = data.ttl_seconds if data.ttl_seconds is not None else settings.playback.default_ttl_seconds
        if not 1 <= ttl <= settings.playback.max_ttl_seconds:
            raise ValidationFailed(f"ttl_seconds must be 1-{settings.playback.max_ttl_seconds}",
                                   details={"ttl_seconds": ttl})
        if not data.subject.strip() or len(data.subject) > 200:
            raise ValidationFailed("subject must be 1-200 characters")
        token, expires = issue_token(settings, asset_id, data.subject, ttl_seconds=ttl, ip=data.ip)
        return PlaybackToken(token=token, asset_id=asset_id, subject=data.subject,
                             expires_at=datetime.fromtimestamp(expires, timezone.utc),
                             hls_url=hls_url(settings, token, asset_id),
                             playback_url=playback_url(settings, token, asset_id))

    @get("/playback/{asset_id:uuid}", opt=openapi_opt(public=True, errors=[401, 403, 409]),
         summary="Playback info: with an API key, a playback token (?token=), or none for public profiles")
    async def playback(self, request: Request[Any, Any, Any], asset_id: FromPath[UUID], services: ServicesDep,
                       token: FromQuery[str | None] = None, subject: FromQuery[str] = "api") -> PlaybackInfo:
        row, token, expires = await authorize_playback(request, services.settings, asset_id, token, subject)
        return await playback_info(services.settings, row, token, expires)


async def authorize_playback(request: Request[Any, Any, Any], settings: Settings, asset_id: UUID,
                             token: str | None, subject: str = "api") -> tuple[dict[str, Any], str, int]:
    """(asset row, a token to play it with, its expiry) for a caller with an API key of the asset's tenant, a valid
    playback token, or nothing when the asset's profile is public; otherwise 401/403/404 in the error envelope."""
    authorization = request.headers.get("authorization")
    ttl = settings.playback.default_ttl_seconds
    if authorization:
        principal = await authenticate(authorization)
        row = await _asset(asset_id, principal.tenant_id)
        token, expires = issue_token(settings, asset_id, subject, ttl_seconds=ttl)
    elif token:
        expires = verify_token(settings, token, asset_id, client_ip=client_ip(request, settings)).e
        row = await _asset(asset_id)
    else:
        row = await _asset(asset_id)
        profile = settings.profiles.get(row["profile"])
        if profile is None or not profile.public:
            raise Unauthorized("This asset plays with a playback token (?token=) or an API key",
                               headers={"WWW-Authenticate": "Bearer"})
        token, expires = issue_token(settings, asset_id, "public", ttl_seconds=ttl)
    return row, token, expires


async def playback_info(settings: Settings, row: dict[str, Any], token: str, expires: int) -> PlaybackInfo:
    renditions = await Rendition.select().where(Rendition.asset == row["id"]).output(load_json=True)
    ttl = max(60, min(expires - int(datetime.now(timezone.utc).timestamp()), settings.storage.signed_url_ttl_seconds))

    def url(kind: str, name: str = "default") -> str | None:
        found = next((r for r in renditions if r["kind"] == kind and r["name"] == name), None)
        return serve_url(settings, found["storage_key"], expires_in=ttl) if found else None

    has_hls = any(r["kind"] == "hls" and r["name"] == "master" for r in renditions)
    variants = sorted((PlaybackVariant(name=r["name"], width=r["width"], height=r["height"], bandwidth=r["bitrate"])
                       for r in renditions if r["kind"] == "hls" and r["name"] != "master"),
                      key=lambda v: (v.bandwidth or 0, v.height or 0))
    captions = [CaptionTrack(language=(r["metadata"] or {}).get("language") or r["name"].split(".")[0],
                             format=PurePosixPath(r["storage_key"]).suffix.lstrip("."),
                             url=serve_url(settings, r["storage_key"], expires_in=ttl))
                for r in renditions if r["kind"] == "captions"]
    probe = (row["metadata"] or {}).get("probe") or {}
    original = serve_url(settings, row["storage_key"], expires_in=ttl) if row["status"] not in (
        "pending", "uploading") and not (row["metadata"] or {}).get("original_deleted_at") else None
    return PlaybackInfo(
        asset_id=row["id"], kind=row["kind"], status=row["status"], duration_seconds=probe.get("duration"),
        hls_url=hls_url(settings, token, row["id"]) if has_hls else None, mp4_url=url("mp4"),
        thumbnail_url=url("thumbnail"), poster_url=url("poster"), original_url=original, captions=captions,
        variants=variants,
        token_expires_at=datetime.fromtimestamp(expires, timezone.utc) if has_hls else None,
        ready_renditions=[v.name for v in variants] if has_hls else [],
        progressive_url=original if original and browser_playable(row) else None,
    )
