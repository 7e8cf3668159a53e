"""The plugin's Piccolo app (returned by the ``piccolo_apps`` hook): its table and migrations."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from mediasvc_analysis.tables import ANALYSIS_TABLES

APP_CONFIG = AppConfig(
    app_name="mediasvc_analysis",
    migrations_folder_path=str(Path(__file__).resolve().parent / "piccolo_migrations"),
    table_classes=ANALYSIS_TABLES,
    migration_dependencies=["mediasvc.piccolo_app"],
    commands=[],
)
