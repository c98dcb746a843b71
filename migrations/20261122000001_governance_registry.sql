-- Phase 1 (seed 001 §16): the approved schemas, the governance registry (qieos) and the helpers
-- every later migration uses to register what it creates. Forward-only: never edit once landed.

CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA IF NOT EXISTS qieos;
CREATE SCHEMA IF NOT EXISTS qisystem;
CREATE SCHEMA IF NOT EXISTS qinexus;
CREATE SCHEMA IF NOT EXISTS qiaccess;
CREATE SCHEMA IF NOT EXISTS qilife;
CREATE SCHEMA IF NOT EXISTS qiconnect;
CREATE SCHEMA IF NOT EXISTS qiserver;
CREATE SCHEMA IF NOT EXISTS qivault;
CREATE SCHEMA IF NOT EXISTS staging;

-- The role Spine's requests and workers run as (SET LOCAL ROLE per transaction): not a superuser,
-- no BYPASSRLS, so row-level security always applies to it. Roles are cluster-wide, so several
-- Spine databases on one server share it; creation tolerates a concurrent creator.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spine_app') THEN
        BEGIN
            CREATE ROLE spine_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
        END;
    END IF;
END $$;
GRANT spine_app TO CURRENT_USER;
GRANT USAGE ON SCHEMA core, qieos, qisystem, qinexus, qiaccess, qilife, qiconnect, qiserver, qivault, staging TO spine_app;

-- The tenant of the current transaction, set by Spine from the authenticated identity
-- (set_config('spine.tenant_id', …, true)). NULL when unset, so tenant policies match nothing.
CREATE FUNCTION core.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('spine.tenant_id', true), '')::uuid $$;

CREATE FUNCTION core.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

-- ---------------------------------------------------------------------------------------------
-- Registry tables (seed 001 §7).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE qieos.schemas (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schema_name         text NOT NULL UNIQUE,
    owning_module       text NOT NULL,
    purpose             text NOT NULL,
    status              text NOT NULL DEFAULT 'active'
                        CHECK (status IN ('proposed', 'active', 'deprecated', 'retired')),
    sensitivity_level   text CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    approved            boolean NOT NULL DEFAULT false,
    creation_criteria   text[] NOT NULL DEFAULT '{}',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    deprecated_at       timestamptz
);

CREATE TABLE qieos.tables (
    id                       uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    schema_id                uuid NOT NULL REFERENCES qieos.schemas (id),
    table_name               text NOT NULL,
    purpose                  text NOT NULL,
    owner                    text NOT NULL,
    status                   text NOT NULL DEFAULT 'active'
                             CHECK (status IN ('proposed', 'active', 'deprecated', 'retired')),
    sensitivity_level        text CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    source_of_truth_policy   text CHECK (source_of_truth_policy IN ('canonical', 'derived', 'imported', 'cached', 'runtime', 'staging', 'archived', 'external_reference')),
    naming_exception_reason  text,
    metadata_waiver_reason   text,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now(),
    deprecated_at            timestamptz,
    UNIQUE (schema_id, table_name)
);

CREATE TABLE qieos.fields (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    field_key          text NOT NULL UNIQUE,
    display_name       text NOT NULL,
    description        text NOT NULL,
    data_type          text NOT NULL,
    canonical_format   text,
    sensitivity_level  text NOT NULL CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    allowed_values     text[],
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    deprecated_at      timestamptz
);

CREATE TABLE qieos.field_usages (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    field_id       uuid NOT NULL REFERENCES qieos.fields (id),
    schema_name    text NOT NULL,
    table_name     text NOT NULL,
    column_name    text NOT NULL,
    data_type      text NOT NULL,
    is_required    boolean NOT NULL,
    is_unique      boolean NOT NULL,
    is_indexed     boolean NOT NULL,
    default_value  text,
    usage_notes    text,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (schema_name, table_name, column_name)
);

CREATE TABLE qieos.statuses (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status_domain  text NOT NULL,
    status_key     text NOT NULL,
    display_name   text NOT NULL,
    description    text NOT NULL,
    is_terminal    boolean NOT NULL DEFAULT false,
    sort_order     integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (status_domain, status_key)
);

