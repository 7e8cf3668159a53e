"""The plugin's Piccolo app, returned by the ``piccolo_apps`` hook and applied by ``mediasvc migrate``."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from mediasvc_zoom.tables import ZOOM_TABLES

APP_CONFIG = AppConfig(
    app_name="zoom",
    migrations_folder_path=str(Path(__file__).resolve().parent / "piccolo_migrations"),
    table_classes=ZOOM_TABLES,
    migration_dependencies=["mediasvc.piccolo_app"],
    commands=[],
)
