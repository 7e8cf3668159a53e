"""image_analyses: results, perceptual hashes and the review flag per analysed asset."""

from piccolo.apps.migrations.auto.migration_manager import MigrationManager
from piccolo.table import Table

ID = "2026-11-25T21:45:00:000000"
VERSION = "1.38.0"
DESCRIPTION = "image_analyses table"


class RawSQL(Table):
    pass


FORWARDS = [
    """
    CREATE TABLE image_analyses (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        asset uuid NOT NULL UNIQUE REFERENCES assets(id) ON DELETE CASCADE,
        tenant uuid NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
        results jsonb NOT NULL DEFAULT jsonb_build_object(),
        phash bigint NULL,
        dhash bigint NULL,
        width integer NOT NULL DEFAULT 0,
        height integer NOT NULL DEFAULT 0,
        moderation_score double precision NULL,
        flagged boolean NOT NULL DEFAULT false,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX image_analyses_tenant_phash ON image_analyses (tenant) WHERE phash IS NOT NULL",
    "CREATE INDEX image_analyses_flagged ON image_analyses (tenant) WHERE flagged",
]

BACKWARDS = ["DROP TABLE IF EXISTS image_analyses"]


async def forwards():
    manager = MigrationManager(migration_id=ID, app_name="mediasvc_analysis", description=DESCRIPTION)

    async def run():
        for statement in FORWARDS:
            await RawSQL.raw(statement)

    async def run_backwards():
        for statement in BACKWARDS:
            await RawSQL.raw(statement)

    manager.add_raw(run)
    manager.add_raw_backwards(run_backwards)
    return manager
