-- Decision 0031: what a staged row costs to load.
--
-- raw_payload is stored as json (the row's object as text, validated on the way in) instead of
-- jsonb. Building jsonb (parsing into a tree, sorting keys, converting) was the largest single
-- share of the server's work per staged row; json only checks the text. Every reader of
-- raw_payload takes the whole object (review, proposals, provenance), which json gives as well.
-- Keys stay in the order the loader writes them (jsonb's order), so values read as before.
ALTER TABLE staging.import_rows ALTER COLUMN raw_payload TYPE json USING raw_payload::json;

-- The review index leaves pending rows out: a load writes only pending (and error) rows, and
-- every query for pending rows names the batch, which the (import_batch_id, row_number) key
-- serves. Rows enter the index when a decision moves them (approved, rejected, promoted, ...).
DROP INDEX staging.import_rows_review;
CREATE INDEX import_rows_review ON staging.import_rows (tenant_id, import_batch_id, review_status)
    WHERE review_status <> 'pending';

-- The loader COPYs straight into staging.import_rows as the tables' owner (PostgreSQL refuses
-- COPY FROM for a role that row-level security applies to), one statement at a time, instead of
-- through a temp table and INSERT ... SELECT as spine_app. The tenant policy's WITH CHECK does
-- not apply to the owner, so the statement-level reference check takes over its part: while a
-- tenant is set in the transaction, every row's tenant must be that tenant (SQLSTATE 42501, as
-- the policy's refusal). With no tenant set (the owner's system transactions) it checks the
-- references only, as before.
CREATE OR REPLACE FUNCTION staging.import_rows_check_references() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    current_tenant uuid := core.current_tenant_id();
BEGIN
    FOR r IN SELECT DISTINCT tenant_id, import_batch_id, source_file_id FROM new_rows LOOP
        IF current_tenant IS NOT NULL AND r.tenant_id IS DISTINCT FROM current_tenant THEN
            RAISE EXCEPTION 'staged rows of tenant % in a transaction of tenant %', r.tenant_id, current_tenant
                USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'import_rows_tenant';
        END IF;
        PERFORM 1 FROM core.tenants t WHERE t.id = r.tenant_id FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'staged row references: tenant % does not exist', r.tenant_id
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'import_rows_references';
        END IF;
        PERFORM 1 FROM qinexus.import_batches b WHERE b.tenant_id = r.tenant_id AND b.id = r.import_batch_id FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'staged row references: import batch % does not exist in tenant %', r.import_batch_id, r.tenant_id
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'import_rows_references';
        END IF;
        PERFORM 1 FROM qinexus.files f WHERE f.tenant_id = r.tenant_id AND f.id = r.source_file_id FOR KEY SHARE;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'staged row references: file % does not exist in tenant %', r.source_file_id, r.tenant_id
                USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'import_rows_references';
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (31, 'What a staged row costs to load, and what the staging benchmark compares against',
  'Issue 4 asks for a 1,000,000-row, 10-column CSV to stage at >= 0.7x the throughput of psql \copy of the same file into a comparable table. Measured so far against a bare heap of 10 text columns (no keys, no indexes): 0.13x. A staged row carries four ids, a row number, a review status and its values as JSON keyed by the header, under three indexes and row-level security; the bare heap carries the values only.',
  'raw_payload becomes json (validated text) instead of jsonb; the review index leaves pending rows out; the CSV parser writes rows as JSON straight from the record; the loader COPYs straight into staging.import_rows as the tables'' owner (one statement at a time, the transaction''s role restored after each), and the statement-level reference check also refuses rows of another tenant than the transaction''s, which is what the tenant policy''s WITH CHECK did on the old temp-table path; the database connections get TCP_NODELAY, which sqlx 0.9.0 stopped setting. The benchmark''s baseline is psql \copy into a staging-shaped table (the same bookkeeping columns with defaults, the values as 10 text columns, a primary key, the (batch, row number) key and the review index, loaded by its owner); the bare heap stays in the output as a second, stricter ratio.',
  'Staging the benchmark file costs less server CPU (bench/README.md has the figures). No jsonb operators on raw_payload in SQL without a cast (raw_payload::jsonb). Against the bare heap the target is out of reach for rows of this shape: a prototype with no indexes, no row-level security and a text payload reached 0.62x.',
  'docs/decisions/0031-staging-load-costs.md', DATE '2026-11-23');
