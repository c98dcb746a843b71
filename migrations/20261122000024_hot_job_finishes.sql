-- Finishing a job rewrites its row in place (decision 0028). PostgreSQL can update a row without
-- touching any index (a HOT update) only when no indexed column changes, and a column named in a
-- partial index's predicate counts as indexed. `state` was in four predicates, so every finish
-- wrote a new entry into the primary key and into jobs_finished. Now:
--   * the indexes that must follow the state key on generated columns that stay NULL while a
--     job runs and after it succeeds (claimable_at, active_dedupe_key);
--   * leases are held per worker: qiserver.job_workers holds one lease per worker process,
--     renewed while it lives (also when idle); only when a worker's lease lapses (it died or
--     hung) does the reaper read the table for its running jobs. lease_owner stays set after the
--     attempt, naming the worker that ran it last, and running jobs have no index of their own;
--   * jobs_finished and jobs_attention go: pruning walks the primary key (ids are version 7, in
--     creation order) and the attention lists are scans of a table that pruning keeps small;
--   * fillfactor 30 leaves room on each page for the claimed and the finished version of its rows;
--   * the touch trigger runs only for updates that do not set updated_at themselves;
--   * a success is recorded on the job row alone (started_at, finished_at, lease_owner, attempts):
--     job_attempts keeps every other attempt, and qiserver.job_attempt_history shows them all,
--     one row per attempt; job_attempts keeps one index, its primary key (job_id, id), not two.

ALTER TABLE qiserver.jobs
    ADD COLUMN claimable_at timestamptz
        GENERATED ALWAYS AS (CASE WHEN state IN ('queued', 'failed') THEN run_at END) STORED,
    ADD COLUMN active_dedupe_key text
        GENERATED ALWAYS AS (CASE WHEN state IN ('queued', 'running', 'failed') THEN dedupe_key END) STORED,
    DROP CONSTRAINT jobs_check,
    ADD CONSTRAINT jobs_lease CHECK ((state = 'running') = (lease_expires_at IS NOT NULL)
                                     AND (state <> 'running' OR lease_owner IS NOT NULL));
ALTER TABLE qiserver.jobs SET (fillfactor = 30);

CREATE INDEX jobs_claimable ON qiserver.jobs (tenant_id, priority DESC, claimable_at, id) WHERE claimable_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_dedupe_active ON qiserver.jobs (tenant_id, kind, active_dedupe_key)
    WHERE active_dedupe_key IS NOT NULL;
DROP INDEX qiserver.jobs_ready_by_tenant, qiserver.jobs_leases, qiserver.jobs_dedupe, qiserver.jobs_finished,
    qiserver.jobs_attention;

