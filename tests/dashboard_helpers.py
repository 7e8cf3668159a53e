"""Helpers shared by the dashboard tests: operators, signing in through the real form, seeded rows."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from mediasvc.auth import get_or_create_tenant
from mediasvc.dashboard.auth import create_operator
from mediasvc.tables import Asset, ProcessingJob

PASSWORD = "correct horse battery"
CSRF_RE = re.compile(r'name="_csrf" value="([^"]+)"')


async def make_operator(role: str = "admin", tenant: str | None = None) -> str:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    await create_operator(email, PASSWORD, role, tenant)
    return email


async def sign_in(http: httpx.AsyncClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the login form; returns the session's CSRF token (read from a page, as a browser would)."""
    form = await http.get("/dashboard/login")
    token = CSRF_RE.search(form.text).group(1)
    response = await http.post("/dashboard/login", data={"email": email, "password": password, "_csrf": token,
                                                          "next": "/dashboard"})
    assert response.status_code == 303, response.text
    page = await http.get("/dashboard")
    assert page.status_code == 200
    return CSRF_RE.search(page.text).group(1)


async def make_asset(tenant_slug: str | None = None, *, status: str = "ready", name: str = "answer.mp4",
                     profile: str = "video_response", kind: str = "video") -> dict[str, Any]:
    tenant_id = await get_or_create_tenant(tenant_slug or f"dash-{uuid.uuid4().hex[:8]}")
    row = Asset(tenant=tenant_id, profile=profile, kind=kind, original_name=name, status=status,
                size_bytes=1234, storage_key=f"t/{kind}/{uuid.uuid4()}/original.mp4", bucket="media")
    await row.save()
    return {"id": row.id, "tenant": tenant_id}


async def add_job(asset_id: uuid.UUID, step: str = "slow", status: str = "running", progress: float = 0.0) -> uuid.UUID:
    job = ProcessingJob(asset=asset_id, step=step, status=status, progress=progress)
    await job.save()
    return job.id
