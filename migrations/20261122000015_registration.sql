-- Registration, review and provenance (issue 4 items 3, 8, 9; decision 0019).
-- A file has versions; every version is one blob (by SHA-256). Identical bytes in a tenant are one
-- version, so a second arrival of them is a duplicate capture. Staged rows carry their profile's
-- proposal and a review history; promotion leaves source links and external ids behind.

CREATE TABLE qinexus.file_versions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES core.tenants (id),
    file_id          uuid NOT NULL,
    version          integer NOT NULL CHECK (version > 0),
    original_name    text NOT NULL,
    content_sha256   text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes       bigint NOT NULL CHECK (size_bytes >= 0),
    media_type       text NOT NULL,
    capture_event_id uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text,
    UNIQUE (tenant_id, id),
    UNIQUE (file_id, version),
    UNIQUE (tenant_id, content_sha256),
    FOREIGN KEY (tenant_id, file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, capture_event_id) REFERENCES qiaccess.capture_events (tenant_id, id)
);
SELECT qieos.register_table('qinexus', 'file_versions', 'Every version of a registered file: its bytes (by hash), size, detected media type and the capture that brought it.', 'qinexus', 'private', 'runtime', '{
  "file_id": "The registered file this is a version of.",
  "version": "Version number, 1 for the first bytes registered under the name.",
  "original_name": "The file name exactly as given with this version.",
  "content_sha256": "SHA-256 of the version''s bytes (hex): the blob store key; unique per tenant.",
  "size_bytes": "Size of the version in bytes.",
  "media_type": "Media type detected from the content.",
  "capture_event_id": "The arrival that brought these bytes."
}');

-- One file per name within a source: a new version when the bytes change.
CREATE UNIQUE INDEX files_source_name ON qinexus.files (tenant_id, source_id, original_name);

ALTER TABLE qiaccess.capture_events ADD COLUMN file_version integer CHECK (file_version > 0);
COMMENT ON COLUMN qiaccess.capture_events.file_version IS 'The file version the arrival became (or duplicated), when any.';
SELECT qieos.register_table('qiaccess', 'capture_events', 'Every arrival at the front door, before anything owns its meaning: who, through which route, when, and what it became.', 'qiaccess', 'private', 'runtime');

ALTER TABLE qinexus.import_batches ADD COLUMN profile text;
COMMENT ON COLUMN qinexus.import_batches.profile IS 'Import profile used to map the batch''s rows (detected from the header, or forced at upload).';
ALTER TABLE qinexus.import_batches ADD COLUMN forced_profile boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN qinexus.import_batches.forced_profile IS 'True when the uploader chose the profile instead of detection.';
ALTER TABLE qinexus.import_batches DROP CONSTRAINT import_batches_status_check;
ALTER TABLE qinexus.import_batches ADD CONSTRAINT import_batches_status_check
    CHECK (status IN ('received', 'staging', 'staged', 'reviewing', 'promoted', 'failed', 'registered'));
SELECT qieos.register_table('qinexus', 'import_batches', 'One arrival of material (an upload, a sync run, a dropped folder) and what became of its rows.', 'qinexus', 'private', 'canonical', '{}', NULL, 'A batch is provenance itself: source_file_id and import_batch_id would be self-references, source_system is given by source_id.');

-- Review: the proposal a profile made for each staged row and the decisions taken on it.
ALTER TABLE staging.import_rows
    ADD COLUMN profile text,
    ADD COLUMN proposed_action text CHECK (proposed_action IN ('create', 'merge', 'skip')),
    ADD COLUMN proposal jsonb,
    ADD COLUMN match_evidence jsonb,
    ADD COLUMN target_entity_id uuid,
    ADD COLUMN promoted_entity_id uuid,
    ADD COLUMN decided_by text,
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN decision_note text;
COMMENT ON COLUMN staging.import_rows.profile IS 'Import profile that mapped the row.';
COMMENT ON COLUMN staging.import_rows.proposed_action IS 'What promotion would do: create a new entity, merge into target_entity_id, or skip.';
COMMENT ON COLUMN staging.import_rows.proposal IS 'The mapped record (person, organization, identifiers, external id) as promotion will write it; edited mappings replace it.';
COMMENT ON COLUMN staging.import_rows.match_evidence IS 'Why a merge was proposed: the identifiers or external id that matched an existing entity.';
COMMENT ON COLUMN staging.import_rows.target_entity_id IS 'The existing entity a merge writes into.';
COMMENT ON COLUMN staging.import_rows.promoted_entity_id IS 'The canonical entity promotion created or merged into.';
COMMENT ON COLUMN staging.import_rows.decided_by IS 'Who took the last review decision, as kind:id (policy:auto_approve for automatic approval).';
COMMENT ON COLUMN staging.import_rows.decided_at IS 'When the last review decision was taken.';
COMMENT ON COLUMN staging.import_rows.decision_note IS 'The note given with the last decision (required for reject and merge).';
CREATE INDEX import_rows_review ON staging.import_rows (tenant_id, import_batch_id, review_status);
SELECT qieos.register_table('staging', 'import_rows', 'Rows staged from structured files, awaiting review before promotion to canonical tables.', 'staging', 'private', 'staging');

