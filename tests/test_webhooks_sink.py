"""Webhook sink: signed delivery to a real local receiver, status mapping, the address allow-list, settings.
Only loopback ever receives traffic; private addresses are checked through the allow-list functions directly."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from datetime import UTC, datetime
from uuid import uuid4

import msgspec
import pytest
from mediasvc_webhooks import plugin
from mediasvc_webhooks.allowlist import AddressPolicy, BlockedAddressError
from mediasvc_webhooks.settings import WebhookSettings
from mediasvc_webhooks.signature import sign, verify

from mediasvc.contracts import Event, EventSink, SinkError
from mediasvc.errors import ConfigurationError
from mediasvc.settings import load_settings

SECRET = "a-shared-secret"


def make_event(event_type: str = "media.ready") -> Event:
    return Event(id=uuid4(), type=event_type, tenant_id=uuid4(), created_at=datetime.now(UTC),
                 data={"asset_id": "abc", "renditions": 3})


def build_sinks(targets: list[dict], **options) -> list:
    settings = load_settings(env={}, plugins={"webhooks": {"targets": targets, **options}})
    return plugin.register_event_sinks(settings=settings)


def one_sink(url: str, **options):
    (sink,) = build_sinks([{"name": "main", "url": url, "secret": SECRET}], **options)
    return sink


async def delivery_error(url: str, **options) -> SinkError:
    """Deliver one event to a fresh sink for ``url`` and return the ``SinkError`` it must raise."""
    sink = one_sink(url, **options)
    try:
        with pytest.raises(SinkError) as caught:
            await sink.deliver(make_event())
    finally:
        await sink.aclose()
    return caught.value


# --- delivery ------------------------------------------------------------------------------------------------


async def test_delivers_signed_json_body_and_reopens_after_aclose(receiver):
    sink, event = one_sink(receiver.url, allow_loopback=True), make_event()
    assert await sink.deliver(event) == 200
    await sink.aclose()
    assert await sink.deliver(make_event()) == 200  # a closed sink reopens its client
    await sink.aclose()
    request = receiver.requests[0]
    headers = {k.lower(): v for k, v in request["headers"].items()}
    assert request["path"] == "/hooks/in"
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"].startswith("mediasvc-webhooks/")
    assert headers["webhook-id"] == str(event.id)
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 5
    assert json.loads(request["body"]) == {"id": str(event.id), "type": "media.ready", "tenant_id": str(event.tenant_id),
                                          "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
                                          "data": event.data}
    assert verify(SECRET, headers, request["body"])
    assert not verify("another-secret", headers, request["body"])
    assert not verify(SECRET, headers, request["body"].replace(b'"abc"', b'"abd"'))


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (502, True), (503, True), (408, True), (429, True),
     (400, False), (401, False), (404, False), (410, False), (422, False)],
)
async def test_error_statuses_map_to_sink_errors(receiver, status, retryable):
    receiver.statuses.append(status)
    error = await delivery_error(receiver.url, allow_loopback=True)
    assert (error.retryable, error.status) == (retryable, status)
    assert str(status) in str(error) and "webhook:main" in str(error)


async def test_redirects_are_not_followed(receiver):
    receiver.statuses.append(302)
    receiver.response_headers["location"] = receiver.url + "/elsewhere"
    error = await delivery_error(receiver.url, allow_loopback=True)
    assert error.retryable is False and error.status == 302
    assert len(receiver.requests) == 1


async def test_timeout_is_retryable_without_status(receiver):
    receiver.delay_seconds = 1.0
    error = await delivery_error(receiver.url, allow_loopback=True, timeout_seconds=0.2)
    assert error.retryable is True and error.status is None
    assert "timed out" in str(error)


async def test_connection_refused_is_retryable():
    with socket.socket() as probe:  # find a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    error = await delivery_error(f"http://127.0.0.1:{port}/", allow_loopback=True)
    assert error.retryable is True and error.status is None


# --- allow-list ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("url_host", ["127.0.0.1", "localhost"])
async def test_loopback_target_refused_without_allow_loopback(receiver, url_host):
    url = receiver.url.replace("127.0.0.1", url_host)
    error = await delivery_error(url)
    assert error.retryable is False
    assert "loopback" in str(error) and "allow-list" in str(error)
    assert receiver.requests == []


async def test_allow_hosts_cidr_lets_loopback_through(receiver):
    sink = one_sink(receiver.url, allow_hosts=["127.0.0.0/8"])
    assert await sink.deliver(make_event()) == 200
    await sink.aclose()


@pytest.mark.parametrize(
    "address",
    ["10.0.0.1", "172.16.5.4", "192.168.1.1", "169.254.169.254", "127.0.0.1", "0.0.0.0", "100.64.0.1",
     "224.0.0.1", "240.0.0.1", "::1", "::", "fe80::1", "fc00::1", "ff02::1",
     "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:a00:1::"],
)
def test_allowlist_refuses_special_addresses(address):
    with pytest.raises(BlockedAddressError, match="address"):
        AddressPolicy().check("hooks.example.com", [address])
    with pytest.raises(BlockedAddressError):  # one bad address among good ones refuses the host
        AddressPolicy().check("hooks.example.com", ["8.8.8.8", address])


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_allowlist_lets_public_addresses_through(address):
    assert AddressPolicy().refusal("hooks.example.com", address) is None
    AddressPolicy().check("hooks.example.com", [address])  # and does not raise


def test_allow_loopback_and_allow_hosts_make_exceptions():
    AddressPolicy(allow_loopback=True).check("localhost", ["127.0.0.1", "::1", "::ffff:127.0.0.1"])
    policy = AddressPolicy(allow_hosts=["10.0.0.0/8", "Internal.Example"], allow_loopback=True)
    policy.check("anything.example", ["10.1.2.3", "::ffff:10.1.2.3"])
    policy.check("internal.example.", ["192.168.1.1"])  # allowed by name, whatever it resolves to
    for address in ["192.168.1.1", "0.0.0.0", "169.254.169.254"]:
        with pytest.raises(BlockedAddressError):
            policy.check("anything.example", [address])


# --- signatures ----------------------------------------------------------------------------------------------


def test_sign_matches_standard_webhooks_vector_and_plain_secrets():
    # The published Standard Webhooks test vector.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    # Any other secret is used as its UTF-8 bytes.
    expected = hmac.new(b"plain", b"id1.100.body", hashlib.sha256).digest()
    assert sign("plain", "id1", 100, b"body") == "v1," + base64.b64encode(expected).decode()


def test_verify_tolerance_and_signature_lists():
    old = int(time.time()) - 1000
    headers = {"Webhook-Id": "m1", "Webhook-Timestamp": str(old), "Webhook-Signature": sign(SECRET, "m1", old, "b")}
    assert not verify(SECRET, headers, "b")
    assert verify(SECRET, headers, "b", tolerance_seconds=2000)
    assert verify(SECRET, headers, "b", now=old + 10)
    # Several space-separated signatures (secret rotation): any valid one will do; garbage never raises.
    now = int(time.time())
    good = sign(SECRET, "m1", now, "b")
    headers = {"webhook-id": "m1", "webhook-timestamp": str(now), "webhook-signature": f"v1,bm9wZQ== {good}"}
    assert verify(SECRET, headers, "b")
    assert not verify(SECRET, {**headers, "webhook-signature": "v1,bm9wZQ== v1,ünïcode"}, "b")
    assert not verify(SECRET, {**headers, "webhook-timestamp": "soon"}, "b")
    assert not verify(SECRET, {}, "b")


# --- event filter and hooks ----------------------------------------------------------------------------------


def test_event_filter():
    filtered, everything = build_sinks([
        {"name": "filtered", "url": "https://a.example/", "secret": SECRET, "events": ["media.*", "asset.deleted"]},
        {"name": "all", "url": "https://b.example/", "secret": SECRET},
    ])
    assert all(filtered.accepts(t) for t in ("media.ready", "media.processing.failed", "asset.deleted"))
    assert not any(filtered.accepts(t) for t in ("asset.created", "media", "mediax.ready"))
    assert everything.accepts("asset.created") and everything.accepts("media.ready")


def test_hooks_register_settings_and_one_named_sink_per_target():
    assert plugin.register_settings() == [("webhooks", WebhookSettings)]
    sinks = build_sinks([
        {"name": "billing", "url": "https://a.example/", "secret": SECRET},
        {"name": "search", "url": "https://b.example/", "secret": SECRET},
    ])
    assert [s.name for s in sinks] == ["webhook:billing", "webhook:search"]
    assert all(isinstance(s, EventSink) for s in sinks)
    assert sinks[0].client is sinks[1].client
    assert plugin.register_event_sinks(settings=load_settings(env={})) == []


GOOD = {"name": "t", "url": "https://hooks.example/", "secret": SECRET}


@pytest.mark.parametrize(
    ("section", "key"),
    [
        ({"targets": [{**GOOD, "url": "ftp://hooks.example/"}]}, "plugins.webhooks.targets[0].url"),
        ({"targets": [GOOD, {**GOOD, "name": "u", "url": "http:///nohost"}]}, "plugins.webhooks.targets[1].url"),
        ({"targets": [GOOD, GOOD]}, "plugins.webhooks.targets[1].name"),
        ({"targets": [{**GOOD, "name": " "}]}, "plugins.webhooks.targets[0].name"),
        ({"targets": [{**GOOD, "secret": ""}]}, "plugins.webhooks.targets[0].secret"),
        ({"targets": [{**GOOD, "secret": "whsec_***"}]}, "plugins.webhooks.targets[0].secret"),
        ({"targets": [{"name": "t", "url": "https://h.example/"}]}, "plugins.webhooks.targets[0]"),
        ({"targets": [{**GOOD, "events": ["media.ready", "me*ia"]}]}, "plugins.webhooks.targets[0].events[1]"),
        ({"targets": [{**GOOD, "url": 5}]}, "plugins.webhooks.targets[0].url"),
        ({"timeout_seconds": "soon"}, "plugins.webhooks.timeout_seconds"),
        ({"timeout_seconds": 0}, "plugins.webhooks.timeout_seconds"),
        ({"allow_hosts": ["ok.example", "not a host!"]}, "plugins.webhooks.allow_hosts[1]"),
        ({"allow_host": ["typo"]}, "plugins.webhooks"),
    ],
)
def test_bad_settings_name_the_key(section, key):
    settings = load_settings(env={}, plugins={"webhooks": section})
    with pytest.raises(ConfigurationError) as caught:
        plugin.register_event_sinks(settings=settings)
    assert str(caught.value).startswith(key + ":")
    assert "whsec_***" not in str(caught.value)  # secrets are never echoed


def test_core_style_validation_raises_configuration_error():
    # The core converts settings.plugins["webhooks"] with msgspec.convert itself; the checks run there too.
    with pytest.raises(ConfigurationError, match=r"plugins\.webhooks\.targets\[0\]\.url"):
        msgspec.convert({"targets": [{**GOOD, "url": "gopher://x/"}]}, WebhookSettings, strict=False)