CREATE TABLE qieos.relationship_types (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    type_key            text NOT NULL UNIQUE,
    display_name        text NOT NULL,
    description         text NOT NULL,
    source_entity_kind  text,
    target_entity_kind  text,
    inverse_type_key    text,
    is_symmetric        boolean NOT NULL DEFAULT false,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE qieos.adr_records (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    adr_number    integer NOT NULL UNIQUE,
    title         text NOT NULL,
    status        text NOT NULL DEFAULT 'accepted' CHECK (status IN ('proposed', 'accepted', 'superseded', 'rejected')),
    context       text NOT NULL,
    decision      text NOT NULL,
    consequences  text NOT NULL,
    document_path text,
    decided_at    date NOT NULL DEFAULT current_date,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- ---------------------------------------------------------------------------------------------
-- Registration helpers.
-- ---------------------------------------------------------------------------------------------
CREATE FUNCTION qieos.register_schema(
    p_schema text, p_owning_module text, p_purpose text, p_sensitivity text,
    p_approved boolean DEFAULT true, p_creation_criteria text[] DEFAULT '{}')
RETURNS uuid LANGUAGE plpgsql AS $$
DECLARE v_id uuid;
BEGIN
    INSERT INTO qieos.schemas (schema_name, owning_module, purpose, sensitivity_level, approved, creation_criteria)
    VALUES (p_schema, p_owning_module, p_purpose, p_sensitivity, p_approved, p_creation_criteria)
    ON CONFLICT (schema_name) DO UPDATE
        SET owning_module = EXCLUDED.owning_module, purpose = EXCLUDED.purpose,
            sensitivity_level = EXCLUDED.sensitivity_level, approved = EXCLUDED.approved,
            creation_criteria = EXCLUDED.creation_criteria, updated_at = now()
    RETURNING id INTO v_id;
    RETURN v_id;
END $$;

-- Registers a table and every one of its columns (qieos.tables, qieos.fields, qieos.field_usages),
-- taking each column's description from p_descriptions, else its COMMENT, else the shared field
-- already registered under that key; a column with none of these fails the migration. Tables with
-- an updated_at column get the touch trigger; tables with tenant_id get row-level security and
-- DML for spine_app; other tables are readable by spine_app.
CREATE FUNCTION qieos.register_table(
    p_schema text, p_table text, p_purpose text, p_owner text, p_sensitivity text, p_policy text,
    p_descriptions jsonb DEFAULT '{}', p_naming_exception text DEFAULT NULL, p_metadata_waiver text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_schema_id uuid;
    v_rel oid := format('%I.%I', p_schema, p_table)::regclass;
    c record;
    v_desc text;
    v_field_id uuid;
BEGIN
    SELECT id INTO v_schema_id FROM qieos.schemas WHERE schema_name = p_schema;
    IF v_schema_id IS NULL THEN
        RAISE EXCEPTION 'schema % is not registered in qieos.schemas', p_schema;
    END IF;
    INSERT INTO qieos.tables (schema_id, table_name, purpose, owner, sensitivity_level, source_of_truth_policy,
                              naming_exception_reason, metadata_waiver_reason)
    VALUES (v_schema_id, p_table, p_purpose, p_owner, p_sensitivity, p_policy, p_naming_exception, p_metadata_waiver)
    ON CONFLICT (schema_id, table_name) DO UPDATE
        SET purpose = EXCLUDED.purpose, owner = EXCLUDED.owner, sensitivity_level = EXCLUDED.sensitivity_level,
            source_of_truth_policy = EXCLUDED.source_of_truth_policy,
            naming_exception_reason = EXCLUDED.naming_exception_reason,
            metadata_waiver_reason = EXCLUDED.metadata_waiver_reason, updated_at = now();

    FOR c IN
        SELECT a.attname::text AS col, format_type(a.atttypid, a.atttypmod) AS typ, a.attnotnull AS req,
               pg_get_expr(d.adbin, d.adrelid) AS def, col_description(v_rel, a.attnum) AS cmt,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = v_rel AND i.indisunique
                       AND i.indnatts = 1 AND i.indkey[0] = a.attnum) AS uniq,
               EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = v_rel AND i.indkey[0] = a.attnum) AS idx
        FROM pg_attribute a
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
        WHERE a.attrelid = v_rel AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum
    LOOP
        v_desc := coalesce(p_descriptions ->> c.col, c.cmt);
        SELECT id INTO v_field_id FROM qieos.fields WHERE field_key = c.col;
        IF v_field_id IS NULL THEN
            IF v_desc IS NULL THEN
                RAISE EXCEPTION 'column %.%.% has no description: pass one to qieos.register_table', p_schema, p_table, c.col;
            END IF;
            INSERT INTO qieos.fields (field_key, display_name, description, data_type, sensitivity_level)
            VALUES (c.col, initcap(replace(c.col, '_', ' ')), v_desc, c.typ, p_sensitivity)
            RETURNING id INTO v_field_id;
            v_desc := NULL; -- the field carries it; the usage needs no note
        END IF;
        INSERT INTO qieos.field_usages (field_id, schema_name, table_name, column_name, data_type,
                                        is_required, is_unique, is_indexed, default_value, usage_notes)
        VALUES (v_field_id, p_schema, p_table, c.col, c.typ, c.req, c.uniq, c.idx, c.def, v_desc)
        ON CONFLICT (schema_name, table_name, column_name) DO UPDATE
            SET field_id = EXCLUDED.field_id, data_type = EXCLUDED.data_type, is_required = EXCLUDED.is_required,
                is_unique = EXCLUDED.is_unique, is_indexed = EXCLUDED.is_indexed,
                default_value = EXCLUDED.default_value,
                usage_notes = coalesce(EXCLUDED.usage_notes, qieos.field_usages.usage_notes), updated_at = now();
    END LOOP;

    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = v_rel AND attname = 'updated_at' AND NOT attisdropped)
       AND NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = v_rel AND tgname = 'touch_updated_at') THEN
        EXECUTE format('CREATE TRIGGER touch_updated_at BEFORE UPDATE ON %I.%I FOR EACH ROW EXECUTE FUNCTION core.touch_updated_at()', p_schema, p_table);
    END IF;

    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = v_rel AND attname = 'tenant_id' AND NOT attisdropped) THEN
        EXECUTE format('ALTER TABLE %I.%I ENABLE ROW LEVEL SECURITY', p_schema, p_table);
        IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = v_rel AND polname = 'tenant_isolation') THEN
            EXECUTE format('CREATE POLICY tenant_isolation ON %I.%I USING (tenant_id = core.current_tenant_id()) WITH CHECK (tenant_id = core.current_tenant_id())', p_schema, p_table);
        END IF;
        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %I.%I TO spine_app', p_schema, p_table);
    ELSIF p_schema <> 'qivault' THEN
        EXECUTE format('GRANT SELECT ON %I.%I TO spine_app', p_schema, p_table);
    END IF;
