"""mediasvc-webhooks: deliver events as signed HTTP POSTs (Standard Webhooks), guarded by an address allow-list.

Modules: ``settings`` (the ``plugins.webhooks`` struct), ``signature`` (sign/verify), ``allowlist`` (which
addresses may be reached), ``transport`` (an httpx transport that enforces it), ``sink`` (``WebhookSink``) and
``plugin`` (the hook implementations, the entry point).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mediasvc-webhooks")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0"
