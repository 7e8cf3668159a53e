"""The LTI plugin's Piccolo app: its tables and migrations (applied by ``mediasvc migrate``)."""

from pathlib import Path

from piccolo.conf.apps import AppConfig

from mediasvc_lti.tables import LTI_TABLES

APP_CONFIG = AppConfig(
    app_name="lti",
    migrations_folder_path=str(Path(__file__).resolve().parent / "piccolo_migrations"),
    table_classes=LTI_TABLES,
    migration_dependencies=["mediasvc.piccolo_app"],
    commands=[],
)