END $$;

-- ---------------------------------------------------------------------------------------------
-- Shared fields: the §13 metadata columns and other keys used across many tables, so each table
-- only describes what is its own.
-- ---------------------------------------------------------------------------------------------
INSERT INTO qieos.fields (field_key, display_name, description, data_type, sensitivity_level, allowed_values) VALUES
 ('id', 'Id', 'Primary key: a UUID (v7 when written by Spine, so ids sort by creation time).', 'uuid', 'internal', NULL),
 ('tenant_id', 'Tenant', 'The tenant that owns the row; row-level security restricts every query to the current tenant.', 'uuid', 'internal', NULL),
 ('created_at', 'Created at', 'When the row was created.', 'timestamp with time zone', 'internal', NULL),
 ('updated_at', 'Updated at', 'When the row last changed; maintained by the touch_updated_at trigger.', 'timestamp with time zone', 'internal', NULL),
 ('deprecated_at', 'Deprecated at', 'When the row was deprecated; NULL while current.', 'timestamp with time zone', 'internal', NULL),
 ('created_by', 'Created by', 'The principal (user, API key or service) that created the row, as kind:id.', 'text', 'internal', NULL),
 ('updated_by', 'Updated by', 'The principal that last changed the row, as kind:id.', 'text', 'internal', NULL),
 ('status', 'Status', 'Lifecycle status; allowed values per table are listed in qieos.statuses.', 'text', 'internal', NULL),
 ('source_system', 'Source system', 'The external system or ingress the row came from (e.g. upload, google_contacts).', 'text', 'internal', NULL),
 ('source_file_id', 'Source file', 'The registered file (qinexus.files) the row was derived from, when any.', 'uuid', 'internal', NULL),
 ('import_batch_id', 'Import batch', 'The import batch (qinexus.import_batches) that produced the row, when any.', 'uuid', 'internal', NULL),
 ('sensitivity_level', 'Sensitivity level', 'Sensitivity classification (seed 001 §9).', 'text', 'internal',
     ARRAY['public', 'internal', 'private', 'sensitive', 'restricted', 'secret']),
 ('source_of_truth_policy', 'Source-of-truth policy', 'How authoritative a table is (seed 001 §8).', 'text', 'internal',
     ARRAY['canonical', 'derived', 'imported', 'cached', 'runtime', 'staging', 'archived', 'external_reference']),
 ('notes', 'Notes', 'Free-text notes by people; never machine-parsed.', 'text', 'private', NULL),
 ('purpose', 'Purpose', 'What the described thing is for, in a sentence.', 'text', 'internal', NULL),
 ('display_name', 'Display name', 'Human-readable name shown in interfaces.', 'text', 'private', NULL),
 ('description', 'Description', 'Longer human-readable explanation.', 'text', 'internal', NULL),
 ('name', 'Name', 'Short unique name within its scope.', 'text', 'internal', NULL),
 ('entity_id', 'Entity', 'The core.entities row this row belongs to.', 'uuid', 'internal', NULL),
 ('row_number', 'Row number', '1-based position of the row in its source file (data rows, header excluded).', 'integer', 'internal', NULL),
 ('raw_payload', 'Raw payload', 'The source row exactly as parsed, as JSON keyed by header.', 'jsonb', 'private', NULL),
 ('review_status', 'Review status', 'Where the staged row stands in review (qieos.statuses domain review).', 'text', 'internal',
     ARRAY['pending', 'approved', 'rejected', 'skipped', 'promoted', 'error']);

