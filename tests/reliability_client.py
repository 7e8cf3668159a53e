"""The client side of the reliability battery: a tus client that keeps going the way a real one does (on an
error or a dropped connection it asks HEAD for the offset and resumes, on any instance), and the checks that
nothing was lost (originals, renditions, events)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import asyncpg
import httpx
import obstore

TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = {"Content-Type": "application/offset+octet-stream"}
ASSET_HEADER = "mediasvc-asset-id"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tus_metadata(filename: str, profile: str) -> str:
    pairs = {"filename": filename, "profile": profile}
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in pairs.items())


@dataclass
class Seen:
    """Every answer the client got (status codes, and the Retry-After of each 503)."""

    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: list[str | None] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)  # 5xx other than 503/507, with their bodies
    connection_errors: int = 0

    def note(self, response: httpx.Response) -> httpx.Response:
        self.statuses[response.status_code] += 1
        if response.status_code == 503:
            self.retry_after.append(response.headers.get("retry-after"))
        elif response.status_code >= 500 and response.status_code != 507:
            self.server_errors.append(f"{response.request.method} {response.request.url.path}: "
                                      f"{response.status_code} {response.text[:300]}")
        return response


class TusClient:
    """A tus client over several API instances: request ``n`` goes to ``bases[n % len(bases)]``."""

    def __init__(self, http: httpx.AsyncClient, bases: list[str], key: str, seen: Seen | None = None) -> None:
        self.http = http
        self.bases = bases
        self.auth = {"Authorization": f"Bearer {key}"}
        self.seen = seen or Seen()
        self._turn = 0

    def _base(self, base: str | None) -> str:
        if base is not None:
            return base
        self._turn += 1
        return self.bases[self._turn % len(self.bases)]

    async def request(self, method: str, path: str, *, base: str | None = None, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(method, self._base(base) + path, **kwargs)
        return self.seen.note(response)

    async def create(self, length: int, filename: str, profile: str, *, base: str | None = None) -> str:
        """The upload's path (``/api/v1/tus/<id>``)."""
        headers = {**TUS, **self.auth, "Upload-Length": str(length), "Upload-Metadata": tus_metadata(filename, profile)}
        response = await self.request("POST", "/api/v1/tus/", base=base, headers=headers)
        assert response.status_code == 201, response.text
        return urlparse(response.headers["location"]).path

    async def patch(self, path: str, offset: int, body: bytes, *, base: str | None = None) -> httpx.Response:
        headers = {**TUS, **OCTETS, **self.auth, "Upload-Offset": str(offset)}
        return await self.request("PATCH", path, base=base, headers=headers, content=body)

    async def head(self, path: str, *, base: str | None = None) -> httpx.Response:
        return await self.request("HEAD", path, base=base, headers={**TUS, **self.auth})

    async def upload(self, data: bytes, filename: str, profile: str, *, chunk: int, pause: float = 0.0,
                     deadline: float = 90.0) -> tuple[str, str]:
        """Upload ``data`` in ``chunk``-sized PATCHes (alternating instances), resuming after any failure.
        Returns (upload path, asset id)."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline
        path = await self._retrying(lambda: self.create(len(data), filename, profile), give_up)
        offset, asset_id = 0, None
        while asset_id is None:
            if loop.time() > give_up:
                raise AssertionError(f"upload {path} did not finish in {deadline} s (offset {offset}); "
                                     f"seen {self.seen}")
            try:
                response = await self.patch(path, offset, data[offset:offset + chunk])
            except httpx.TransportError:
                self.seen.connection_errors += 1
                response = None
            if response is not None and response.status_code == 204:
                offset = int(response.headers["upload-offset"])
                asset_id = response.headers.get(ASSET_HEADER)
                if offset < len(data) and pause:
                    await asyncio.sleep(pause)
                continue
            await asyncio.sleep(0.3)  # an error, a 409 or a dropped connection: ask where the upload stands
            offset, asset_id = await self._retrying(lambda: self._where(path), give_up)
        return path, asset_id

    async def _where(self, path: str) -> tuple[int, str | None]:
        response = await self.head(path)
        if response.status_code != 200:
            raise RuntimeError(f"HEAD {response.status_code}")
        return int(response.headers["upload-offset"]), response.headers.get(ASSET_HEADER)

    async def _retrying(self, call: Any, give_up: float) -> Any:
        loop = asyncio.get_running_loop()
        while True:
            try:
                return await call()
            except (httpx.TransportError, RuntimeError, AssertionError):
                if loop.time() > give_up:
                    raise
                await asyncio.sleep(0.3)


# --- what the database and the bucket hold ------------------------------------------------------------------


async def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def wait_for(probe: Any, timeout: float, what: str, poll: float = 0.2) -> Any:
    """Until ``await probe()`` returns something other than None (connection errors count as not yet)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while loop.time() < deadline:
        try:
            if (found := await probe()) is not None:
                return found
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            last = exc
        await asyncio.sleep(poll)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} ({last!r})")


