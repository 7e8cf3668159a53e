"""Events end to end: outbox in the change's transaction, a real worker on Redis, signed webhooks, retries,
and isolation between sinks."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import timedelta

import pytest
from mediasvc_webhooks.signature import verify

from mediasvc import events
from mediasvc.app import create_app
from mediasvc.auth import create_api_key, get_or_create_tenant
from mediasvc.contracts import SinkError
from mediasvc.hookspecs import hookimpl
from mediasvc.settings import EventSettings
from mediasvc.tables import Event as EventRow
from mediasvc.tables import EventDelivery
from tests.conftest import serve_in_process
from tests.webhook_receiver import Receiver

SECRET = "whsec_" + "c2VjcmV0LWZvci10ZXN0cw=="  # base64 of "secret-for-tests"


class BrokenSink:
    """A plugin sink that always fails: it must never hold up the others."""

    name = "broken"

    def accepts(self, event_type: str) -> bool:
        return True

    async def deliver(self, event):
        raise RuntimeError("broken sink is broken")


class BrokenSinkPlugin:
    @hookimpl
    def register_event_sinks(self, settings):
        return [BrokenSink()]


async def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        result = await predicate()
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError("condition not met in time")


@pytest.fixture
async def receivers():
    good, flaky = Receiver(), Receiver()
    for r in (good, flaky):
        r.thread.start()
    yield good, flaky
    for r in (good, flaky):
        r.server.shutdown()
        r.server.server_close()


@pytest.fixture
async def worker_client(make_settings, receivers):
    good, flaky = receivers
    settings = make_settings(**{
        "run_worker_in_app": True,
        "queue.name": f"events-{uuid.uuid4().hex[:8]}",
        "plugins": {"webhooks": {
            "allow_loopback": True,
            "targets": [
                {"name": "good", "url": good.url, "secret": SECRET},
                {"name": "flaky", "url": flaky.url, "secret": SECRET, "events": ["media.*"]},
            ],
        }},
    })
    app = create_app(settings, extra_plugins=[BrokenSinkPlugin()])
    async with serve_in_process(app) as http:
        # events other tests left in the shared outbox are not this test's to deliver
        await EventRow.raw("UPDATE events SET dispatched_at = now() WHERE dispatched_at IS NULL")
        await EventRow.raw("UPDATE event_deliveries SET status = 'failed' WHERE status = 'pending'")
        http.services = app.state.services  # the test kicks the same queue the in-app worker reads
        yield http


async def deliveries_of(event_id) -> dict[str, dict]:
    rows = await EventDelivery.select().where(EventDelivery.event == event_id)
    return {row["sink"]: row for row in rows}


async def test_event_reaches_webhook_signed_retried_and_isolated(worker_client, receivers):
    good, flaky = receivers
    flaky.statuses += [500, 503]  # fails twice, then accepts
    key, _ = await create_api_key(f"events-{uuid.uuid4().hex[:6]}")
    auth = {"Authorization": f"Bearer {key}"}
    asset = (await worker_client.post("/api/v1/assets", headers=auth, json={
        "profile": "avatar", "original_name": "me.png"})).json()
    assert (await worker_client.delete(f"/api/v1/assets/{asset['id']}", headers=auth)).status_code == 202
    event = await EventRow.select().where(EventRow.type == "media.deleted").order_by(
        EventRow.created_at, ascending=False).first()

    # the good receiver gets it, signed, with the event id as idempotency key — despite the broken sink
    await wait_for(lambda: _async(len(good.requests) >= 1))
    request = good.requests[0]
    assert verify(SECRET, request["headers"], request["body"])
    assert not verify(SECRET, request["headers"], request["body"] + b" ")
    body = json.loads(request["body"])
    assert body["type"] == "media.deleted"
    assert body["id"] == str(event["id"])
    assert body["data"]["asset_id"] == asset["id"]
    assert {k.lower(): v for k, v in request["headers"].items()}["webhook-id"] == str(event["id"])

    # the flaky receiver is retried with backoff until it accepts
    await wait_for(lambda: _async(len(flaky.requests) >= 3), timeout=20)
    delivered = await wait_for(lambda: _delivered(event["id"], "webhook:flaky"), timeout=10)
    assert delivered["attempts"] == 3
    assert delivered["response_status"] == 200
    ids = {json.loads(r["body"])["id"] for r in flaky.requests}
    assert ids == {str(event["id"])}  # the same event each time: receivers can dedupe by webhook-id

    rows = await deliveries_of(event["id"])
    assert rows["webhook:good"]["status"] == "delivered"
    assert rows["webhook:good"]["attempts"] == 1
    assert rows["broken"]["status"] in ("pending", "failed")
    assert "broken sink is broken" in rows["broken"]["last_error"]
    assert set(rows) == {"webhook:good", "webhook:flaky", "broken", "log"}


async def _async(value):
    return value


async def _delivered(event_id, sink):
    rows = await deliveries_of(event_id)
    row = rows.get(sink)
    return row if row and row["status"] == "delivered" else None


async def test_event_filter_skips_sinks_that_do_not_accept(worker_client, receivers):
    good, flaky = receivers
    tenant = await get_or_create_tenant(f"filter-{uuid.uuid4().hex[:6]}")
    event_id = await events.emit("session.completed", {"session_id": "s1"}, tenant_id=tenant)
    await events.kick(worker_client.services.queue)
    rows = await wait_for(lambda: _rows_when(event_id, 3))
    assert "webhook:flaky" not in rows  # flaky only takes media.*
    await wait_for(lambda: _async(any(json.loads(r["body"])["id"] == str(event_id) for r in good.requests)))


async def _rows_when(event_id, count):
    rows = await deliveries_of(event_id)
    return rows if len(rows) >= count else None


async def test_outbox_write_rolls_back_with_the_change(client):
    marker = uuid.uuid4().hex
    with pytest.raises(RuntimeError):
        async with EventRow._meta.db.transaction():
            await events.emit("media.uploaded", {"marker": marker}, tenant_id=None)
            raise RuntimeError("the change failed")
    rows = await EventRow.raw("SELECT id FROM events WHERE payload->>'marker' = {}", marker)
    assert rows == []
    await events.emit("media.uploaded", {"marker": marker}, tenant_id=None)
    rows = await EventRow.raw("SELECT id FROM events WHERE payload->>'marker' = {}", marker)
    assert len(rows) == 1


def test_backoff_grows_exponentially_and_is_capped():
    settings = EventSettings(retry_base_seconds=10, retry_max_interval_seconds=3600)
    delays = [events.backoff(n, settings) for n in range(1, 12)]
    assert delays[:4] == [timedelta(seconds=s) for s in (10, 20, 40, 80)]
    assert delays[-1] == timedelta(seconds=3600)
    assert all(a <= b for a, b in zip(delays, delays[1:]))


async def test_delivery_gives_up_when_the_retry_window_closes(client):
    event_id = await events.emit("media.processed", {"x": 1}, tenant_id=None)

    class AlwaysDown:
        name = "down"

        def accepts(self, event_type):
            return True

        async def deliver(self, event):
            raise SinkError("503 from receiver", retryable=True, status=503)

    class GoneForGood(AlwaysDown):
        name = "gone"

        async def deliver(self, event):
            raise SinkError("404 from receiver", retryable=False, status=404)

    sinks = {"down": AlwaysDown(), "gone": GoneForGood()}
    await _fan_out_only(event_id, sinks)
    settings = EventSettings(retry_base_seconds=0.05, retry_max_interval_seconds=0.05, retry_window_hours=0.0005)
    for _ in range(40):
        await events.deliver_due(sinks, settings)
        rows = await deliveries_of(event_id)
        if rows["down"]["status"] == "failed":
            break
        await asyncio.sleep(0.1)
    rows = await deliveries_of(event_id)
    assert rows["gone"]["status"] == "failed" and rows["gone"]["attempts"] == 1  # not retryable: one attempt
    assert rows["gone"]["response_status"] == 404
    assert rows["down"]["status"] == "failed"
    assert rows["down"]["attempts"] > 1
    assert rows["down"]["next_attempt_at"] is None


async def _fan_out_only(event_id, sinks):
    # other tests' events may be waiting too; fan out everything, then look only at ours
    while await events.fan_out(sinks):
        pass
    rows = await deliveries_of(event_id)
    assert set(rows) == set(sinks)
