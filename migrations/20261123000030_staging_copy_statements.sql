-- Decision 0032: fewer, larger staging COPY statements, and a reference check that scans.
--
-- The loader now sends about 4 MiB per COPY statement (was 1 MiB), with work_mem raised for the
-- statement so the transition table stays in memory. The reference check no longer sorts the
-- statement's rows to find the distinct (tenant, batch, file) triples: a load writes one triple
-- per statement, so it checks the first row's and then scans for rows that differ, checking the
-- distinct ones among those (none, for the loader). What is checked is unchanged (decisions 0020
-- and 0031): the tenant is the transaction's while one is set, and the tenant, batch and file
-- exist, locked FOR KEY SHARE as a foreign key would.
CREATE FUNCTION staging.import_rows_check_target(p_tenant uuid, p_batch uuid, p_file uuid, p_current uuid)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF p_current IS NOT NULL AND p_tenant IS DISTINCT FROM p_current THEN
        RAISE EXCEPTION 'staged rows of tenant % in a transaction of tenant %', p_tenant, p_current
            USING ERRCODE = 'insufficient_privilege', CONSTRAINT = 'import_rows_tenant';
    END IF;
    PERFORM 1 FROM core.tenants t WHERE t.id = p_tenant FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'staged row references: tenant % does not exist', p_tenant
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'import_rows_references';
    END IF;
    PERFORM 1 FROM qinexus.import_batches b WHERE b.tenant_id = p_tenant AND b.id = p_batch FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'staged row references: import batch % does not exist in tenant %', p_batch, p_tenant
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'import_rows_references';
    END IF;
    PERFORM 1 FROM qinexus.files f WHERE f.tenant_id = p_tenant AND f.id = p_file FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'staged row references: file % does not exist in tenant %', p_file, p_tenant
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'import_rows_references';
    END IF;
END $$;
REVOKE ALL ON FUNCTION staging.import_rows_check_target(uuid, uuid, uuid, uuid) FROM PUBLIC;

CREATE OR REPLACE FUNCTION staging.import_rows_check_references() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    first record;
    current_tenant uuid := core.current_tenant_id();
BEGIN
    SELECT n.tenant_id, n.import_batch_id, n.source_file_id INTO first FROM new_rows n LIMIT 1;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    PERFORM staging.import_rows_check_target(first.tenant_id, first.import_batch_id, first.source_file_id, current_tenant);
    -- The columns are NOT NULL, so <> finds every row that differs from the first.
    FOR r IN SELECT DISTINCT n.tenant_id, n.import_batch_id, n.source_file_id FROM new_rows n
             WHERE n.tenant_id <> first.tenant_id OR n.import_batch_id <> first.import_batch_id
                OR n.source_file_id <> first.source_file_id LOOP
        PERFORM staging.import_rows_check_target(r.tenant_id, r.import_batch_id, r.source_file_id, current_tenant);
    END LOOP;
    RETURN NULL;
END $$;

-- Deleting a staged row checks the two tables that reference it, row by row, as foreign keys
-- do; review_decisions has an index for that, source_entity_links had none, so every deleted row
-- would read the whole links table, which grows with every promotion. The batch index serves
-- provenance's forward trace from a batch, which had only the file's.
CREATE INDEX source_entity_links_import_row_id_idx ON qinexus.source_entity_links (import_row_id);
CREATE INDEX source_entity_links_import_batch_id_idx ON qinexus.source_entity_links (import_batch_id);

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (32, 'Fewer, larger staging COPY statements',
  'After decision 0031 the staging benchmark ran at 0.67-0.74x of psql \copy into the comparable table, at the target''s margin. A profile of the server backend during a load showed about 5% of its time making and dropping tuple slots (PostgreSQL makes up to 1,000 per COPY statement, and a 1 MiB statement holds about 3,000 rows), and the reference check sorting every statement''s rows to find the distinct (tenant, batch, file) triples. A 3 MiB statement without more work_mem wrote its transition table to a temp file.',
  'The loader sends about 4 MiB per COPY statement, with work_mem set to 32MB for the statement and the transaction''s value put back after it (in the same round trips as the role switch). The reference check checks the first row''s triple and scans for rows that differ instead of sorting. The benchmark''s batch ids are version 7 UUIDs, as registration''s are. source_entity_links gets indexes on import_row_id and import_batch_id.',
  'bench/README.md has the figures. A load holds up to about 16 MiB of encoded rows in Spine (two chunks in the channel, one being encoded, one being sent) instead of 10 MiB, and the server up to about 7 MB of transition table per statement.',
  'docs/decisions/0032-staging-copy-statements.md', DATE '2026-11-23');
