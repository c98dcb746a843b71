-- Decision 0022 (docs/decisions/0022-connection-outcomes.md): jobs name the connection they call,
-- and what happens to those calls moves the connection's status (issue 3 item 3, issue 5 item 7).
--   * qiserver.jobs.connection_id, checked per statement like the other references (decision 0013);
--     deleting a connection clears it (the job's history stays).
--   * qiconnect.record_job_outcomes(...), called by the queue in the transaction that records the
--     results: success clears the failure streak (a degraded connection recovers); an auth failure
--     disables the connection with the reason; other failures (not rate limits) extend the streak,
--     mark the connection degraded after degrade_after_failures in a row and disable it once it has
--     been failing for disable_after.
--   * qiconnect.connection_events: every status change of a connection, by a person or the runtime,
--     recorded by a trigger.
--   * Attempts may end 'deferred': rescheduled (by a rate limit) without using up an attempt.

ALTER TABLE qiserver.jobs ADD COLUMN connection_id uuid;
CREATE INDEX jobs_connection ON qiserver.jobs (connection_id) WHERE connection_id IS NOT NULL;
SELECT qieos.register_table('qiserver', 'jobs', 'Durable background jobs: what runs, for which tenant, on which canonical rows, and how it went.', 'qiserver', 'internal', 'runtime', '{
  "connection_id": "The connection (qiconnect.connections) whose remote system the job calls, when any; cleared when the connection is deleted."
}');

ALTER TABLE qiserver.job_attempts DROP CONSTRAINT job_attempts_outcome_check,
    ADD CONSTRAINT job_attempts_outcome_check
        CHECK (outcome IN ('succeeded', 'failed', 'quarantined', 'lease_expired', 'released', 'deferred'));
COMMENT ON COLUMN qiserver.job_attempts.outcome IS 'succeeded, failed (will retry), quarantined, lease_expired (the worker vanished), released (handed back at shutdown) or deferred (rescheduled by a rate limit; the attempt is not counted).';

CREATE OR REPLACE FUNCTION qiserver.jobs_check_references() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bad text;
BEGIN
    SELECT format('tenant %s does not exist', n.tenant_id) INTO bad
    FROM (SELECT DISTINCT tenant_id FROM new_jobs) n
    WHERE NOT EXISTS (SELECT 1 FROM core.tenants t WHERE t.id = n.tenant_id) LIMIT 1;
    IF bad IS NULL THEN
        SELECT format('file %s does not exist in tenant %s', n.file_id, n.tenant_id) INTO bad
        FROM new_jobs n
        WHERE n.file_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM qinexus.files f WHERE f.tenant_id = n.tenant_id AND f.id = n.file_id) LIMIT 1;
    END IF;
    IF bad IS NULL THEN
        SELECT format('import batch %s does not exist in tenant %s', n.import_batch_id, n.tenant_id) INTO bad
        FROM new_jobs n
        WHERE n.import_batch_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM qinexus.import_batches b
                          WHERE b.tenant_id = n.tenant_id AND b.id = n.import_batch_id) LIMIT 1;
    END IF;
    IF bad IS NULL THEN
        SELECT format('parent job %s does not exist in tenant %s', n.parent_job_id, n.tenant_id) INTO bad
        FROM new_jobs n
        WHERE n.parent_job_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM qiserver.jobs p WHERE p.id = n.parent_job_id AND p.tenant_id = n.tenant_id) LIMIT 1;
    END IF;
    IF bad IS NULL THEN
        SELECT format('schedule %s does not exist in tenant %s', n.schedule_id, n.tenant_id) INTO bad
        FROM new_jobs n
        WHERE n.schedule_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM qiserver.job_schedules s
                          WHERE s.id = n.schedule_id AND s.tenant_id = n.tenant_id) LIMIT 1;
    END IF;
    IF bad IS NULL THEN
        SELECT format('connection %s does not exist in tenant %s', n.connection_id, n.tenant_id) INTO bad
        FROM new_jobs n
        WHERE n.connection_id IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM qiconnect.connections c
                          WHERE c.id = n.connection_id AND c.tenant_id = n.tenant_id) LIMIT 1;
    END IF;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'job references: %', bad USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'jobs_references';
    END IF;
    RETURN NULL;
END $$;

