"""Hook implementations (the ``webhooks`` entry point): the settings section and one sink per target."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mediasvc_webhooks.settings import SECTION, WebhookSettings, load_webhook_settings
from mediasvc_webhooks.sink import SharedClient, WebhookSink
from mediasvc.plugin import hookimpl

if TYPE_CHECKING:
    from mediasvc.plugin import Settings


@hookimpl
def register_settings() -> list[tuple[str, type]]:
    return [(SECTION, WebhookSettings)]


@hookimpl
def register_event_sinks(settings: Settings) -> list[WebhookSink]:
    webhook_settings = load_webhook_settings(settings)
    client = SharedClient(webhook_settings)
    return [WebhookSink(target, client) for target in webhook_settings.targets]
