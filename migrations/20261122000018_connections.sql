-- Connector types and connections (issue 5 items 1 and 2, decision 0021). Connector types are a
-- closed registry in code (spine_core::connector::ConnectorType); qiconnect.connector_types is its
-- mirror, seeded here and compared with the code by a test, so connections can reference a type by
-- its stable name. A connection is a tenant's named, configured instance of a type: its non-secret
-- config lives here, its secret fields only in qivault.secrets (owner_kind 'connection'), referenced
-- by id from secret_refs.

CREATE TABLE qiconnect.connector_types (
    name                   text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{0,62}$'),
    display_name           text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    category               text NOT NULL CHECK (category IN ('source', 'output', 'both')),
    description            text NOT NULL,
    auth_schema            jsonb NOT NULL,
    source_schema          jsonb,
    output_schema          jsonb,
    supports_scheduling    boolean NOT NULL,
    supports_refresh       boolean NOT NULL,
    rate_limit_per_minute  integer CHECK (rate_limit_per_minute > 0),
    single_instance        boolean NOT NULL,
    vaulted_fields         text[] NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now()
);
SELECT qieos.register_table('qiconnect', 'connector_types', 'The connector types (blueprints) Spine''s code defines, mirrored so connections reference them by stable name.', 'qiconnect', 'internal', 'derived', '{
  "name": "Stable name of the connector type (never renamed; used in paths, logs and idempotency keys).",
  "display_name": "Human-readable name of the connector type.",
  "category": "source, output or both: what connections of the type are used for.",
  "description": "What the connector type does.",
  "auth_schema": "JSON Schema (2020-12) of the credentials object (auth) of a connection.",
  "source_schema": "JSON Schema (2020-12) of the source fields of a connection; NULL for output-only types.",
  "output_schema": "JSON Schema (2020-12) of the output fields of a connection; NULL for source-only types.",
  "supports_scheduling": "Connections of the type can run on a schedule.",
  "supports_refresh": "Credentials of the type can be refreshed (OAuth).",
  "rate_limit_per_minute": "Calls per minute per connection the type allows; NULL for no limit of its own.",
  "single_instance": "At most one connection of the type per tenant.",
  "vaulted_fields": "Dotted config paths that are secrets: stored only in qivault.secrets, never returned."
}');
GRANT SELECT ON qiconnect.connector_types TO spine_app;

INSERT INTO qiconnect.connector_types (name, display_name, category, description, auth_schema, source_schema, output_schema,
    supports_scheduling, supports_refresh, rate_limit_per_minute, single_instance, vaulted_fields) VALUES
 ('http_json', 'HTTP JSON API', 'source', 'Reads a JSON API over HTTP(S) with GET or POST, authenticated by a bearer token, HTTP basic credentials or an API-key header.',
  '{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "spine:connector/http_json/auth", "title": "HTTP JSON API credentials", "description": "One of: a bearer token, HTTP basic credentials, or a named header carrying a key.", "oneOf": [{"type": "object", "title": "Bearer token", "properties": {"type": {"const": "bearer"}, "token": {"type": "string", "minLength": 1, "writeOnly": true, "description": "Sent as Authorization: Bearer <token>. Secret."}}, "required": ["type", "token"], "additionalProperties": false}, {"type": "object", "title": "HTTP basic", "properties": {"type": {"const": "basic"}, "username": {"type": "string", "minLength": 1}, "password": {"type": "string", "minLength": 1, "writeOnly": true, "description": "Secret."}}, "required": ["type", "username", "password"], "additionalProperties": false}, {"type": "object", "title": "API key header", "properties": {"type": {"const": "header"}, "name": {"type": "string", "minLength": 1, "maxLength": 256, "description": "Header name, e.g. X-Api-Key."}, "value": {"type": "string", "minLength": 1, "writeOnly": true, "description": "Header value. Secret."}}, "required": ["type", "name", "value"], "additionalProperties": false}]}'::jsonb,
  '{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "spine:connector/http_json/source", "title": "HTTP JSON API endpoint", "type": "object", "properties": {"base_url": {"type": "string", "format": "uri", "minLength": 1, "maxLength": 2048, "description": "Absolute http(s) URL of the API."}, "method": {"type": "string", "enum": ["GET", "POST"], "default": "GET"}, "path": {"type": "string", "maxLength": 2048, "default": "", "description": "Appended to base_url."}, "headers": {"type": "object", "description": "Extra request headers (not secret; put keys in auth).", "additionalProperties": {"type": "string", "maxLength": 4096}}}, "required": ["base_url"], "additionalProperties": false}'::jsonb,
  NULL,
  true, false, 60, false, '{auth.token,auth.password,auth.value}'),
 ('webhook_out', 'Outgoing webhook', 'output', 'POSTs events as JSON to a URL of the tenant''s choosing, each delivery signed with HMAC-SHA256 under a shared signing secret. One per tenant.',
  '{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "spine:connector/webhook_out/auth", "title": "Webhook signing secret", "type": "object", "properties": {"signing_secret": {"type": "string", "minLength": 16, "maxLength": 1024, "writeOnly": true, "description": "Key of the HMAC-SHA256 signature sent with every delivery. Secret."}}, "required": ["signing_secret"], "additionalProperties": false}'::jsonb,
  NULL,
  '{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "spine:connector/webhook_out/output", "title": "Webhook destination", "type": "object", "properties": {"url": {"type": "string", "format": "uri", "minLength": 1, "maxLength": 2048, "description": "Absolute http(s) URL deliveries are POSTed to."}, "headers": {"type": "object", "description": "Extra request headers (not secret).", "additionalProperties": {"type": "string", "maxLength": 4096}}}, "required": ["url"], "additionalProperties": false}'::jsonb,
  false, false, 600, true, '{auth.signing_secret}');

