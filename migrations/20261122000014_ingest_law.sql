-- The integration law, enforced by PostgreSQL (issue 4 item 1, decision 0018): ingress code runs
-- as spine_ingest, which may write only capture, file/batch and staging tables, and enqueue jobs.
-- It has no privileges on canonical tables (core, qilife, qiconnect, ...), so an ingress bug
-- cannot write a person, an identifier or a task: only the promotion step can.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'spine_ingest') THEN
        CREATE ROLE spine_ingest NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
    END IF;
END $$;
GRANT spine_ingest TO CURRENT_USER;
GRANT USAGE ON SCHEMA core, qiaccess, qinexus, staging, qiserver TO spine_ingest;
GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA qiaccess, qinexus, staging TO spine_ingest;
ALTER DEFAULT PRIVILEGES IN SCHEMA qiaccess, qinexus, staging GRANT SELECT, INSERT, UPDATE ON TABLES TO spine_ingest;
-- Enqueueing the job that continues the work, in the same transaction (RETURNING needs SELECT).
GRANT SELECT, INSERT ON qiserver.jobs TO spine_ingest;

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (18, 'The integration law is a database role',
  'Seed 000''s one law: no external data reaches a canonical table except through the registration pipeline. Issue 4 asks that PostgreSQL enforce it with roles and grants, not only code structure.',
  'Ingress code (upload, watcher, connectors'' intake) runs in Store::ingest_tx, which switches to the role spine_ingest with the tenant set (RLS applies as for spine_app). spine_ingest may SELECT, INSERT and UPDATE the tables of qiaccess, qinexus and staging (also those created later, by default privileges) and INSERT jobs; it has no privilege on core, qilife, qiconnect or any other canonical schema. Promotion and API handlers keep running as spine_app.',
  'A write to a canonical table from an ingest transaction fails with insufficient_privilege (42501), whatever the code does. Ingress cannot delete captured or staged rows either.',
  'docs/decisions/0018-integration-law-role.md', DATE '2026-11-22');
