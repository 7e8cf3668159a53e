"""Lets the plain `piccolo` CLI find our configuration from the repository root; see server/piccolo_conf.py."""

from mediasvc.piccolo_conf import APP_REGISTRY, DB  # noqa: F401
