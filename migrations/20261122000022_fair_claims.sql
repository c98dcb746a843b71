-- Decision 0025 (docs/decisions/0025-fair-claims.md): claims are fair across tenants (issue 5
-- item 6). The ready index leads with the tenant, so a claim can walk the tenants that have ready
-- jobs (a loose index scan) and take a share from each, in priority and due order within a tenant.
-- It replaces the old ready index: same size, same write cost.
CREATE INDEX jobs_ready_by_tenant ON qiserver.jobs (tenant_id, priority DESC, run_at, id) WHERE state IN ('queued', 'failed');
DROP INDEX qiserver.jobs_ready;

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (25, 'Claims are fair across tenants',
  'Issue 5 item 6: one tenant''s backlog must not starve another''s jobs. Claims took the due jobs in (priority, run_at) order across all tenants, so 100,000 jobs enqueued by one tenant ran before a job another tenant enqueued a second later.',
  'The ready index is (tenant_id, priority DESC, run_at, id) over queued and failed jobs. A claim of n jobs walks the tenants with ready jobs by a loose index scan (one index probe per tenant), gives each a share of ceil(n / tenants) and takes, per tenant, its due jobs in priority then due order with FOR UPDATE SKIP LOCKED. Within a tenant nothing changes; across tenants each gets an equal share of every claim, whatever its backlog, and a tenant with fewer ready jobs than its share leaves the rest to the next claim.',
  'Priority orders jobs within a tenant, not across tenants. A claim costs one extra index probe per tenant with ready jobs (thousands of such tenants would need a tenant cursor instead). The burn-down benchmark (one tenant) is unchanged within noise.',
  'docs/decisions/0025-fair-claims.md', DATE '2026-11-22');