CREATE TABLE qiserver.job_workers (
    worker_id         text PRIMARY KEY CHECK (length(worker_id) BETWEEN 1 AND 200),
    lease_expires_at  timestamptz NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
-- Workers holding jobs now.
INSERT INTO qiserver.job_workers (worker_id, lease_expires_at)
SELECT lease_owner, max(lease_expires_at) FROM qiserver.jobs WHERE state = 'running' GROUP BY lease_owner;

-- The queue's statements set updated_at themselves: no PL/pgSQL call per row for them.
DROP TRIGGER touch_updated_at ON qiserver.jobs;
CREATE TRIGGER touch_updated_at BEFORE UPDATE ON qiserver.jobs FOR EACH ROW
    WHEN (NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at) EXECUTE FUNCTION core.touch_updated_at();

-- Successes move onto their job rows.
UPDATE qiserver.jobs j SET started_at = a.started_at, finished_at = a.finished_at, lease_owner = a.worker_id
FROM qiserver.job_attempts a
WHERE a.job_id = j.id AND a.outcome = 'succeeded' AND a.attempt = j.attempts AND j.state = 'succeeded';
DELETE FROM qiserver.job_attempts a USING qiserver.jobs j
WHERE a.job_id = j.id AND a.outcome = 'succeeded' AND a.attempt = j.attempts AND j.state = 'succeeded';
ALTER TABLE qiserver.job_attempts DROP CONSTRAINT job_attempts_pkey, ADD PRIMARY KEY (job_id, id);
DROP INDEX qiserver.job_attempts_job;

-- Every attempt, one row each: the rows of job_attempts and the successful last attempt of each
-- succeeded job. Read with the reader's rights, so row-level security applies as on the tables.
CREATE VIEW qiserver.job_attempt_history WITH (security_invoker = true) AS
SELECT tenant_id, job_id, attempt, worker_id, started_at, finished_at, outcome, error_class, error_message, duration_ms
FROM qiserver.job_attempts
UNION ALL
SELECT tenant_id, id, attempts, coalesce(lease_owner, ''), coalesce(started_at, finished_at), finished_at, 'succeeded',
       NULL, NULL, greatest(0, floor(extract(epoch FROM finished_at - coalesce(started_at, finished_at)) * 1000))::int
FROM qiserver.jobs WHERE state = 'succeeded';
COMMENT ON VIEW qiserver.job_attempt_history IS 'Every attempt of every job, one row each: qiserver.job_attempts plus the successful last attempt of each succeeded job, which lives on the job row (decision 0028).';
GRANT SELECT ON qiserver.job_attempt_history TO spine_app;

SELECT qieos.register_table('qiserver', 'jobs', 'Durable background jobs: what runs, for which tenant, on which canonical rows, and how it went.', 'qiserver', 'internal', 'runtime', '{
  "lease_owner": "The worker holding the job while it runs; afterwards the worker that ran its last attempt.",
  "started_at": "When the current or last attempt started (for a succeeded job, when its handler started).",
  "lease_expires_at": "While the job runs: when its lease lapses unless the worker heartbeats (the worker''s own lease in qiserver.job_workers must lapse too before the job is claimed again).",
  "claimable_at": "run_at while the job waits to run (queued or failed), else NULL; generated, for the claim index.",
  "active_dedupe_key": "dedupe_key while the job is unfinished, else NULL; generated, for the unique dedupe index."
}');
SELECT qieos.register_table('qiserver', 'job_workers', 'Worker processes holding jobs: one lease per worker, renewed by its claims and heartbeats; when it lapses, the worker''s running jobs are claimed again.', 'qiserver', 'internal', 'runtime', '{
  "worker_id": "The worker''s id (qiserver.jobs.lease_owner of the jobs it holds).",
  "lease_expires_at": "When the worker counts as gone unless it claims or heartbeats again."
}');
SELECT qieos.register_table('qiserver', 'job_attempts', 'One row per attempt of a job that did not succeed (a success is recorded on the job row; qiserver.job_attempt_history shows every attempt): when, which worker, how it ended and why.', 'qiserver', 'internal', 'runtime');

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (28, 'A job''s success is one in-place update of its row; leases are held per worker',
  'Issue 3 asks for a queue at least 1.5 times as fast as graphile-worker and 0.75 times a raw-SQL ceiling at burning down 100,000 jobs. Every state change of qiserver.jobs wrote new index entries, because state appeared in the predicates of four partial indexes (a column in a predicate counts as indexed, so no update could be HOT), every success also wrote an attempt row with two index entries, and a PL/pgSQL trigger ran twice per job.',
  'No index on qiserver.jobs names state or any column a successful finish changes. The claim index and the dedupe index key on generated columns (claimable_at: run_at while queued or failed; active_dedupe_key: dedupe_key while unfinished). Leases are held per worker: qiserver.job_workers holds one lease per worker process, renewed by its claims and its heartbeats (also while idle) and removed when it stops cleanly; only when a worker''s lease lapses (it died or hung) does the reaper read qiserver.jobs for that worker''s running jobs, taking back those whose own lease lapsed too. lease_owner stays set after the attempt, naming the last worker, and running jobs have no index. Pruning walks the primary key (version 7 ids) instead of an index on finished_at. The table''s fillfactor is 30. A success is recorded on the job row (started_at, finished_at, lease_owner, attempts) and not in job_attempts, which keeps every other attempt with one index, its primary key (job_id, id); the view qiserver.job_attempt_history shows every attempt, one row each, and the API and CLI read it. The touch trigger runs only for updates that do not set updated_at.',
  'A successful finish is a HOT update of the job row and nothing else. A job whose own lease lapsed while its worker keeps heartbeating other jobs is reclaimed only when the worker''s lease lapses (a worker renews all its leases together, so they lapse together in practice). Reaping after a crash and lists by state read the table, which pruning keeps to the retention period. The table takes about three times the pages of a packed one while jobs wait.',
  'docs/decisions/0028-hot-job-finishes.md', DATE '2026-11-22');
