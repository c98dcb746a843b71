-- The vault (decision 0014, docs/decisions/0014-vault.md): tenant secrets encrypted with
-- AES-256-GCM under master keys that live only in Spine's configuration, never here. The database
-- holds key ids, states and public fingerprints; the ciphertext, its nonce and the id of the key
-- that sealed it; an append-only log of every decryption; and the progress of key rotations.

CREATE TABLE qivault.master_keys (
    key_id           text PRIMARY KEY CHECK (key_id ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$'),
    state            text NOT NULL DEFAULT 'decrypt_only' CHECK (state IN ('active', 'decrypt_only', 'retired')),
    key_fingerprint  text NOT NULL CHECK (key_fingerprint ~ '^[0-9a-f]{16}$'),
    activated_at     timestamptz,
    retired_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((state = 'retired') = (retired_at IS NOT NULL))
);
-- At most one key seals new secrets.
CREATE UNIQUE INDEX master_keys_one_active ON qivault.master_keys ((true)) WHERE state = 'active';
SELECT qieos.register_table('qivault', 'master_keys', 'Metadata of the vault''s master keys: id, state and a public fingerprint; never key material.', 'qivault', 'restricted', 'canonical', '{
  "key_id": "Id of the master key as configured (vault.master_keys, the key file); stored next to every ciphertext it sealed.",
  "state": "active (seals new secrets; at most one), decrypt_only (opens what it sealed until rotation moves it) or retired (no secret uses it; refused for use).",
  "key_fingerprint": "16 hex digits of SHA-256 over a domain tag and the key: catches a different key configured under a known id. Not key material.",
  "activated_at": "When the key last became the active key.",
  "retired_at": "When the key was retired; set exactly when state is retired."
}', NULL, 'Key metadata is written by Spine from its configuration, never imported: provenance, authorship, sensitivity and notes columns do not apply.');

CREATE TABLE qivault.secrets (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES core.tenants (id),
    owner_kind     text NOT NULL CHECK (owner_kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    owner_id       uuid NOT NULL,
    field_name     text NOT NULL CHECK (field_name ~ '^[a-z][a-z0-9_]{0,62}$'),
    version        integer NOT NULL CHECK (version >= 1),
    key_id         text NOT NULL,
    nonce          bytea NOT NULL CHECK (length(nonce) = 12),
    ciphertext     bytea NOT NULL CHECK (length(ciphertext) >= 16),
    replaced_at    timestamptz,
    destroy_after  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text,
    CHECK ((replaced_at IS NULL) = (destroy_after IS NULL))
);
-- One current version per owner and field; replaced versions wait for destroy_after.
CREATE UNIQUE INDEX secrets_current ON qivault.secrets (tenant_id, owner_kind, owner_id, field_name) WHERE replaced_at IS NULL;
CREATE INDEX secrets_key ON qivault.secrets (key_id);
CREATE INDEX secrets_destroy ON qivault.secrets (destroy_after) WHERE destroy_after IS NOT NULL;
SELECT qieos.register_table('qivault', 'secrets', 'Encrypted tenant secrets (connection credentials and the like): AES-256-GCM ciphertext bound to its row; never plaintext.', 'qivault', 'secret', 'canonical', '{
  "owner_kind": "What the secret belongs to, e.g. connection.",
  "owner_id": "Id of the owning row (e.g. the connection); no foreign key, owners live in several tables.",
  "field_name": "Which credential of the owner this is, e.g. api_token or refresh_token.",
  "version": "1 for the first value, +1 per replacement; part of the ciphertext binding.",
  "key_id": "The master key that sealed the ciphertext; rotation moves rows to the active key.",
  "nonce": "The 96-bit random AES-GCM nonce of this encryption.",
  "ciphertext": "AES-256-GCM ciphertext with its 16-byte tag; the authenticated data binds it to tenant, row, owner, field, version and key id.",
  "replaced_at": "When a newer version replaced this one; NULL for the current version.",
  "destroy_after": "When a replaced version is deleted (the grace period for in-flight users ends)."
}', NULL, 'Secrets are entered by people or obtained through OAuth, never imported from files: import provenance, status, sensitivity and notes columns do not apply (the table itself is secret).');

-- Secrets may be written only under a key the database knows and has not retired. Statement-level
-- (one lookup per batch, as in decision 0013); FOR KEY SHARE makes a concurrent retirement (which
-- locks the key row FOR UPDATE, then counts the key's secrets) either wait for this write or make
-- it fail.
CREATE FUNCTION qivault.secrets_check_keys() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bad text;
BEGIN
    PERFORM 1 FROM qivault.master_keys m
    WHERE m.key_id IN (SELECT DISTINCT key_id FROM new_secrets) FOR KEY SHARE;
    SELECT n.key_id INTO bad
    FROM (SELECT DISTINCT key_id FROM new_secrets) n
    WHERE NOT EXISTS (SELECT 1 FROM qivault.master_keys m WHERE m.key_id = n.key_id AND m.state <> 'retired')
    LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'master key % is unknown to the database or retired', bad
            USING ERRCODE = '23503', CONSTRAINT = 'secrets_key_usable';
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER secrets_check_keys_insert AFTER INSERT ON qivault.secrets
    REFERENCING NEW TABLE AS new_secrets FOR EACH STATEMENT EXECUTE FUNCTION qivault.secrets_check_keys();
CREATE TRIGGER secrets_check_keys_update AFTER UPDATE ON qivault.secrets
    REFERENCING NEW TABLE AS new_secrets FOR EACH STATEMENT EXECUTE FUNCTION qivault.secrets_check_keys();

CREATE TABLE qivault.access_events (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES core.tenants (id),
    secret_id      uuid NOT NULL,
    owner_kind     text NOT NULL,
    owner_id       uuid NOT NULL,
    field_name     text NOT NULL,
    version        integer NOT NULL,
    purpose        text NOT NULL CHECK (length(purpose) BETWEEN 1 AND 200),
    actor          text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    connection_id  uuid,
    job_id         uuid,
    request_id     text,
    occurred_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX access_events_secret ON qivault.access_events (tenant_id, secret_id, occurred_at DESC);
SELECT qieos.register_table('qivault', 'access_events', 'One row per decryption of a secret: which secret, why, for what and by whom; never the value.', 'qivault', 'restricted', 'canonical', '{
  "secret_id": "The qivault.secrets row decrypted (no foreign key: the log outlives destroyed versions).",
  "purpose": "Why the secret was decrypted, stated by the caller (e.g. sync contacts).",
  "actor": "Who decrypted it, as kind:id (worker, user, service).",
  "connection_id": "The connection the secret was used for, when any.",
  "job_id": "The job that needed the secret, when any.",
  "occurred_at": "When the secret was decrypted."
}', NULL, 'Access events are append-only facts recorded by Spine itself: provenance, status, authorship and notes columns do not apply.');
-- Append-only for the application role.
REVOKE UPDATE, DELETE ON qivault.access_events FROM spine_app;

CREATE TABLE qivault.rotations (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    target_key_id      text NOT NULL REFERENCES qivault.master_keys (key_id),
    state              text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'finished', 'superseded')),
    started_at         timestamptz NOT NULL DEFAULT now(),
    last_processed_id  uuid,
    secrets_total      bigint NOT NULL DEFAULT 0,
    secrets_rotated    bigint NOT NULL DEFAULT 0,
    batches            integer NOT NULL DEFAULT 0,
    finished_at        timestamptz,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- One rotation runs at a time; a crashed one is resumed from last_processed_id.
CREATE UNIQUE INDEX rotations_one_running ON qivault.rotations ((true)) WHERE state = 'running';
SELECT qieos.register_table('qivault', 'rotations', 'Progress of master-key rotations (re-encryption of every secret under the active key), so a rotation resumes after a crash.', 'qivault', 'internal', 'runtime', '{
  "target_key_id": "The key every secret is being moved to.",
  "state": "running, finished (no secret left under another key) or superseded (another key became active first).",
  "started_at": "When the rotation started.",
  "last_processed_id": "Highest secret id handled so far, committed with each batch; the resume point.",
  "secrets_total": "Secrets under other keys when the rotation started.",
  "secrets_rotated": "Secrets re-encrypted so far.",
  "batches": "Batches committed so far.",
  "finished_at": "When the rotation finished or was superseded."
}');

INSERT INTO qieos.statuses (status_domain, status_key, display_name, description, is_terminal, sort_order) VALUES
 ('vault_key', 'active', 'Active', 'Seals new secrets.', false, 1),
 ('vault_key', 'decrypt_only', 'Decrypt only', 'Opens what it sealed; rotation moves those secrets to the active key.', false, 2),
 ('vault_key', 'retired', 'Retired', 'No secret uses it; refused for use.', true, 3),
 ('key_rotation', 'running', 'Running', 'Re-encrypting secrets in batches.', false, 1),
 ('key_rotation', 'finished', 'Finished', 'Every secret is under the target key.', true, 2),
 ('key_rotation', 'superseded', 'Superseded', 'Another key became active before it finished.', true, 3);

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (14, 'The vault: encrypted secrets and online master-key rotation',
  'Seeds 003 and 004 require connector credentials encrypted at rest with AES-256, the key from the environment and never in the repository or database, audited access, never shown, and periodic key rotation. Seed 001 places credential material in qivault only.',
  'Secrets are rows of qivault.secrets sealed with AES-256-GCM (aes-gcm 0.10; hardware AES, the algorithm the seeds name) under a 96-bit random nonce per encryption. The authenticated data is a version tag, the key id, tenant, row id, owner kind and id, field name and version, so a ciphertext copied to another row or relabelled fails. Master keys come only from configuration (vault.master_keys, vault.key_file, or data_dir/vault.keys generated with mode 0600 on first start); the database keeps their ids, states (active, decrypt_only, retired) and a public fingerprint that catches a different key under a known id. Every decryption states a purpose and writes qivault.access_events in the same transaction. Replacing a secret keeps the old version until destroy_after. Rotation re-encrypts every secret not under the active key in batches, each its own transaction with FOR UPDATE SKIP LOCKED, recording its resume point in qivault.rotations; reads continue throughout because the keyring holds old and new keys. A key may be retired only when no secret uses it.',
  'Losing every configured copy of a master key loses the secrets it sealed: back up the key file. Random nonces allow about 2^32 encryptions per key before the collision risk matters, far beyond Spine''s scale, and rotation resets the count. Row-level security isolates tenants; the rotation and retirement run with the owner''s rights across tenants, like the job engine.',
  'docs/decisions/0014-vault.md', DATE '2026-11-22');
