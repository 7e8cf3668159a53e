"""Sign in and sign out."""

from __future__ import annotations

import secrets
from typing import Any
from urllib.parse import quote

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Redirect, Template

from mediasvc.dashboard import auth
from mediasvc.dashboard.render import render


def _secure(request: Request[Any, Any, Any]) -> bool:
    return request.url.scheme == "https" or request.app.state.services.settings.base_url.startswith("https://")


def _safe_next(value: str | None) -> str:
    """Only a dashboard path: never an open redirect to another site."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard"


def login_redirect(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Exception handler for ``LoginRequired``: pages go to the login form, htmx follows ``HX-Redirect``."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    url = f"/dashboard/login?next={quote(target if request.method == 'GET' else '/dashboard')}"
    if request.headers.get("hx-request") == "true":
        return Response("", status_code=401, headers={"HX-Redirect": url})
    return Redirect(url, status_code=303)


class AuthController(Controller):
    path = "/dashboard"
    include_in_schema = False

    @get("/login", opt={"public": True})
    async def login_form(self, request: HTMXRequest, next: str | None = None) -> Template:
        return self._form(request, _safe_next(next), error=None, status_code=200)

    @post("/login", opt={"public": True}, guards=[auth.login_csrf_guard], status_code=303)
    async def login(self, request: HTMXRequest) -> Response[Any]:
        form = await request.form()
        token = await auth.login(str(form.get("email", "")), str(form.get("password", "")))
        target = _safe_next(str(form.get("next", "")))
        if token is None:
            return self._form(request, target, error="Wrong email or password.", status_code=401,
                              email=str(form.get("email", "")))
        cookie = Cookie(key=auth.COOKIE, value=token, httponly=True, samesite="lax", secure=_secure(request),
                        path="/dashboard", max_age=int(auth.SESSION_TTL.total_seconds()))
        return Redirect(target, status_code=303, cookies=[cookie])

    @post("/logout", status_code=303)
    async def logout(self, request: HTMXRequest) -> Response[Any]:
        await auth.logout(request.cookies.get(auth.COOKIE))
        response = Redirect("/dashboard/login", status_code=303)
        response.delete_cookie(auth.COOKIE, path="/dashboard")
        return response

    def _form(self, request: HTMXRequest, target: str, *, error: str | None, status_code: int,
              email: str = "") -> Template:
        csrf = secrets.token_urlsafe(24)
        template = render(request, "login.html", None, status_code=status_code, next=target, error=error,
                          email=email, csrf_token=csrf)
        template.cookies.append(Cookie(key=auth.LOGIN_CSRF_COOKIE, value=csrf, httponly=True, samesite="lax",
                                       secure=_secure(request), path="/dashboard/login", max_age=3600))
        return template
