"""Indexes for the list queries (composite, so written as SQL; Piccolo columns index one column each)."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager

ID = "2026-11-25T19:05:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "indexes for list queries, outbox and deliveries"

INDEXES = [
    # asset lists: tenant scope, newest first, stable by id (cursor pagination), with common filters
    "CREATE INDEX IF NOT EXISTS assets_tenant_created ON assets (tenant, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS assets_tenant_status_created ON assets (tenant, status, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS assets_tenant_profile_created ON assets (tenant, profile, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS assets_tenant_kind_created ON assets (tenant, kind, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS renditions_asset ON renditions (asset)",
    "CREATE UNIQUE INDEX IF NOT EXISTS renditions_asset_kind_name ON renditions (asset, kind, name)",
    "CREATE INDEX IF NOT EXISTS processing_jobs_asset ON processing_jobs (asset, created_at)",
    "CREATE INDEX IF NOT EXISTS processing_jobs_status ON processing_jobs (status, created_at DESC)",
    "CREATE INDEX IF NOT EXISTS recording_sessions_tenant_created ON recording_sessions (tenant, created_at DESC, id DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS recording_sessions_tenant_client_id ON recording_sessions (tenant, client_id) "
    "WHERE client_id IS NOT NULL",
    "CREATE UNIQUE INDEX IF NOT EXISTS chunks_session_sequence ON chunks (session, sequence_index)",
    "CREATE INDEX IF NOT EXISTS uploads_tenant_status ON uploads (tenant, status, created_at DESC)",
    "CREATE INDEX IF NOT EXISTS uploads_expires ON uploads (expires_at) WHERE status = 'uploading'",
    "CREATE INDEX IF NOT EXISTS transcripts_asset ON transcripts (asset)",
    "CREATE INDEX IF NOT EXISTS transcripts_session ON transcripts (session)",
    "CREATE INDEX IF NOT EXISTS api_keys_tenant ON api_keys (tenant)",
    "CREATE INDEX IF NOT EXISTS events_undispatched ON events (created_at) WHERE dispatched_at IS NULL",
    "CREATE INDEX IF NOT EXISTS events_tenant_created ON events (tenant, created_at DESC)",
    "CREATE UNIQUE INDEX IF NOT EXISTS event_deliveries_event_sink ON event_deliveries (event, sink)",
    "CREATE INDEX IF NOT EXISTS event_deliveries_due ON event_deliveries (next_attempt_at) WHERE status = 'pending'",
]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="mediasvc", description=DESCRIPTION)

    async def create_indexes():
        from mediasvc.tables import Asset

        for statement in INDEXES:
            await Asset.raw(statement)

    async def drop_indexes():
        from mediasvc.tables import Asset

        for statement in INDEXES:
            name = statement.split("EXISTS ")[1].split(" ")[0]
            await Asset.raw(f"DROP INDEX IF EXISTS {name}")

    manager.add_raw(create_indexes)
    manager.add_raw_backwards(drop_indexes)
    return manager