-- ---------------------------------------------------------------------------------------------
-- The approved schema set (seed 001 §4, §15) with the default sensitivity of §9.
-- ---------------------------------------------------------------------------------------------
SELECT qieos.register_schema('core', 'core', 'Global primitives used across the ecosystem: tenants, people, organizations, identifiers, relationships, tags, audit.', 'private');
SELECT qieos.register_schema('qieos', 'qieos', 'Doctrine and governance: schema, table and field registries, statuses, relationship types, decisions.', 'internal');
SELECT qieos.register_schema('qisystem', 'qisystem', 'The map of the system: apps, modules, tenant memberships and permissions.', 'internal');
SELECT qieos.register_schema('qinexus', 'qinexus', 'Index of source material: sources, registered files and versions, import batches.', 'private');
SELECT qieos.register_schema('qiaccess', 'qiaccess', 'Front-door capture: every arrival is a capture event before anything else owns it.', 'private');
SELECT qieos.register_schema('qilife', 'qilife', 'Lived operational data: tasks, timelines, appointments.', 'sensitive');
SELECT qieos.register_schema('qiconnect', 'qiconnect', 'Integrations: providers, connections, sync state and external ids; never plaintext secrets.', 'sensitive');
SELECT qieos.register_schema('qiserver', 'qiserver', 'Infrastructure and runtime metadata: hosts, services, health checks.', 'internal');
SELECT qieos.register_schema('qivault', 'qivault', 'Protected material: credential hashes, encrypted secrets and key metadata.', 'restricted');
SELECT qieos.register_schema('staging', 'qinexus', 'Temporary pre-review rows from imports; never canonical.', 'private');

