"""The LTI plugin's tables (its own Piccolo app; changes go through ``piccolo_migrations/``)."""

from __future__ import annotations

from piccolo.columns import JSONB, UUID, Boolean, ForeignKey, OnDelete, Text, Timestamptz, Varchar
from piccolo.columns.defaults.timestamptz import TimestamptzNow
from piccolo.table import Table

from mediasvc.plugin import Asset, Tenant


class Platform(Table, tablename="lti_platforms"):
    """A platform registration (an LMS): unique by (issuer, client_id) across tenants."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False, index=True)
    name = Varchar(length=200, default="")
    issuer = Varchar(length=500)
    client_id = Varchar(length=255)
    deployment_ids = JSONB(default=[])
    auth_login_url = Text()
    auth_token_url = Text(default="")
    jwks_url = Text()
    created_at = Timestamptz(default=TimestamptzNow())


class ToolKey(Table, tablename="lti_tool_keys"):
    """The tool's RSA signing keys per tenant: one active; older ones stay published until retired."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False, index=True)
    kid = Varchar(length=64, unique=True)
    private_key_pem = Text()  # encrypted with a key derived from the service secret
    public_jwk = JSONB(default={})
    active = Boolean(default=False)
    created_at = Timestamptz(default=TimestamptzNow())
    retired_at = Timestamptz(null=True, default=None)


class Nonce(Table, tablename="lti_nonces"):
    """One login initiation: its state and nonce, used once by the launch that completes it."""

    id = UUID(primary_key=True)
    platform = ForeignKey(references=Platform, on_delete=OnDelete.cascade, null=False)
    state_id = Varchar(length=64, unique=True)
    nonce = Varchar(length=64, unique=True)
    target_link_uri = Text(default="")
    expires_at = Timestamptz(index=True)
    used_at = Timestamptz(null=True, default=None)
    created_at = Timestamptz(default=TimestamptzNow())


class User(Table, tablename="lti_users"):
    """A person as a platform knows them: unique by (tenant, issuer, sub)."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    issuer = Varchar(length=500)
    sub = Varchar(length=255)
    email = Varchar(length=320, default="")
    name = Varchar(length=300, default="")
    roles = JSONB(default=[])  # the platform's role URIs, as sent
    role = Varchar(length=20, default="learner")  # instructor | learner
    created_at = Timestamptz(default=TimestamptzNow())
    last_launch_at = Timestamptz(default=TimestamptzNow())


class Context(Table, tablename="lti_contexts"):
    """A course on a platform."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    platform = ForeignKey(references=Platform, on_delete=OnDelete.cascade, null=False)
    context_id = Varchar(length=255)
    label = Varchar(length=255, default="")
    title = Varchar(length=500, default="")
    created_at = Timestamptz(default=TimestamptzNow())
    updated_at = Timestamptz(default=TimestamptzNow())


class ContextAsset(Table, tablename="lti_context_assets"):
    """An asset placed in a course (by deep linking or an instructor's "add")."""

    id = UUID(primary_key=True)
    context = ForeignKey(references=Context, on_delete=OnDelete.cascade, null=False)
    asset = ForeignKey(references=Asset, on_delete=OnDelete.cascade, null=False)
    added_by = ForeignKey(references=User, on_delete=OnDelete.set_null, null=True)
    created_at = Timestamptz(default=TimestamptzNow())


class Launch(Table, tablename="lti_launches"):
    """A verified launch; the LTI session cookie names one."""

    id = UUID(primary_key=True)
    tenant = ForeignKey(references=Tenant, on_delete=OnDelete.cascade, null=False)
    platform = ForeignKey(references=Platform, on_delete=OnDelete.cascade, null=False)
    user = ForeignKey(references=User, on_delete=OnDelete.cascade, null=False)
    context = ForeignKey(references=Context, on_delete=OnDelete.set_null, null=True)
    message_type = Varchar(length=40)
    deployment_id = Varchar(length=255)
    role = Varchar(length=20)
    resource_link_id = Varchar(length=255, default="")
    claims = JSONB(default={})  # what later requests need: deep_linking_settings, custom
    created_at = Timestamptz(default=TimestamptzNow())
    expires_at = Timestamptz()


LTI_TABLES: list[type[Table]] = [Platform, ToolKey, Nonce, User, Context, ContextAsset, Launch]
