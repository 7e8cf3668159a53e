"""HMAC-signed, expiring URLs."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from mediasvc.signing import sign_path, verify_path


def parts(url: str) -> tuple[str, dict[str, str]]:
    split = urlsplit(url)
    return split.path, dict(parse_qsl(split.query))


def test_signed_path_verifies_until_it_expires():
    path, query = parts(sign_path("k", "/media/serve/a/b.mp4", expires_in=60, now=1000))
    assert verify_path("k", path, query, now=1059)
    assert not verify_path("k", path, query, now=1061)


def test_tampering_is_refused():
    path, query = parts(sign_path("k", "/media/serve/a.mp4", params={"size": "10"}, now=1000))
    assert verify_path("k", path, query, now=1000)
    assert not verify_path("other-key", path, query, now=1000)
    assert not verify_path("k", "/media/serve/b.mp4", query, now=1000)
    assert not verify_path("k", path, query | {"size": "11"}, now=1000)
    assert not verify_path("k", path, query | {"exp": str(int(query["exp"]) + 100)}, now=1000)
    assert not verify_path("k", path, query, method="PUT", now=1000)
    assert not verify_path("k", path, {k: v for k, v in query.items() if k != "sig"}, now=1000)
    assert not verify_path("k", path, query | {"exp": "soon"}, now=1000)
