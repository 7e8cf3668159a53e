"""Unique keys and lookup indexes of the LTI tables (raw steps run before tables are added, hence a second
migration)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T21:40:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "LTI unique keys: (issuer, client_id), (tenant, issuer, sub), (platform, context_id), (context, asset)"

INDEXES = {
    "lti_platforms_issuer_client": "CREATE UNIQUE INDEX IF NOT EXISTS lti_platforms_issuer_client "
                                   "ON lti_platforms (issuer, client_id)",
    "lti_users_tenant_issuer_sub": "CREATE UNIQUE INDEX IF NOT EXISTS lti_users_tenant_issuer_sub "
                                   "ON lti_users (tenant, issuer, sub)",
    "lti_users_tenant_email": "CREATE INDEX IF NOT EXISTS lti_users_tenant_email ON lti_users (tenant, lower(email))",
    "lti_contexts_platform_context": "CREATE UNIQUE INDEX IF NOT EXISTS lti_contexts_platform_context "
                                     "ON lti_contexts (platform, context_id)",
    "lti_context_assets_context_asset": "CREATE UNIQUE INDEX IF NOT EXISTS lti_context_assets_context_asset "
                                        "ON lti_context_assets (context, asset)",
}


class RawSql(Table, tablename="lti_platforms"):
    pass


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="lti", description=DESCRIPTION)

    async def create_indexes():
        for statement in INDEXES.values():
            await RawSql.raw(statement)

    async def drop_indexes():
        for name in INDEXES:
            await RawSql.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
