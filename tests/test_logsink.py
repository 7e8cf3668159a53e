"""The log sink: one structured record per event on ``mediasvc.events``."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from uuid import uuid4

import mediasvc_logsink
from mediasvc_logsink import LogSink

from mediasvc.contracts import Event, EventSink
from mediasvc.settings import Settings


def make_event(tenant_id=None) -> Event:
    return Event(id=uuid4(), type="media.ready", tenant_id=tenant_id, created_at=datetime.now(UTC),
                 data={"asset_id": "a1", "duration": 12.5})


def test_hook_returns_one_sink_named_log():
    sinks = mediasvc_logsink.register_event_sinks(settings=Settings())
    assert [sink.name for sink in sinks] == ["log"]
    assert isinstance(sinks[0], EventSink)


def test_accepts_every_event_type():
    sink = LogSink()
    assert all(sink.accepts(t) for t in ("media.ready", "asset.deleted", "anything"))


async def test_deliver_writes_one_structured_record(caplog):
    tenant = uuid4()
    event = make_event(tenant)
    with caplog.at_level(logging.INFO, logger="mediasvc.events"):
        result = await LogSink().deliver(event)
    assert result is None
    records = [r for r in caplog.records if r.name == "mediasvc.events"]
    assert len(records) == 1
    record = records[0]
    assert record.getMessage() == "event"
    assert record.levelno == logging.INFO
    assert record.event_id == str(event.id)
    assert record.event_type == "media.ready"
    assert record.tenant_id == str(tenant)
    assert record.data == {"asset_id": "a1", "duration": 12.5}


async def test_deliver_without_tenant_logs_none(caplog):
    with caplog.at_level(logging.INFO, logger="mediasvc.events"):
        await LogSink().deliver(make_event())
    assert [r.tenant_id for r in caplog.records if r.name == "mediasvc.events"] == [None]