async def wait_ready(database_url: str, asset_ids: list[str], timeout: float) -> float:
    """Wait until every asset is ``ready``; fail at once on ``failed``. Returns the seconds waited."""
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def all_ready() -> bool | None:
        rows = await query(database_url, "SELECT id::text, status, error FROM assets WHERE id = ANY($1::uuid[])",
                           asset_ids)
        failed = [(r["id"], r["error"]) for r in rows if r["status"] == "failed"]
        assert not failed, f"assets failed: {failed}"
        return True if len(rows) == len(asset_ids) and all(r["status"] == "ready" for r in rows) else None

    try:
        await wait_for(all_ready, timeout, f"{len(asset_ids)} assets to be ready")
    except AssertionError:
        states = await query(database_url, "SELECT a.id::text, a.status, j.step, j.status AS step_status, "
                             "j.attempts, j.error FROM assets a LEFT JOIN processing_jobs j ON j.asset = a.id "
                             "WHERE a.id = ANY($1::uuid[]) ORDER BY a.id, j.created_at", asset_ids)
        raise AssertionError(f"not all ready: {[dict(r) for r in states]}") from None
    return loop.time() - started


async def assert_nothing_lost(database_url: str, store: Any, expected: dict[str, str],
                              renditions: set[tuple[str, str]]) -> None:
    """For each asset (id → sha256 of the bytes the client sent): the row and the stored original have that
    sha256; every step succeeded; exactly one rendition per (kind, name), the expected set; and the bucket holds
    the original and those renditions under the asset's folder, nothing more (no second copy, no leftover)."""
    for asset_id, digest in expected.items():
        (asset,) = await query(database_url, "SELECT status, sha256, storage_key, size_bytes FROM assets "
                               "WHERE id = $1::uuid", asset_id)
        assert asset["status"] == "ready" and asset["sha256"] == digest, (asset_id, dict(asset))
        stored = bytes(await (await obstore.get_async(store, asset["storage_key"])).bytes_async())
        assert sha256(stored) == digest and len(stored) == asset["size_bytes"], asset_id
        steps = await query(database_url, "SELECT step, status FROM processing_jobs WHERE asset = $1::uuid",
                            asset_id)
        assert steps and all(s["status"] == "succeeded" for s in steps), [dict(s) for s in steps]
        rows = await query(database_url, "SELECT kind, name, storage_key FROM renditions WHERE asset = $1::uuid",
                           asset_id)
        names = [(r["kind"], r["name"]) for r in rows]
        assert sorted(names) == sorted(renditions), (asset_id, names)  # one set, no duplicates
        folder = asset["storage_key"].rsplit("/", 1)[0] + "/"
        listed = {meta["path"] for batch in obstore.list(store, prefix=folder) for meta in batch}
        assert listed == {asset["storage_key"], *(r["storage_key"] for r in rows)}, (asset_id, listed)


async def assert_events_delivered_once(database_url: str, tenant: str, receiver: Any, timeout: float) -> int:
    """Every event of the tenant's outbox reaches the webhook receiver, exactly once per event id. Returns how
    many events that was."""

    def delivered() -> Counter[str]:
        return Counter(request["headers"].get("webhook-id") or request["headers"].get("Webhook-Id")
                       for request in list(receiver.requests))

    async def all_delivered() -> list[str] | None:
        rows = await query(database_url, "SELECT e.id::text FROM events e JOIN tenants t ON t.id = e.tenant "
                           "WHERE t.slug = $1", tenant)
        ids = [r["id"] for r in rows]
        got = delivered()
        return ids if ids and all(got[i] >= 1 for i in ids) else None

    ids = await wait_for(all_delivered, timeout, "every event to reach the webhook receiver", poll=0.5)
    got = delivered()
    twice = {i: got[i] for i in ids if got[i] != 1}
    assert not twice, f"events delivered more than once: {twice}"
    bodies = [json.loads(r["body"]) for r in list(receiver.requests)]
    assert all(isinstance(b, dict) for b in bodies)
    return len(ids)
