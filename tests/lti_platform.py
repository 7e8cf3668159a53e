"""A scriptable LTI 1.3 platform for tests: its own RSA keys, a JWKS and an OIDC authorization endpoint served on
loopback by a real HTTP server in a thread, and id_tokens signed (pyjwt) with any claim or header changed.

The flow a browser runs: ``GET /lti/login`` on the tool → 302 to this platform's ``/auth`` → an auto-posting form
with ``id_token`` and ``state`` → ``POST /lti/launch`` on the tool. ``launch_via_browser`` does exactly that.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

LTI = "https://purl.imsglobal.org/spec/lti/claim/"
DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
INSTRUCTOR_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Instructor"
LEARNER_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"
ADMIN_ROLE = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#Administrator"


_KEY_POOL: list[Any] = []
_KEY_POOL_SIZE = 3
_KEY_TURN = itertools.count()


@dataclass
class SigningKey:
    kid: str
    private: Any

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh kid on the next of a few RSA keys made once (generating 2048-bit keys is the slow part);
        two keys generated one after the other always differ."""
        if len(_KEY_POOL) < _KEY_POOL_SIZE:
            _KEY_POOL.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
            private = _KEY_POOL[-1]
        else:
            private = _KEY_POOL[next(_KEY_TURN) % _KEY_POOL_SIZE]
        return cls(kid=uuid.uuid4().hex[:12], private=private)

    def jwk(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "alg": "RS256", "use": "sig"}


@dataclass(frozen=True)
class User:
    sub: str
    name: str
    email: str
    roles: tuple[str, ...]


INSTRUCTOR = User("instr-1", "Ada Instructor", "ada@example.edu", (INSTRUCTOR_ROLE,))
LEARNER = User("learner-1", "Lin Learner", "lin@example.edu", (LEARNER_ROLE,))


