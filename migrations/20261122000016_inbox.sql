-- The local inbox watcher's state (issue 4 item 5): one row per file the watcher took from a
-- watched folder. The row is written with status 'registering' before the registration
-- transaction runs, and the capture event that transaction writes carries the row's id in its
-- details (inbox_entry_id). After a crash, an entry still 'registering' is resolved by that id:
-- a capture found means the file was registered and only the move is left; none means it is
-- registered again under the same entry. Read-only folders use the newest finished entry of a
-- path (size, mtime) to know which files they already took.

CREATE TABLE qiaccess.inbox_entries (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES core.tenants (id),
    folder            text NOT NULL,
    relative_path     text NOT NULL,
    raw_path          bytea,
    size_bytes        bigint NOT NULL CHECK (size_bytes >= 0),
    file_mtime_ns     bigint NOT NULL,
    content_sha256    text CHECK (content_sha256 ~ '^[0-9a-f]{64}$'),
    status            text NOT NULL CHECK (status IN ('registering', 'registered', 'duplicate', 'failed')),
    reason            text,
    file_id           uuid,
    file_version      integer CHECK (file_version > 0),
    capture_event_id  uuid,
    moved_to          text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text,
    updated_by        text,
    UNIQUE (tenant_id, id),
    CHECK (status <> 'failed' OR reason IS NOT NULL),
    FOREIGN KEY (tenant_id, file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, capture_event_id) REFERENCES qiaccess.capture_events (tenant_id, id)
);
CREATE INDEX ON qiaccess.inbox_entries (tenant_id, folder, relative_path, created_at DESC);
CREATE INDEX ON qiaccess.inbox_entries (tenant_id, folder) WHERE status = 'registering';
SELECT qieos.register_table('qiaccess', 'inbox_entries', 'Files the local inbox watcher took from a watched folder: what it saw, what the registration became and where the file went.', 'qiaccess', 'private', 'runtime', '{
  "folder": "The watched folder the file was found in (absolute path).",
  "relative_path": "Path of the file relative to the folder; bytes that are not UTF-8 appear as U+FFFD (raw_path keeps them).",
  "raw_path": "The exact bytes of the relative path when they are not valid UTF-8; NULL otherwise.",
  "size_bytes": "Size of the file in bytes when it was taken.",
  "file_mtime_ns": "Modification time of the file when it was taken, in nanoseconds since the Unix epoch.",
  "content_sha256": "SHA-256 of the bytes read (hex); NULL when the file could not be read.",
  "status": "registering (intent recorded, outcome not yet), registered, duplicate (bytes already registered) or failed.",
  "reason": "Why the file was not registered, or a note on how an interrupted registration was resolved.",
  "file_id": "The registered file the bytes became (or duplicated).",
  "file_version": "The version of that file the bytes became (or duplicated).",
  "capture_event_id": "The capture event the registration wrote.",
  "moved_to": "Where the file was moved, relative to the folder (processed/... or failed/...); NULL when it stayed in place."
}');

INSERT INTO qieos.statuses (status_domain, status_key, display_name, description, is_terminal, sort_order) VALUES
 ('inbox_entry', 'registering', 'Registering', 'Intent recorded; the registration''s outcome is not known yet (after a crash it is found by the entry id).', false, 1),
 ('inbox_entry', 'registered', 'Registered', 'The bytes became a new file or file version.', true, 2),
 ('inbox_entry', 'duplicate', 'Duplicate', 'The bytes were already registered in the tenant; a duplicate capture points at them.', true, 3),
 ('inbox_entry', 'failed', 'Failed', 'Not registered, for the stated reason; the file went to failed/ (or stayed, in a read-only folder).', true, 4);