SELECT qieos.register_table('qieos', 'schemas', 'Approved database schemas and who owns them.', 'qieos', 'internal', 'canonical', '{
  "schema_name": "PostgreSQL schema name (lowercase, no hyphens).",
  "owning_module": "The Qi module that owns the meaning of the schema.",
  "approved": "True for the first approved set (seed 001 §15); otherwise the creation test must be recorded.",
  "creation_criteria": "Which of the seed 001 §5.2 creation-test criteria the schema meets (three or more required when not pre-approved)."
}', NULL, 'Registry rows ship with migrations: no import provenance, authorship or per-row sensitivity apply.');
SELECT qieos.register_table('qieos', 'tables', 'Every table in the governed schemas, with its meaning, owner, sensitivity and source-of-truth policy.', 'qieos', 'internal', 'canonical', '{
  "schema_id": "The registered schema the table lives in.",
  "table_name": "Table name (lowercase snake_case, plural unless a naming exception is recorded).",
  "owner": "The module responsible for the table.",
  "naming_exception_reason": "Why the table name breaks a naming rule (e.g. is singular); NULL when it does not.",
  "metadata_waiver_reason": "Why a canonical table omits some seed 001 §13 metadata columns; NULL when it has them all."
}', NULL, 'Registry rows ship with migrations: no import provenance, authorship or per-row sensitivity apply.');
SELECT qieos.register_table('qieos', 'fields', 'The canonical field registry: one row per field key used anywhere.', 'qieos', 'internal', 'canonical', '{
  "field_key": "Canonical key of the field, equal to the column name wherever it is used.",
  "data_type": "PostgreSQL type of the field where it was first registered.",
  "canonical_format": "Normalised text format of values, when one applies (e.g. E.164 for phones).",
  "allowed_values": "Closed list of values, when the field is an enumeration."
}', NULL, 'Registry rows ship with migrations: no import provenance, authorship or per-row sensitivity apply.');
SELECT qieos.register_table('qieos', 'field_usages', 'Where each registered field appears: schema, table, column and constraints.', 'qieos', 'internal', 'canonical', '{
  "field_id": "The field in qieos.fields.",
  "schema_name": "Schema of the column.",
  "table_name": "Table of the column.",
  "column_name": "Column name.",
  "data_type": "PostgreSQL type of this column.",
  "is_required": "True when the column is NOT NULL.",
  "is_unique": "True when a single-column unique index covers it.",
  "is_indexed": "True when an index starts with this column.",
  "default_value": "The column default expression, when any.",
  "usage_notes": "What this column means here beyond the field description."
}', NULL, 'Registry rows ship with migrations: no import provenance, authorship or per-row sensitivity apply.');
SELECT qieos.register_table('qieos', 'statuses', 'Allowed status values, grouped by domain.', 'qieos', 'internal', 'canonical', '{
  "status_domain": "The family of statuses (record, registry, review, batch, file, health, tenant, key).",
  "status_key": "The value stored in status columns.",
  "is_terminal": "True when nothing follows this status.",
  "sort_order": "Position in the usual lifecycle."
}', NULL, 'Registry rows ship with migrations: no import provenance, authorship or per-row sensitivity apply.');
SELECT qieos.register_table('qieos', 'relationship_types', 'Allowed core.relationships types and their direction.', 'qieos', 'internal', 'canonical', '{
  "type_key": "Value stored in core.relationships.relationship_type.",
  "source_entity_kind": "Entity kind expected on the source side (NULL = any).",
  "target_entity_kind": "Entity kind expected on the target side (NULL = any).",
  "inverse_type_key": "The type read from the target side, when directional.",
  "is_symmetric": "True when the relationship reads the same both ways."
}', NULL, 'Registry rows ship with migrations: no import provenance, authorship or per-row sensitivity apply.');
SELECT qieos.register_table('qieos', 'adr_records', 'Architectural decisions, including where the source documents conflict.', 'qieos', 'internal', 'canonical', '{
  "adr_number": "Sequential decision number, matching docs/decisions/NNNN-*.md.",
  "title": "Short title of the decision.",
  "context": "What forced a decision.",
  "decision": "What was decided.",
  "consequences": "What follows from it.",
  "document_path": "Path of the decision document in the repository.",
  "decided_at": "Date of the decision."
}', NULL, 'Registry rows ship with migrations: no import provenance, authorship or per-row sensitivity apply.');

