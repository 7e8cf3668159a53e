"""The plugin's table: one row per analysed asset (latest results, perceptual hashes, review flag)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, BigInt, Boolean, Float, ForeignKey, Integer, Timestamptz
from piccolo.columns.base import OnDelete
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from mediasvc.plugin import Asset, Tenant


class ImageAnalysis(Table, tablename="image_analyses"):
    id = UUID(primary_key=True)
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=False, unique=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    results = JSONB(default={})  # the AnalyzeResponse of the latest run
    phash = BigInt(null=True, default=None)  # 64-bit DCT hash as a signed bigint
    dhash = BigInt(null=True, default=None)  # 64-bit difference hash
    width = Integer(default=0)
    height = Integer(default=0)
    moderation_score = Float(null=True, default=None)
    flagged = Boolean(default=False)  # moderation score at or above the threshold: needs a person's review
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


ANALYSIS_TABLES = [ImageAnalysis]