-- References stay fixed, except that schedule_id and connection_id may be cleared (their rows
-- were deleted).
CREATE OR REPLACE FUNCTION qiserver.jobs_references_fixed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.file_id IS DISTINCT FROM OLD.file_id
       OR NEW.import_batch_id IS DISTINCT FROM OLD.import_batch_id OR NEW.parent_job_id IS DISTINCT FROM OLD.parent_job_id
       OR (NEW.schedule_id IS DISTINCT FROM OLD.schedule_id AND NEW.schedule_id IS NOT NULL)
       OR (NEW.connection_id IS DISTINCT FROM OLD.connection_id AND NEW.connection_id IS NOT NULL) THEN
        RAISE EXCEPTION 'the references of job % cannot change', OLD.id
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'jobs_references';
    END IF;
    RETURN NEW;
END $$;
DROP TRIGGER jobs_references_fixed ON qiserver.jobs;
CREATE TRIGGER jobs_references_fixed
    BEFORE UPDATE OF tenant_id, file_id, import_batch_id, parent_job_id, schedule_id, connection_id
    ON qiserver.jobs FOR EACH ROW EXECUTE FUNCTION qiserver.jobs_references_fixed();

CREATE FUNCTION qiserver.jobs_connection_deleted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    UPDATE qiserver.jobs j SET connection_id = NULL FROM old_rows o WHERE j.connection_id = o.id;
    RETURN NULL;
END $$;
CREATE TRIGGER jobs_connection_deleted AFTER DELETE ON qiconnect.connections
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION qiserver.jobs_connection_deleted();

-- The failure policy and streak of each connection.
ALTER TABLE qiconnect.connections
    ADD COLUMN degrade_after_failures integer NOT NULL DEFAULT 3 CHECK (degrade_after_failures BETWEEN 1 AND 1000),
    ADD COLUMN disable_after interval NOT NULL DEFAULT '24 hours' CHECK (disable_after >= interval '0'),
    ADD COLUMN consecutive_failures integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
    ADD COLUMN failing_since timestamptz,
    ADD COLUMN last_error_class text,
    ADD COLUMN last_error_at timestamptz;
SELECT qieos.register_table('qiconnect', 'connections', 'Tenants'' configured instances of connector types: name, non-secret config, references to the vault''s secrets, status.', 'qiconnect', 'sensitive', 'canonical', '{
  "degrade_after_failures": "Failed calls in a row after which the connection is marked degraded.",
  "disable_after": "How long a degraded connection may keep failing before the runtime disables it.",
  "consecutive_failures": "Failed calls (jobs) in a row since the last success; rate limits do not count.",
  "failing_since": "When the current run of failures began; NULL after a success.",
  "last_error_class": "Error class of the last failed call (auth, server, network, timeout, invalid, internal).",
  "last_error_at": "When a call last failed."
}', NULL, 'Connections are entered by people through the API or CLI, never imported from files: source_system, source_file_id, import_batch_id and sensitivity_level (the table is sensitive as a whole) do not apply.');