INSERT INTO qieos.statuses (status_domain, status_key, display_name, description, is_terminal, sort_order) VALUES
 ('record', 'active', 'Active', 'In use.', false, 1),
 ('record', 'inactive', 'Inactive', 'Kept but not in use.', false, 2),
 ('record', 'merged', 'Merged', 'Merged into another record; kept for provenance.', true, 3),
 ('record', 'archived', 'Archived', 'Historical; read-only.', true, 4),
 ('registry', 'proposed', 'Proposed', 'Described but not yet approved.', false, 1),
 ('registry', 'active', 'Active', 'Approved and in use.', false, 2),
 ('registry', 'deprecated', 'Deprecated', 'Still present; do not use in new work.', false, 3),
 ('registry', 'retired', 'Retired', 'Removed from the database; row kept for history.', true, 4),
 ('review', 'pending', 'Pending review', 'Waiting for a decision.', false, 1),
 ('review', 'approved', 'Approved', 'Accepted for promotion.', false, 2),
 ('review', 'rejected', 'Rejected', 'Will not be promoted.', true, 3),
 ('review', 'skipped', 'Skipped', 'Nothing to promote.', true, 4),
 ('review', 'promoted', 'Promoted', 'Written to its canonical target.', true, 5),
 ('review', 'error', 'Error', 'Could not be parsed or promoted; kept with its error.', false, 6),
 ('batch', 'received', 'Received', 'Registered; staging not started.', false, 1),
 ('batch', 'staging', 'Staging', 'Rows are being staged.', false, 2),
 ('batch', 'staged', 'Staged', 'All rows staged; review may start.', false, 3),
 ('batch', 'promoted', 'Promoted', 'Every approved row promoted.', true, 4),
 ('batch', 'failed', 'Failed', 'Staging failed; see the batch error.', true, 5),
 ('file', 'registered', 'Registered', 'Recorded with its hash; processing not started.', false, 1),
 ('file', 'processing', 'Processing', 'A job is working on it.', false, 2),
 ('file', 'processed', 'Processed', 'Processing finished.', true, 3),
 ('file', 'failed', 'Failed', 'Processing failed; see the job.', true, 4),
 ('health', 'ok', 'OK', 'Check passed.', false, 1),
 ('health', 'degraded', 'Degraded', 'Check passed with warnings or slowly.', false, 2),
 ('health', 'down', 'Down', 'Check failed.', false, 3),
 ('health', 'unknown', 'Unknown', 'Not checked yet.', false, 4),
 ('tenant', 'active', 'Active', 'The tenant may sign in and work.', false, 1),
 ('tenant', 'suspended', 'Suspended', 'Credentials of the tenant are refused.', false, 2),
 ('key', 'active', 'Active', 'The key authenticates.', false, 1),
 ('key', 'revoked', 'Revoked', 'The key is refused; kept for audit.', true, 2);

INSERT INTO qieos.relationship_types (type_key, display_name, description, source_entity_kind, target_entity_kind, inverse_type_key, is_symmetric) VALUES
 ('works_at', 'Works at', 'A person is employed by or works for an organization.', 'person', 'organization', 'employs', false),
 ('employs', 'Employs', 'An organization employs a person.', 'organization', 'person', 'works_at', false),
 ('member_of', 'Member of', 'A person or organization belongs to an organization.', NULL, 'organization', 'has_member', false),
 ('has_member', 'Has member', 'An organization has a member.', 'organization', NULL, 'member_of', false),
 ('knows', 'Knows', 'Two people know each other.', 'person', 'person', 'knows', true),
 ('family_of', 'Family of', 'Two people are family.', 'person', 'person', 'family_of', true),
 ('reports_to', 'Reports to', 'A person reports to another person.', 'person', 'person', 'manages', false),
 ('manages', 'Manages', 'A person manages another person.', 'person', 'person', 'reports_to', false),
 ('subsidiary_of', 'Subsidiary of', 'An organization is owned by another.', 'organization', 'organization', 'parent_of', false),
 ('parent_of', 'Parent of', 'An organization owns another.', 'organization', 'organization', 'subsidiary_of', false),
 ('related_to', 'Related to', 'A relationship without a more specific type.', NULL, NULL, 'related_to', true);
