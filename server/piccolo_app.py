"""The core's Piccolo app: its tables and its migrations (package data: ``mediasvc.migrations``)."""

from importlib.resources import files
from pathlib import Path

from piccolo.conf.apps import AppConfig

from mediasvc.tables import CORE_TABLES

MIGRATIONS_DIR = Path(str(files("mediasvc.migrations")))

APP_CONFIG = AppConfig(
    app_name="mediasvc",
    migrations_folder_path=str(MIGRATIONS_DIR),
    table_classes=CORE_TABLES,
    migration_dependencies=[],
    commands=[],
)