@dataclass
class Platform:
    """The LMS. ``published`` keys are in its JWKS; ``key`` signs unless told otherwise."""

    # unique per platform: registrations are unique by (issuer, client_id) across tenants, and the issuer's
    # loopback port can be reused by a later test's platform while the earlier registration is still stored
    client_id: str = field(default_factory=lambda: f"mediasvc-tool-{uuid.uuid4().hex[:8]}")
    deployment_id: str = "deployment-1"
    tool_launch_url: str = "https://testserver/lti/launch"
    key: SigningKey = field(default_factory=SigningKey.generate)
    published: list[SigningKey] = field(default_factory=list)
    jwks_requests: int = 0
    auth_requests: list[dict[str, str]] = field(default_factory=list)
    registration_requests: list[dict[str, Any]] = field(default_factory=list)
    # what the next /auth answer launches: a user, a message type and claim changes (None removes a claim)
    next_user: User = INSTRUCTOR
    next_message_type: str = "LtiResourceLinkRequest"
    next_changes: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.published = self.published or [self.key]
        platform = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                if path == "/.well-known/openid-configuration":
                    self._answer(200, "application/json", json.dumps(platform.openid_configuration()))
                elif path == "/jwks":
                    platform.jwks_requests += 1
                    self._answer(200, "application/json", json.dumps({"keys": [k.jwk() for k in platform.published]}))
                elif path == "/auth":
                    params = {k: v[0] for k, v in parse_qs(query).items()}
                    platform.auth_requests.append(params)
                    status, body = platform.authorize(params)
                    self._answer(status, "text/html", body)
                else:
                    self._answer(404, "text/plain", "not found")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0))).decode()
                if self.path == "/register":  # dynamic registration: the tool registers itself
                    platform.registration_requests.append({"authorization": self.headers.get("authorization"),
                                                           "body": json.loads(body)})
                    answer = {"client_id": "dyn-client", **json.loads(body),
                              "https://purl.imsglobal.org/spec/lti-tool-configuration": {
                                  "deployment_id": "dyn-deployment"}}
                    self._answer(200, "application/json", json.dumps(answer))
                else:  # the deep-linking return URL: record what the tool posted
                    platform.auth_requests.append({"deep_link_return": body})
                    self._answer(200, "text/plain", "ok")

            def _answer(self, status: int, content_type: str, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- URLs --------------------------------------------------------------------------------------------------

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def jwks_url(self) -> str:
        return f"{self.issuer}/jwks"

    @property
    def auth_url(self) -> str:
        return f"{self.issuer}/auth"

    @property
    def deep_link_return_url(self) -> str:
        return f"{self.issuer}/deep-link-return"

    def registration(self, **changes: Any) -> dict[str, Any]:
        """The body for ``POST /api/v1/lti/registrations``."""
        return {"issuer": self.issuer, "client_id": self.client_id, "deployment_ids": [self.deployment_id],
                "auth_login_url": self.auth_url, "auth_token_url": f"{self.issuer}/token",
                "jwks_url": self.jwks_url, "name": "Test LMS", **changes}

    def openid_configuration(self) -> dict[str, Any]:
        """What the platform publishes for LTI Dynamic Registration."""
        return {"issuer": self.issuer, "authorization_endpoint": self.auth_url,
                "token_endpoint": f"{self.issuer}/token", "jwks_uri": self.jwks_url,
                "registration_endpoint": f"{self.issuer}/register",
                "https://purl.imsglobal.org/spec/lti-platform-configuration": {
                    "product_family_code": "test-lms", "version": "1.0",
                    "messages_supported": [{"type": "LtiResourceLinkRequest"}, {"type": "LtiDeepLinkingRequest"}]}}

    def login_params(self, **changes: Any) -> dict[str, str]:
        """What the platform sends to the tool's login initiation URL."""
        return {"iss": self.issuer, "login_hint": self.next_user.sub, "target_link_uri": self.tool_launch_url,
                "lti_message_hint": "hint-123", "client_id": self.client_id,
                "lti_deployment_id": self.deployment_id, **changes}

    # --- tokens ------------------------------------------------------------------------------------------------

    def claims(self, login_nonce: str, *, user: User | None = None, message_type: str | None = None,
               **changes: Any) -> dict[str, Any]:
        """A valid launch's claims; ``changes`` replace claims (short names ``lti_*``/``dl_*`` allowed), and a
        change to None removes the claim."""
        user = user or self.next_user
        message_type = message_type or self.next_message_type
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer, "aud": self.client_id, "sub": user.sub, "iat": now, "exp": now + 300,
            "nonce": login_nonce, "name": user.name, "email": user.email,
            LTI + "message_type": message_type, LTI + "version": "1.3.0",
            LTI + "deployment_id": self.deployment_id, LTI + "target_link_uri": self.tool_launch_url,
            LTI + "roles": list(user.roles),
            LTI + "context": {"id": "course-42", "label": "BIO101", "title": "Biology 101"},
        }
        if message_type == "LtiDeepLinkingRequest":
            claims[DL + "deep_linking_settings"] = {"deep_link_return_url": self.deep_link_return_url,
                                                    "accept_types": ["ltiResourceLink"],
                                                    "accept_presentation_document_targets": ["iframe"],
                                                    "data": "opaque-platform-data"}
        else:
            claims[LTI + "resource_link"] = {"id": "link-7", "title": "Week 1 media"}
        for name, value in changes.items():
            name = LTI + name[4:] if name.startswith("lti_") else DL + name[3:] if name.startswith("dl_") else name
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return claims

    def sign(self, claims: dict[str, Any], *, key: SigningKey | None = None, alg: str = "RS256",
             headers: dict[str, Any] | None = None, secret: bytes | str | None = None) -> str:
        """Sign as the platform; ``alg``/``secret``/``headers`` let a test forge what it needs."""
        key = key or self.key
        header = {"kid": key.kid, **(headers or {})}
        if alg == "none":
            return jwt.encode(claims, None, algorithm="none", headers=header)
        if alg == "HS256":  # by hand: pyjwt refuses a PEM as an HMAC secret, which is the attack being forged
            signing_input = f"{_b64(json.dumps({'alg': alg, 'typ': 'JWT', **header}))}.{_b64(json.dumps(claims))}"
            key_bytes = secret.encode() if isinstance(secret, str) else (secret or b"x" * 32)
            mac = hmac.new(key_bytes, signing_input.encode(), hashlib.sha256).digest()
            return f"{signing_input}.{_b64(mac)}"
        return jwt.encode(claims, key.private, algorithm=alg, headers=header)

    def authorize(self, params: dict[str, str]) -> tuple[int, str]:
        """The platform's OIDC authorization endpoint: check the request, answer with an auto-posting form."""
        expected = {"scope": "openid", "response_type": "id_token", "response_mode": "form_post", "prompt": "none",
                    "client_id": self.client_id, "redirect_uri": self.tool_launch_url}
        wrong = [k for k, v in expected.items() if params.get(k) != v]
        if wrong or not params.get("nonce") or not params.get("state"):
            return 400, f"bad authorization request: {wrong}"
        token = self.sign(self.claims(params["nonce"], **self.next_changes))
        form = (f'<form method="post" action="{params["redirect_uri"]}">'
                f'<input type="hidden" name="id_token" value="{token}">'
                f'<input type="hidden" name="state" value="{params["state"]}"></form>')
        return 200, form