CREATE TABLE qinexus.review_decisions (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES core.tenants (id),
    import_row_id    uuid NOT NULL REFERENCES staging.import_rows (id),
    import_batch_id  uuid NOT NULL,
    decision         text NOT NULL CHECK (decision IN ('approve', 'reject', 'edit', 'auto_approve', 'promote')),
    note             text,
    details          jsonb NOT NULL DEFAULT '{}',
    decided_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
CREATE INDEX ON qinexus.review_decisions (import_row_id, created_at);
SELECT qieos.register_table('qinexus', 'review_decisions', 'Every review decision on a staged row: who, when, what and why.', 'qinexus', 'private', 'runtime', '{
  "import_row_id": "The staged row decided on.",
  "decision": "approve, reject, edit (mapping changed), auto_approve (tenant policy) or promote.",
  "note": "The reviewer''s note; required for reject and merge.",
  "details": "What changed (the edited mapping, the merge target)."
}');

-- Per-tenant review policy.
ALTER TABLE core.tenants ADD COLUMN auto_approve_exact_matches boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN core.tenants.auto_approve_exact_matches IS 'Review policy: staged rows whose proposal is an exact match (same email, phone or external id as one existing entity) are approved without a reviewer.';
SELECT qieos.register_table('core', 'tenants', 'Tenants: the isolation boundary every tenant-owned row belongs to.', 'core', 'internal', 'canonical', '{}', NULL, 'Tenants are created by operators, never imported: source_system, source_file_id, import_batch_id and per-row sensitivity do not apply.');

-- Provenance: which staged row (and so which batch, file version and capture) a canonical record
-- came from. Many rows may feed one record (merges), one row may feed several (person +
-- organization + relationship).
CREATE TABLE qinexus.source_entity_links (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES core.tenants (id),
    record_table     text NOT NULL CHECK (record_table ~ '^[a-z_]+\.[a-z_]+$'),
    record_id        uuid NOT NULL,
    import_row_id    uuid NOT NULL REFERENCES staging.import_rows (id),
    import_batch_id  uuid NOT NULL,
    source_file_id   uuid NOT NULL,
    file_version     integer NOT NULL CHECK (file_version > 0),
    link_role        text NOT NULL CHECK (link_role IN ('created', 'merged', 'identifier', 'relationship', 'external_id')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text,
    UNIQUE (record_table, record_id, import_row_id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id),
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id)
);
CREATE INDEX ON qinexus.source_entity_links (tenant_id, record_id);
CREATE INDEX ON qinexus.source_entity_links (tenant_id, source_file_id);
SELECT qieos.register_table('qinexus', 'source_entity_links', 'Provenance links from canonical records back to the staged rows, batches and file versions they came from.', 'qinexus', 'private', 'runtime', '{
  "record_table": "The canonical table of the record, as schema.table.",
  "record_id": "The canonical record''s id.",
  "import_row_id": "The staged row it came from.",
  "file_version": "The version of the source file the row was staged from.",
  "link_role": "How the row fed the record: created it, merged into it, or added an identifier, relationship or external id."
}');

-- External ids: the id a source system gives the thing a canonical entity is.
CREATE TABLE qiconnect.external_ids (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES core.tenants (id),
    entity_id          uuid NOT NULL,
    external_system    text NOT NULL CHECK (external_system ~ '^[a-z0-9][a-z0-9_.-]*$'),
    external_id        text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 500),
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'merged', 'archived')),
    source_system      text,
    source_file_id     uuid,
    import_batch_id    uuid,
    sensitivity_level  text NOT NULL DEFAULT 'private' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    UNIQUE (tenant_id, external_system, external_id),
    FOREIGN KEY (tenant_id, entity_id) REFERENCES core.entities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
CREATE INDEX ON qiconnect.external_ids (tenant_id, entity_id);
SELECT qieos.register_table('qiconnect', 'external_ids', 'The ids source systems give the things canonical entities are, so a re-import finds the same entity.', 'qiconnect', 'private', 'external_reference', '{
  "entity_id": "The canonical entity the external id names.",
  "external_system": "The system that issued the id (e.g. google_contacts, zoho_crm).",
  "external_id": "The id as the system gives it."
}');

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (19, 'Registration: versions by name, duplicates by content',
  'Issue 4 item 3: same name with new bytes is a new version of the same file; identical bytes again are a duplicate capture pointing at the existing file. Seeds 000 and 001 do not say what "same name" means across ingress routes.',
  'A file is identified by (tenant, source, original name); a source is one ingress route (upload, one watch folder, one mailbox). A version is identified by its SHA-256, unique per tenant: bytes already registered under any name in the tenant are a duplicate capture (is_duplicate, file_id and file_version of the existing version), with no new file, batch or job. Registration takes a transaction-scoped advisory lock on (tenant, hash) and on (tenant, source, name), writes capture, file, version, an import batch per new version (staged row numbers are per file) and its processing job in one transaction, and deletes a blob it created when the transaction fails (under a lock on the hash, unless a version uses it). Proposals are made when the file is processed: a row whose identifiers or external id match active entities becomes a merge (exact when all point to one entity), else a create; promotion matches again, so re-imports and duplicate rows merge instead of duplicating.',
  'Re-dropping the same file anywhere is cheap and visible. A file renamed without change is a duplicate, not a new file (its capture records the new name). Two different files with one name in one source become versions of one file.',
  'docs/decisions/0019-registration-versions.md', DATE '2026-11-22');
