"""Piccolo configuration for the `piccolo` CLI and `mediasvc migrate` (PICCOLO_CONF=mediasvc.piccolo_conf).

The database comes from the same settings as the app (MEDIASVC_DATABASE_URL or the TOML file); the apps are the
core's plus every enabled plugin's (the `piccolo_apps` hook).
"""

from piccolo.conf.apps import AppRegistry

from mediasvc.database import engine_for
from mediasvc.plugins import PluginHost
from mediasvc.settings import load_settings

_settings = load_settings()

DB = engine_for(_settings.database_url)

APP_REGISTRY = AppRegistry(apps=["mediasvc.piccolo_app", *PluginHost(_settings).piccolo_apps()])
