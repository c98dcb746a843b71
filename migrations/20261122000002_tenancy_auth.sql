-- Tenancy and auth (seeds 000, 002, 003): tenants with the integrations allowlist flag, users with
-- per-tenant roles, hashed API and service keys, password hashes, and the audit trail.
-- Credential material lives only in qivault and only as hashes.

CREATE TABLE core.tenants (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug                  text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    display_name          text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    integrations_enabled  boolean NOT NULL DEFAULT false,
    status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    created_by            text,
    updated_by            text,
    notes                 text
);
SELECT qieos.register_table('core', 'tenants', 'Tenants: the isolation boundary every tenant-owned row belongs to.', 'core', 'internal', 'canonical', '{
  "slug": "URL-safe unique name of the tenant (lowercase letters, digits, hyphens).",
  "integrations_enabled": "Allowlist flag (seed 003): tenant integration endpoints refuse to work while false."
}', NULL, 'Tenants are created by operators, never imported: source_system, source_file_id, import_batch_id and per-row sensitivity do not apply.');
-- A tenant sees its own tenant row and nothing else.
ALTER TABLE core.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON core.tenants USING (id = core.current_tenant_id());

CREATE TABLE core.users (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    email              text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    display_name       text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    is_platform_admin  boolean NOT NULL DEFAULT false,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    last_login_at      timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    notes              text
);
SELECT qieos.register_table('core', 'users', 'People who sign in to Spine; their rights come from tenant memberships.', 'core', 'private', 'canonical', '{
  "email": "Sign-in email address, stored lowercased; unique across the platform.",
  "is_platform_admin": "True for operators who may manage every tenant.",
  "last_login_at": "When the user last signed in successfully."
}', NULL, 'Users are created by operators or tenant owners, never imported: source_system, source_file_id, import_batch_id and per-row sensitivity do not apply.');

CREATE TABLE qisystem.tenant_memberships (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id   uuid NOT NULL REFERENCES core.tenants (id),
    user_id     uuid NOT NULL REFERENCES core.users (id),
    role        text NOT NULL CHECK (role IN ('owner', 'editor', 'viewer')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text,
    UNIQUE (tenant_id, user_id)
);
CREATE INDEX ON qisystem.tenant_memberships (user_id);
SELECT qieos.register_table('qisystem', 'tenant_memberships', 'The permission model: which user holds which role in which tenant.', 'qisystem', 'internal', 'canonical', '{
  "user_id": "The member (core.users).",
  "role": "owner (everything), editor (ingest, read, review) or viewer (read only)."
}', NULL, 'Memberships are granted by people, never imported: provenance, status, sensitivity and notes columns do not apply.');

-- Users are visible to a tenant only when they are its members.
ALTER TABLE core.users ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_members ON core.users USING (EXISTS (
    SELECT 1 FROM qisystem.tenant_memberships m
    WHERE m.user_id = core.users.id AND m.tenant_id = core.current_tenant_id()));

CREATE TABLE qivault.password_credentials (
    user_id        uuid PRIMARY KEY REFERENCES core.users (id) ON DELETE CASCADE,
    password_hash  text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
SELECT qieos.register_table('qivault', 'password_credentials', 'Argon2id password hashes of users; never the password.', 'qivault', 'secret', 'canonical', '{
  "user_id": "The user the hash belongs to.",
  "password_hash": "Argon2id hash in PHC string format."
}', NULL, 'Credential hashes carry no provenance, status or notes by design; the table is read only by the sign-in path.');

CREATE TABLE qivault.api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id     uuid NOT NULL REFERENCES core.tenants (id),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_prefix    text NOT NULL UNIQUE,
    key_hash      bytea NOT NULL CHECK (length(key_hash) = 32),
    scopes        text[] NOT NULL CHECK (cardinality(scopes) > 0),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text
);
SELECT qieos.register_table('qivault', 'api_keys', 'Scoped API keys of tenants: identifiable prefix and SHA-256 hash, never the key.', 'qivault', 'restricted', 'canonical', '{
  "key_prefix": "Public identifier at the start of the key (sak_ + 12 characters); shown in listings.",
  "key_hash": "SHA-256 of the whole key; the key itself is shown once and never stored.",
  "scopes": "Granted scopes (ingest:write, records:read, review:write, connections:admin, jobs:admin, admin).",
  "expires_at": "When the key stops working; NULL for no expiry.",
  "last_used_at": "When the key last authenticated a request (updated at most once a minute).",
  "revoked_at": "When the key was revoked.",
  "revoked_by": "Who revoked it, as kind:id."
}', NULL, 'Keys are issued, never imported: provenance, sensitivity and notes columns do not apply.');

CREATE TABLE qivault.service_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    key_prefix    text NOT NULL UNIQUE,
    key_hash      bytea NOT NULL CHECK (length(key_hash) = 32),
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    revoked_by    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text
);
SELECT qieos.register_table('qivault', 'service_keys', 'Service role keys for server-to-server work across tenants: prefix and SHA-256 hash only.', 'qivault', 'secret', 'canonical', '{}',
  NULL, 'Keys are issued, never imported: provenance, sensitivity and notes columns do not apply.');

CREATE TABLE core.audit_events (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid REFERENCES core.tenants (id),
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor_kind   text NOT NULL CHECK (actor_kind IN ('user', 'api_key', 'service', 'system', 'anonymous')),
    actor_id     text,
    action       text NOT NULL CHECK (action ~ '^[a-z_]+(\.[a-z_]+)+$'),
    outcome      text NOT NULL DEFAULT 'success' CHECK (outcome IN ('success', 'failure')),
    target_kind  text,
    target_id    text,
    request_id   text,
    details      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON core.audit_events (tenant_id, occurred_at DESC);
SELECT qieos.register_table('core', 'audit_events', 'Who did what and when: sign-ins, key creation and revocation, administrative changes. Never secrets.', 'core', 'private', 'canonical', '{
  "occurred_at": "When the audited action happened.",
  "actor_kind": "What kind of principal acted: user, api_key, service, system or anonymous.",
  "actor_id": "Identifier of the actor (user id, key prefix, or the attempted email for failed sign-ins).",
  "action": "Dotted action name, e.g. auth.login, api_key.create, api_key.revoke.",
  "outcome": "success or failure.",
  "target_kind": "Kind of object acted on.",
  "target_id": "Identifier of the object acted on.",
  "request_id": "The API request id, for correlation with logs.",
  "details": "Extra context as JSON; never credentials."
}', NULL, 'Audit events are append-only facts recorded by Spine itself: provenance, status, authorship and notes columns do not apply.');
-- Append-only for the application role.
REVOKE UPDATE, DELETE ON core.audit_events FROM spine_app;
