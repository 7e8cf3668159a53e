"""S3 multipart uploads for presigned direct uploads, signed here: obstore signs only plain object URLs
(``obstore.sign`` takes a path, no ``?partNumber=&uploadId=`` query) and has no Python API for a multipart upload
that someone else writes. So this module does SigV4 *query* presigning itself (``presign_url``) and uses the same
kind of URL, server side, for CreateMultipartUpload, ListParts, CompleteMultipartUpload and AbortMultipartUpload.

The object URL (scheme, host, path style, key encoding) is taken from ``obstore.sign`` so it is exactly the one
obstore would use; only the query and signature are ours. Needs static credentials (access key id and secret) in
the store config; with an instance role or other credential provider ``S3Multipart.for_storage`` returns None.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit
from xml.etree import ElementTree

import httpx
import msgspec
import obstore

from mediasvc.errors import Conflict, ServiceUnavailable

ALGORITHM = "AWS4-HMAC-SHA256"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
MAX_PARTS = 10_000  # S3's limit per multipart upload
MIN_PART_BYTES = 5 * 1024 * 1024  # S3's minimum for every part but the last
REQUEST_TIMEOUT_SECONDS = 30.0


class Credentials(msgspec.Struct, frozen=True):
    access_key_id: str
    secret_access_key: str
    region: str
    token: str | None = None


def _uri_encode(value: str) -> str:
    return quote(value, safe="-_.~")


def presign_url(
    object_url: str, method: str, creds: Credentials, *, expires_in: int, query: dict[str, str] | None = None,
    now: float | None = None,
) -> str:
    """SigV4 query-presign ``method object_url?query`` (only the ``host`` header is signed; the payload is
    ``UNSIGNED-PAYLOAD``). ``object_url`` is an already-encoded object URL without a query."""
    parts = urlsplit(object_url)
    stamp = time.gmtime(now if now is not None else time.time())
    amz_date = time.strftime("%Y%m%dT%H%M%SZ", stamp)
    date = amz_date[:8]
    scope = f"{date}/{creds.region}/s3/aws4_request"
    params = dict(query or {})
    params.update({
        "X-Amz-Algorithm": ALGORITHM,
        "X-Amz-Credential": f"{creds.access_key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires_in),
        "X-Amz-SignedHeaders": "host",
    })
    if creds.token:
        params["X-Amz-Security-Token"] = creds.token
    canonical_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in sorted(params.items()))
    canonical_request = "\n".join([
        method.upper(), parts.path or "/", canonical_query, f"host:{parts.netloc}\n", "host", UNSIGNED_PAYLOAD,
    ])
    string_to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical_request.encode()).hexdigest()])
    key = ("AWS4" + creds.secret_access_key).encode()
    for item in (date, creds.region, "s3", "aws4_request"):
        key = hmac.new(key, item.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return urlunsplit(parts._replace(query=f"{canonical_query}&X-Amz-Signature={signature}"))


class Part(msgspec.Struct, frozen=True):
    part_number: int
    etag: str
    size: int


def plan_parts(size: int, preferred_part_bytes: int) -> tuple[int, int]:
    """(part size, part count) for ``size`` bytes: at least the preferred size (and S3's 5 MiB), few enough parts
    for S3's 10 000, rounded up to whole MiB."""
    mib = 1024 * 1024
    part = max(preferred_part_bytes, MIN_PART_BYTES, -(-size // MAX_PARTS))
    part = -(-part // mib) * mib
    return part, max(1, -(-size // part))


class S3Multipart:
    """Multipart upload operations on one S3 store, through URLs signed with its static credentials."""

    def __init__(self, store: Any, creds: Credentials) -> None:
        self.store = store
        self.creds = creds

    @classmethod
    def for_storage(cls, storage: Any) -> S3Multipart | None:
        """None unless ``storage`` is the s3 backend with static credentials."""
        if getattr(storage, "name", "") != "s3":
            return None
        store = storage.store
        config = dict(store.config)
        access, secret = config.get("access_key_id"), config.get("secret_access_key")
        if not access or not secret:
            return None
        token = config.get("token") or config.get("session_token")
        return cls(store, Credentials(access, secret, config.get("region") or "us-east-1", token))

    async def object_url(self, key: str) -> str:
        signed = await obstore.sign_async(self.store, "GET", key, timedelta(seconds=60))
        return urlunsplit(urlsplit(signed)._replace(query=""))

    async def sign(self, key: str, method: str, *, expires_in: int, query: dict[str, str] | None = None) -> str:
        return presign_url(await self.object_url(key), method, self.creds, expires_in=expires_in, query=query)

    async def _call(self, key: str, method: str, query: dict[str, str], *, content: bytes | None = None,
                    headers: dict[str, str] | None = None) -> httpx.Response:
        url = await self.sign(key, method, expires_in=300, query=query)
        try:
            async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_SECONDS) as http:
                return await http.request(method, url, content=content, headers=headers)
        except httpx.HTTPError as exc:
            raise ServiceUnavailable(f"object store unreachable: {type(exc).__name__}") from exc

    async def create(self, key: str, content_type: str) -> str:
        """Start a multipart upload; returns its UploadId."""
        response = await self._call(key, "POST", {"uploads": ""}, headers={"Content-Type": content_type})
        if response.status_code != 200:
            raise ServiceUnavailable(f"object store refused CreateMultipartUpload ({response.status_code})",
                                     details={"body": response.text[:300]})
        upload_id = _find_text(response.content, "UploadId")
        if not upload_id:
            raise ServiceUnavailable("object store returned no UploadId")
        return upload_id

    async def part_urls(self, key: str, upload_id: str, count: int, *, expires_in: int) -> list[str]:
        base = await self.object_url(key)
        return [presign_url(base, "PUT", self.creds, expires_in=expires_in,
                            query={"partNumber": str(n), "uploadId": upload_id}) for n in range(1, count + 1)]

    async def list_parts(self, key: str, upload_id: str) -> list[Part] | None:
        """Every uploaded part (all pages), or None when the upload no longer exists (completed or aborted)."""
        parts: list[Part] = []
        marker = "0"
        while True:
            response = await self._call(key, "GET", {"uploadId": upload_id, "part-number-marker": marker,
                                                      "max-parts": "1000"})
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise ServiceUnavailable(f"object store refused ListParts ({response.status_code})")
            root = ElementTree.fromstring(response.content)
            for element in root.iter():
                if _local(element.tag) == "Part":
                    fields = {_local(child.tag): (child.text or "") for child in element}
                    parts.append(Part(int(fields["PartNumber"]), fields["ETag"], int(fields.get("Size") or 0)))
            truncated = (_find_text(response.content, "IsTruncated") or "false").lower() == "true"
            next_marker = _find_text(response.content, "NextPartNumberMarker")
            if not truncated or not next_marker or next_marker == marker:
                return sorted(parts, key=lambda p: p.part_number)
            marker = next_marker

    async def complete(self, key: str, upload_id: str, parts: list[Part]) -> None:
        body = "".join(f"<Part><PartNumber>{p.part_number}</PartNumber><ETag>{_xml_escape(p.etag)}</ETag></Part>"
                       for p in parts)
        xml = f'<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{body}' \
              "</CompleteMultipartUpload>"
        response = await self._call(key, "POST", {"uploadId": upload_id}, content=xml.encode(),
                                    headers={"Content-Type": "application/xml"})
        # S3 may answer 200 with an <Error> body when completion fails late.
        if response.status_code != 200 or _local(ElementTree.fromstring(response.content).tag) == "Error":
            code = _find_text(response.content, "Code") if response.content else ""
            raise Conflict(f"the object store refused to complete the multipart upload ({code or response.status_code})",
                           details={"code": code, "status": response.status_code})

    async def abort(self, key: str, upload_id: str) -> None:
        """Abort; an upload that is already gone is fine."""
        response = await self._call(key, "DELETE", {"uploadId": upload_id})
        if response.status_code not in (200, 204, 404):
            raise ServiceUnavailable(f"object store refused AbortMultipartUpload ({response.status_code})")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _find_text(xml: bytes, name: str) -> str | None:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError:
        return None
    for element in root.iter():
        if _local(element.tag) == name:
            return element.text or ""
    return None


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