def _b64(data: str | bytes) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def form_fields(html: str) -> tuple[str, dict[str, str]]:
    """The action and hidden fields of the first form in an auto-posting page."""
    action = unescape(re.search(r'<form[^>]*action="([^"]*)"', html).group(1))
    fields = {unescape(name): unescape(value)
              for name, value in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)"', html)}
    return action, fields


async def start_login(browser: httpx.AsyncClient, platform: Platform, **changes: Any) -> dict[str, str]:
    """The browser hits the tool's login initiation; returns the authorization request's parameters."""
    response = await browser.get("/lti/login", params=platform.login_params(**changes))
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(platform.auth_url + "?"), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


async def launch_via_browser(browser: httpx.AsyncClient, platform: Platform) -> httpx.Response:
    """The whole flow: login initiation → the platform's /auth (real HTTP) → POST /lti/launch."""
    response = await browser.get("/lti/login", params=platform.login_params())
    assert response.status_code == 302, response.text
    async with httpx.AsyncClient() as outside:
        auth = await outside.get(response.headers["location"])
    assert auth.status_code == 200, auth.text
    action, fields = form_fields(auth.text)
    assert action == platform.tool_launch_url
    return await browser.post("/lti/launch", data=fields)


# --- the tool side: an app with the LTI plugin, a browser, a tenant with this platform registered ---------------


@dataclass
class LtiEnv:
    browser: httpx.AsyncClient  # https://testserver, keeps cookies like a browser
    admin: dict[str, str]  # the tenant's API key header
    tenant_id: uuid.UUID
    platform: Platform
    registration: dict[str, Any]

    async def add_asset(self, name: str = "lecture.mp4", *, kind: str = "video", status: str = "ready") -> uuid.UUID:
        """An asset row of this tenant (processing is not what these tests are about)."""
        from mediasvc.tables import Asset

        asset_id = uuid.uuid4()
        await Asset(id=asset_id, tenant=self.tenant_id, profile="video_response", kind=kind, original_name=name,
                    status=status, storage_key=f"{self.tenant_id}/{kind}/{asset_id}/original.mp4").save()
        return asset_id

    async def tool_jwks(self) -> dict[str, Any]:
        response = await self.browser.get("/lti/jwks")
        assert response.status_code == 200
        return response.json()


LTI_TEST_SETTINGS = {"base_url": "https://testserver", "plugins.lti.allow_insecure_urls": True,
                     "plugins.lti.jwks_min_refetch_seconds": 0}


def lti_settings(database_url: str, queue_name: str, data_dir: Path, **overrides: Any) -> Any:
    """Test settings (as conftest's make_settings) with the tool on https://testserver and loopback platforms."""
    from mediasvc.settings import load_settings
    from tests.conftest import REDIS_URL

    return load_settings(env={}, **{"database_url": database_url, "queue.url": REDIS_URL, "queue.name": queue_name,
                                    "data_dir": str(data_dir), "secret_key": "test-secret-key",
                                    **LTI_TEST_SETTINGS, **overrides})


@asynccontextmanager
async def serve_lti_app(settings: Any) -> AsyncIterator[Any]:
    """The app, started in the test's loop (conftest's serve_in_process), for module-scoped fixtures."""
    from mediasvc.app import create_app
    from tests.conftest import serve_in_process

    app = create_app(settings)
    async with serve_in_process(app):
        yield app


@asynccontextmanager
async def lti_tenant(app: Any) -> AsyncIterator[LtiEnv]:
    """A fresh tenant with a fresh test platform registered, and a fresh cookie-keeping browser."""
    from mediasvc.auth import create_api_key
    from mediasvc.tables import Tenant

    platform = Platform()
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://testserver") as browser:
            slug = f"lti-{uuid.uuid4().hex[:8]}"
            key, _ = await create_api_key(slug)
            tenant = await Tenant.select(Tenant.id).where(Tenant.slug == slug).first()
            admin = {"Authorization": f"Bearer {key}"}
            response = await browser.post("/api/v1/lti/registrations", json=platform.registration(), headers=admin)
            assert response.status_code == 201, response.text
            yield LtiEnv(browser=browser, admin=admin, tenant_id=tenant["id"], platform=platform,
                         registration=response.json())
    finally:
        platform.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session", name="lti_app")
async def lti_app_fixture(database_url: str, queue_name: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    """One app per test module (start-up is the slow part); each test gets its own tenant and platform."""
    async with serve_lti_app(lti_settings(database_url, queue_name, tmp_path_factory.mktemp("lti"))) as app:
        yield app


@pytest.fixture(name="env")
async def env_fixture(lti_app: Any) -> AsyncIterator[LtiEnv]:
    async with lti_tenant(lti_app) as env:
        yield env