CREATE TABLE qiconnect.connections (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id       uuid NOT NULL REFERENCES core.tenants (id),
    connector_type  text NOT NULL REFERENCES qiconnect.connector_types (name),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200 AND name = btrim(name)),
    config          jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(config) = 'object'),
    secret_refs     jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(secret_refs) = 'object'),
    is_active       boolean NOT NULL DEFAULT true,
    status          text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'needs_reauth', 'disabled', 'degraded')),
    status_reason   text CHECK (length(status_reason) <= 1000),
    last_used_at    timestamptz,
    metadata        jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    notes           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      text,
    updated_by      text,
    UNIQUE (tenant_id, id),
    CONSTRAINT connections_tenant_name UNIQUE (tenant_id, name),
    CHECK (is_active = (status <> 'disabled'))
);
CREATE INDEX ON qiconnect.connections (tenant_id, connector_type);
SELECT qieos.register_table('qiconnect', 'connections', 'Tenants'' configured instances of connector types: name, non-secret config, references to the vault''s secrets, status.', 'qiconnect', 'sensitive', 'canonical', '{
  "connector_type": "Stable name of the connection''s connector type (qiconnect.connector_types).",
  "name": "Name of the connection, unique within its tenant.",
  "config": "The connection''s configuration without its secret fields (validated against the type''s JSON Schema).",
  "secret_refs": "Which secret fields are set: dotted config path to the id of the current qivault.secrets row (no values).",
  "is_active": "False exactly when the connection is disabled.",
  "status": "active, needs_reauth (credentials refused or expired), disabled (by a person or the runtime; see status_reason) or degraded (calls keep failing).",
  "status_reason": "Why the connection is not simply active, in words without secrets.",
  "last_used_at": "When a job last used the connection.",
  "metadata": "Free-form labels of the connection (not secret).",
  "notes": "Notes of the people who manage the connection."
}', NULL, 'Connections are entered by people through the API or CLI, never imported from files: source_system, source_file_id, import_batch_id and sensitivity_level (the table is sensitive as a whole) do not apply.');

-- A single-instance type allows one connection per tenant. A constraint cannot read the type, so a
-- trigger checks it under a transaction-scoped advisory lock on (tenant, type), which makes two
-- concurrent inserts wait for each other. SECURITY DEFINER reads the type whatever the caller's
-- rights; it filters by tenant itself.
CREATE FUNCTION qiconnect.connections_single_instance() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM qiconnect.connector_types t WHERE t.name = NEW.connector_type AND t.single_instance) THEN
        PERFORM pg_advisory_xact_lock(hashtextextended('qiconnect.connections:' || NEW.tenant_id::text || ':' || NEW.connector_type, 0));
        IF EXISTS (SELECT 1 FROM qiconnect.connections c
                   WHERE c.tenant_id = NEW.tenant_id AND c.connector_type = NEW.connector_type AND c.id <> NEW.id) THEN
            RAISE EXCEPTION 'connector type % allows one connection per tenant', NEW.connector_type
                USING ERRCODE = '23505', CONSTRAINT = 'connections_single_instance';
        END IF;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER connections_single_instance BEFORE INSERT OR UPDATE OF connector_type, tenant_id ON qiconnect.connections
    FOR EACH ROW EXECUTE FUNCTION qiconnect.connections_single_instance();

INSERT INTO qieos.statuses (status_domain, status_key, display_name, description, is_terminal, sort_order) VALUES
 ('connection', 'active', 'Active', 'In use; its credentials were accepted or not yet tried.', false, 1),
 ('connection', 'needs_reauth', 'Needs re-authentication', 'The remote refused or expired the credentials; a person must supply new ones.', false, 2),
 ('connection', 'disabled', 'Disabled', 'Not used, by a person''s or the runtime''s decision (status_reason says why).', false, 3),
 ('connection', 'degraded', 'Degraded', 'Calls keep failing; still used, may be disabled if it continues.', false, 4);

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (21, 'Connector registry: a closed enum, JSON Schema subset, secrets by path',
  'Issue 5 items 1 and 2; seed 004 separates integration types (blueprints defined by developers) from instances (tenant configurations), seed 003 keeps one connection per type per tenant and allowlists tenants; seed 001 keeps secrets in qivault only. Nothing says how types are defined, how configs are validated or how secret fields are told apart.',
  'Connector types are one Rust enum (spine_core::connector::ConnectorType), no plugins; each has a stable name, display data, a category, JSON Schema 2020-12 documents for auth, source and output (include_str! JSON files) and capabilities. qiconnect.connector_types mirrors it, seeded by migrations and compared with the code by a test. A connection config is one object: auth plus the source and/or output fields, validated by Spine''s own validator for the keywords the schemas use (type, properties, required, additionalProperties, enum, const, minLength, maxLength, format uri, oneOf tagged by type), with errors per dotted field path; a unit test refuses any other keyword in a shipped schema. Each type lists its secret fields by dotted path; they are taken out before the config is stored and sealed into qivault.secrets (owner connection, field name the path with dots as underscores), referenced by id from secret_refs. Responses list only which secret fields are set. Types may be single_instance (webhook_out is: one outgoing event endpoint per tenant), enforced by a trigger under an advisory lock. Connection endpoints require connections:admin and the tenant''s integrations_enabled flag.',
  'A new type is a new variant, its schema files and a migration row; the compiler lists the places its behaviour (test call, health check, error classifier) must be added. The validator is small and owned, but supports only what the schemas use: a schema needing more keywords extends it (or moves to the jsonschema crate). http_json connections may be many per tenant, a relaxation of seed 003''s one-per-type rule, which single_instance keeps for types that need it.',
  'docs/decisions/0021-connector-registry.md', DATE '2026-11-22');