CREATE TABLE qiconnect.connection_events (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES core.tenants (id),
    connection_id  uuid NOT NULL REFERENCES qiconnect.connections (id) ON DELETE CASCADE,
    from_status    text NOT NULL,
    to_status      text NOT NULL,
    reason         text,
    actor          text,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON qiconnect.connection_events (connection_id, created_at);
SELECT qieos.register_table('qiconnect', 'connection_events', 'Every status change of a connection (active, degraded, disabled, needs_reauth), by a person or by the runtime, and why.', 'qiconnect', 'internal', 'runtime', '{
  "connection_id": "The connection whose status changed.",
  "from_status": "Status before the change.",
  "to_status": "Status after the change.",
  "reason": "Why, in words without secrets (the connection''s status_reason after the change).",
  "actor": "Who changed it, as kind:id (user:…, key:…, or job:… when the runtime did)."
}');

CREATE FUNCTION qiconnect.connection_status_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    INSERT INTO qiconnect.connection_events (tenant_id, connection_id, from_status, to_status, reason, actor)
    VALUES (NEW.tenant_id, NEW.id, OLD.status, NEW.status, NEW.status_reason, NEW.updated_by);
    RETURN NULL;
END $$;
CREATE TRIGGER connection_status_changed AFTER UPDATE OF status ON qiconnect.connections
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION qiconnect.connection_status_changed();

-- One call per finished batch that has connection jobs: p_ok true for success; p_class is the
-- error class otherwise. Outcomes for connections that are disabled or need re-authentication
-- change nothing (their jobs do not run).
CREATE FUNCTION qiconnect.record_job_outcomes(p_connection uuid[], p_job uuid[], p_kind text[], p_ok boolean[],
                                              p_class text[], p_message text[])
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    i integer;
    c qiconnect.connections%ROWTYPE;
    actor text;
    why text;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_connection, 1), 0) LOOP
        SELECT * INTO c FROM qiconnect.connections WHERE id = p_connection[i] FOR UPDATE;
        CONTINUE WHEN NOT FOUND OR c.status IN ('disabled', 'needs_reauth');
        actor := 'job:' || p_job[i];
        IF p_ok[i] THEN
            UPDATE qiconnect.connections SET last_used_at = now(), consecutive_failures = 0, failing_since = NULL,
                   status = CASE WHEN status = 'degraded' THEN 'active' ELSE status END,
                   status_reason = CASE WHEN status = 'degraded' THEN NULL ELSE status_reason END,
                   updated_by = CASE WHEN status = 'degraded' THEN actor ELSE updated_by END
             WHERE id = c.id;
        ELSIF p_class[i] = 'rate_limited' THEN
            UPDATE qiconnect.connections SET last_used_at = now() WHERE id = c.id;
        ELSIF p_class[i] = 'auth' THEN
            why := left(format('authentication failed in job %s (%s): %s', p_job[i], p_kind[i], p_message[i]), 1000);
            UPDATE qiconnect.connections SET last_used_at = now(), is_active = false, status = 'disabled', status_reason = why,
                   consecutive_failures = consecutive_failures + 1, failing_since = coalesce(failing_since, now()),
                   last_error_class = p_class[i], last_error_at = now(), updated_by = actor
             WHERE id = c.id;
        ELSE
            c.consecutive_failures := c.consecutive_failures + 1;
            c.failing_since := coalesce(c.failing_since, now());
            why := NULL;
            IF c.status = 'degraded' AND now() - c.failing_since >= c.disable_after THEN
                c.status := 'disabled';
                why := format('calls have failed since %s (%s in a row); last: %s in job %s (%s): %s',
                              to_char(c.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                              c.consecutive_failures, p_class[i], p_job[i], p_kind[i], p_message[i]);
            ELSIF c.status = 'active' AND c.consecutive_failures >= c.degrade_after_failures THEN
                c.status := 'degraded';
                why := format('%s calls in a row failed; last: %s in job %s (%s): %s',
                              c.consecutive_failures, p_class[i], p_job[i], p_kind[i], p_message[i]);
            END IF;
            UPDATE qiconnect.connections SET last_used_at = now(), consecutive_failures = c.consecutive_failures,
                   failing_since = c.failing_since, last_error_class = p_class[i], last_error_at = now(),
                   status = c.status, is_active = (c.status <> 'disabled'),
                   status_reason = coalesce(left(why, 1000), status_reason),
                   updated_by = CASE WHEN why IS NULL THEN updated_by ELSE actor END
             WHERE id = c.id;
        END IF;
    END LOOP;
END $$;

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (22, 'Jobs name their connection; call outcomes move the connection''s status',
  'Issue 3 item 3 and seed 004: an auth error is not retried and disables the integration; issue 5 item 7: a connection whose calls keep failing is marked degraded, then disabled after a configurable window, with an event; issue 5 item 6: a call over the rate limit is delayed, not failed. Jobs had no reference to the connection they call.',
  'qiserver.jobs.connection_id (checked per statement like the other references; cleared when the connection is deleted). When the queue records results it calls qiconnect.record_job_outcomes for the jobs that name a connection, in the same transaction: a success clears the failure streak and brings a degraded connection back to active; an auth failure disables the connection (status disabled, is_active false) with the job, kind and message as the reason; a rate limit counts as use, not failure; any other failure extends the streak, marks an active connection degraded after degrade_after_failures (default 3) failures in a row and disables a degraded one that has been failing for disable_after (default 24 hours), both per connection. A trigger records every status change in qiconnect.connection_events with the actor (job:<id> for the runtime). Workers do not run a job whose connection is disabled or needs re-authentication: it is quarantined with the reason, for a person to requeue after fixing the connection. A handler may defer a job (JobError::deferred): it goes back to the queue at the given time, the attempt is recorded as deferred and not counted.',
  'Connection health follows real traffic without a separate monitor, and people see why and when in the events. The per-batch function runs only for batches with connection jobs, one row lock per outcome; a connection with thousands of calls per second would serialise its results on that row, acceptable for remote APIs limited to hundreds of calls a minute.',
  'docs/decisions/0022-connection-outcomes.md', DATE '2026-11-22');
