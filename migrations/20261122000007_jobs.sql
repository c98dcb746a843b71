-- The job engine ("qisys" jobs; seed 001 gives runtime jobs to qiserver): durable, visible,
-- retryable work. Jobs are tenant-owned (RLS) and reference the canonical rows they work on.
-- The claim path needs only the partial index jobs_ready; finished rows leave every partial index.

CREATE TABLE qiserver.jobs (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id           uuid NOT NULL REFERENCES core.tenants (id),
    kind                text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{0,62}$'),
    payload             jsonb NOT NULL DEFAULT '{}',
    file_id             uuid,
    import_batch_id     uuid,
    parent_job_id       uuid,
    schedule_id         uuid,
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'quarantined', 'cancelled')),
    priority            smallint NOT NULL DEFAULT 0,
    run_at              timestamptz NOT NULL DEFAULT now(),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts        integer NOT NULL DEFAULT 10 CHECK (max_attempts BETWEEN 1 AND 1000),
    lease_owner         text,
    lease_expires_at    timestamptz,
    last_error_class    text CHECK (last_error_class IN ('auth', 'rate_limited', 'server', 'network', 'timeout', 'invalid', 'internal', 'lease_expired')),
    last_error_message  text,
    dedupe_key          text CHECK (length(dedupe_key) BETWEEN 1 AND 200),
    children_total      integer NOT NULL DEFAULT 0,
    children_succeeded  integer NOT NULL DEFAULT 0,
    children_failed     integer NOT NULL DEFAULT 0,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    UNIQUE (tenant_id, id),
    CHECK ((state = 'running') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    FOREIGN KEY (tenant_id, file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id),
    FOREIGN KEY (tenant_id, parent_job_id) REFERENCES qiserver.jobs (tenant_id, id)
) WITH (fillfactor = 80);
CREATE INDEX jobs_ready ON qiserver.jobs (priority DESC, run_at, id) WHERE state IN ('queued', 'failed');
CREATE INDEX jobs_leases ON qiserver.jobs (lease_expires_at) WHERE state = 'running';
CREATE UNIQUE INDEX jobs_dedupe ON qiserver.jobs (tenant_id, kind, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running', 'failed');
CREATE INDEX jobs_finished ON qiserver.jobs (finished_at) WHERE state IN ('succeeded', 'cancelled');
CREATE INDEX jobs_children ON qiserver.jobs (parent_job_id) WHERE parent_job_id IS NOT NULL;
CREATE INDEX jobs_attention ON qiserver.jobs (tenant_id, kind) WHERE state IN ('quarantined', 'failed');
SELECT qieos.register_table('qiserver', 'jobs', 'Durable background jobs: what runs, for which tenant, on which canonical rows, and how it went.', 'qiserver', 'internal', 'runtime', '{
  "kind": "What the job does; selects the handler (e.g. register_file).",
  "payload": "The job''s input as a versioned tagged JSON object ({\"type\": …}).",
  "file_id": "The registered file the job works on, when any.",
  "parent_job_id": "The job that spawned this one (fan-out), when any.",
  "schedule_id": "The cron schedule that enqueued the job, when any.",
  "state": "queued, running, succeeded, failed (will retry at run_at), quarantined (needs a person) or cancelled.",
  "priority": "Higher runs first among due jobs.",
  "run_at": "When the job is due (first run or next retry).",
  "attempts": "Attempts started so far.",
  "max_attempts": "After this many failed attempts the job is quarantined.",
  "lease_owner": "The worker holding the job while it runs.",
  "lease_expires_at": "When the lease lapses unless the worker heartbeats; then the job is claimed again.",
  "last_error_class": "Class of the last failure (auth, rate_limited, server, network, timeout, invalid, internal, lease_expired).",
  "last_error_message": "Message of the last failure, redacted.",
  "dedupe_key": "At most one unfinished job per tenant, kind and dedupe key.",
  "children_total": "Child jobs spawned by this job.",
  "children_succeeded": "Child jobs that succeeded.",
  "children_failed": "Child jobs that ended quarantined or cancelled.",
  "started_at": "When the current or last attempt started.",
  "finished_at": "When the job reached succeeded, quarantined or cancelled."
}');

-- Written once per attempt on the hot path: a sequential key and no per-row foreign-key checks
-- (the job row owns the tenant; prune deletes a job's attempts with it).
CREATE TABLE qiserver.job_attempts (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      uuid NOT NULL,
    job_id         uuid NOT NULL,
    attempt        integer NOT NULL CHECK (attempt > 0),
    worker_id      text NOT NULL,
    started_at     timestamptz NOT NULL,
    finished_at    timestamptz NOT NULL,
    outcome        text NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'quarantined', 'lease_expired', 'released')),
    error_class    text CHECK (error_class IN ('auth', 'rate_limited', 'server', 'network', 'timeout', 'invalid', 'internal', 'lease_expired')),
    error_message  text,
    duration_ms    integer NOT NULL CHECK (duration_ms >= 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_attempts_job ON qiserver.job_attempts (job_id, started_at);
SELECT qieos.register_table('qiserver', 'job_attempts', 'One row per attempt of a job: when, which worker, how it ended and why.', 'qiserver', 'internal', 'runtime', '{
  "job_id": "The job attempted (qiserver.jobs; no foreign key, to keep the write path cheap).",
  "attempt": "Attempt number (1-based) at the time.",
  "worker_id": "The worker that ran (or lost) the attempt.",
  "outcome": "succeeded, failed (will retry), quarantined, lease_expired (the worker vanished) or released (handed back at shutdown).",
  "error_class": "Class of the failure, when it failed.",
  "error_message": "Message of the failure, redacted.",
  "duration_ms": "How long the attempt ran."
}');

CREATE TABLE qiserver.job_schedules (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id        uuid NOT NULL REFERENCES core.tenants (id),
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind             text NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_.]{0,62}$'),
    payload          jsonb NOT NULL DEFAULT '{}',
    cron_expression  text NOT NULL,
    timezone         text NOT NULL DEFAULT 'UTC',
    enabled          boolean NOT NULL DEFAULT true,
    catch_up         text NOT NULL DEFAULT 'skip' CHECK (catch_up IN ('skip', 'run_once')),
    next_run_at      timestamptz,
    last_run_at      timestamptz,
    last_job_id      uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text,
    UNIQUE (tenant_id, name)
);
CREATE INDEX job_schedules_due ON qiserver.job_schedules (next_run_at) WHERE enabled;
SELECT qieos.register_table('qiserver', 'job_schedules', 'Cron schedules that enqueue jobs: exactly one job per tick, however many workers run.', 'qiserver', 'internal', 'runtime', '{
  "cron_expression": "Cron expression, 5 fields or 6 with seconds first.",
  "timezone": "IANA time zone the expression is read in (DST handled).",
  "enabled": "False while paused.",
  "catch_up": "After downtime: skip missed ticks, or run_once for all of them.",
  "next_run_at": "The next tick; NULL when the expression has none left.",
  "last_run_at": "The last tick that enqueued a job.",
  "last_job_id": "The job enqueued for the last tick."
}');
ALTER TABLE qiserver.jobs ADD FOREIGN KEY (schedule_id) REFERENCES qiserver.job_schedules (id) ON DELETE SET NULL;
-- The queue's statements set updated_at themselves: no per-row trigger on the hot path.
DROP TRIGGER touch_updated_at ON qiserver.jobs;
