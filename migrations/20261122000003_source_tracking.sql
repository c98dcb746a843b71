-- Phases 3 and 4 (seed 001 §16): source tracking in qinexus, front-door capture in qiaccess and the
-- generic staging table. Tables carry (tenant_id, id) unique keys so that references between
-- tenant-owned rows are composite and can never cross tenants.

CREATE TABLE qinexus.sources (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES core.tenants (id),
    source_key     text NOT NULL,
    source_kind    text NOT NULL CHECK (source_kind IN ('upload', 'watch_folder', 'device_agent', 'webhook', 'imap', 'object_storage', 'feed', 'connector', 'manual')),
    display_name   text NOT NULL,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'archived')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text,
    updated_by     text,
    notes          text,
    UNIQUE (tenant_id, id),
    UNIQUE (tenant_id, source_key)
);
SELECT qieos.register_table('qinexus', 'sources', 'Where material comes from: an upload route, a watch folder, a mailbox, a connection.', 'qinexus', 'private', 'canonical', '{
  "source_key": "Stable key of the source within the tenant (e.g. upload, inbox:/data/inbox).",
  "source_kind": "Kind of ingress the source is."
}', NULL, 'A source is the origin of provenance itself: source_file_id, import_batch_id and source_system would be self-references; sensitivity is set per file.');

CREATE TABLE qinexus.files (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES core.tenants (id),
    source_id          uuid NOT NULL,
    original_name      text NOT NULL,
    storage_name       text NOT NULL,
    current_version    integer NOT NULL DEFAULT 1 CHECK (current_version > 0),
    content_sha256     text NOT NULL CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes         bigint NOT NULL CHECK (size_bytes >= 0),
    media_type         text NOT NULL,
    status             text NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'processing', 'processed', 'failed')),
    sensitivity_level  text NOT NULL DEFAULT 'private' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    notes              text,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, source_id) REFERENCES qinexus.sources (tenant_id, id)
);
CREATE INDEX ON qinexus.files (tenant_id, content_sha256);
CREATE INDEX ON qinexus.files (tenant_id, source_id, original_name);
SELECT qieos.register_table('qinexus', 'files', 'Registered files: every raw file Spine has taken in, by name, hash and source; the bytes live in the blob store.', 'qinexus', 'private', 'canonical', '{
  "source_id": "The source the file arrived through.",
  "original_name": "The file name exactly as given by the sender.",
  "storage_name": "Sanitised name safe for any file system.",
  "current_version": "Number of the newest version of the file.",
  "content_sha256": "SHA-256 of the newest version (hex); the blob store key.",
  "size_bytes": "Size of the newest version in bytes.",
  "media_type": "Media type detected from the content."
}', NULL, 'Files are the origin of provenance: source_file_id and import_batch_id would be self-references, and source_system is given by source_id.');

CREATE TABLE qinexus.import_batches (
    id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id    uuid NOT NULL REFERENCES core.tenants (id),
    source_id    uuid NOT NULL,
    status       text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'staging', 'staged', 'promoted', 'failed')),
    rows_total   integer NOT NULL DEFAULT 0 CHECK (rows_total >= 0),
    rows_ok      integer NOT NULL DEFAULT 0 CHECK (rows_ok >= 0),
    rows_error   integer NOT NULL DEFAULT 0 CHECK (rows_error >= 0),
    summary      jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text,
    updated_by   text,
    notes        text,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, source_id) REFERENCES qinexus.sources (tenant_id, id)
);
SELECT qieos.register_table('qinexus', 'import_batches', 'One arrival of material (an upload, a sync run, a dropped folder) and what became of its rows.', 'qinexus', 'private', 'canonical', '{
  "rows_total": "Rows staged from the batch.",
  "rows_ok": "Rows parsed without error.",
  "rows_error": "Rows kept with a parse error.",
  "summary": "Machine-readable summary of staging and promotion."
}', NULL, 'A batch is provenance itself: source_file_id and import_batch_id would be self-references, source_system is given by source_id.');

CREATE TABLE qinexus.import_files (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES core.tenants (id),
    import_batch_id  uuid NOT NULL,
    file_id          uuid NOT NULL,
    file_version     integer NOT NULL CHECK (file_version > 0),
    status           text NOT NULL DEFAULT 'registered' CHECK (status IN ('registered', 'processing', 'processed', 'failed')),
    error_message    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    UNIQUE (import_batch_id, file_id, file_version),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id),
    FOREIGN KEY (tenant_id, file_id) REFERENCES qinexus.files (tenant_id, id)
);
SELECT qieos.register_table('qinexus', 'import_files', 'Which file versions an import batch contains, and how processing each went.', 'qinexus', 'private', 'runtime', '{
  "file_id": "The registered file.",
  "file_version": "The version of the file taken in by this batch.",
  "error_message": "Why processing failed, when it did."
}');

CREATE TABLE qiaccess.capture_events (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES core.tenants (id),
    ingress_kind     text NOT NULL CHECK (ingress_kind IN ('upload', 'watch_folder', 'device_agent', 'webhook', 'imap', 'object_storage', 'feed', 'connector', 'manual')),
    route            text NOT NULL,
    device_id        text,
    captured_by      text NOT NULL,
    captured_at      timestamptz NOT NULL DEFAULT now(),
    content_sha256   text CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    file_id          uuid,
    import_batch_id  uuid,
    is_duplicate     boolean NOT NULL DEFAULT false,
    details          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
CREATE INDEX ON qiaccess.capture_events (tenant_id, captured_at DESC);
SELECT qieos.register_table('qiaccess', 'capture_events', 'Every arrival at the front door, before anything owns its meaning: who, through which route, when, and what it became.', 'qiaccess', 'private', 'runtime', '{
  "ingress_kind": "Which kind of ingress received the item.",
  "route": "The route within the ingress (API path, watched folder, mailbox).",
  "device_id": "The enrolled device that delivered it, when any.",
  "captured_by": "The principal that delivered it, as kind:id.",
  "captured_at": "When it arrived.",
  "content_sha256": "SHA-256 of the arrived bytes (hex).",
  "file_id": "The registered file it became, when any.",
  "is_duplicate": "True when identical bytes were already registered and no new file was made.",
  "details": "Ingress-specific context (headers, sizes); never credentials."
}');

CREATE TABLE staging.import_rows (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES core.tenants (id),
    import_batch_id  uuid NOT NULL,
    source_file_id   uuid NOT NULL,
    row_number       integer NOT NULL CHECK (row_number > 0),
    raw_payload      jsonb,
    raw_text         text,
    parse_error      text,
    review_status    text NOT NULL DEFAULT 'pending' CHECK (review_status IN ('pending', 'approved', 'rejected', 'skipped', 'promoted', 'error')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (import_batch_id, row_number),
    CHECK (raw_payload IS NOT NULL OR (raw_text IS NOT NULL AND parse_error IS NOT NULL)),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id),
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id)
);
SELECT qieos.register_table('staging', 'import_rows', 'Rows staged from structured files, awaiting review before promotion to canonical tables.', 'staging', 'private', 'staging', '{
  "raw_text": "The row as text when it could not be parsed.",
  "parse_error": "Why the row could not be parsed, when it could not."
}');
