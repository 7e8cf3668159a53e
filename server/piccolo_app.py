"""The core's Piccolo app: its tables and the migrations in the repository's migrations/ folder."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from server.tables import CORE_TABLES

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

APP_CONFIG = AppConfig(
    app_name="mediasvc",
    migrations_folder_path=str(MIGRATIONS_DIR),
    table_classes=CORE_TABLES,
    migration_dependencies=[],
    commands=[],
)
