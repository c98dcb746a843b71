-- Connection health history (issue 5 item 8, decision 0023): one row per health check or test
-- call of a connection's stored credentials, with the connector runtime's redacted diagnosis
-- (class, HTTP status, latency, a short message without secrets, response bodies or URL user
-- info/query). Rows go with their connection (ON DELETE CASCADE).

CREATE TABLE qiconnect.connection_health_checks (
    id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id         uuid NOT NULL REFERENCES core.tenants (id),
    connection_id     uuid NOT NULL,
    check_kind        text NOT NULL CHECK (check_kind IN ('health', 'test')),
    ok                boolean NOT NULL,
    error_class       text CHECK (error_class IN ('auth', 'rate_limited', 'server', 'network', 'timeout', 'invalid', 'internal')),
    http_status       integer CHECK (http_status BETWEEN 100 AND 999),
    latency_ms        bigint NOT NULL CHECK (latency_ms >= 0),
    retry_after_secs  bigint CHECK (retry_after_secs >= 0),
    message           text NOT NULL CHECK (length(message) <= 1000),
    checked_at        timestamptz NOT NULL DEFAULT now(),
    checked_by        text NOT NULL CHECK (length(checked_by) BETWEEN 1 AND 200),
    UNIQUE (tenant_id, id),
    CHECK (ok = (error_class IS NULL)),
    FOREIGN KEY (tenant_id, connection_id) REFERENCES qiconnect.connections (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX connection_health_checks_recent ON qiconnect.connection_health_checks (tenant_id, connection_id, checked_at DESC);
SELECT qieos.register_table('qiconnect', 'connection_health_checks', 'Health history of connections: the redacted diagnosis of every health check and test call of a connection''s stored credentials.', 'qiconnect', 'internal', 'runtime', '{
  "connection_id": "The connection checked (qiconnect.connections); rows are deleted with it.",
  "check_kind": "health (GET /v1/connections/{id}/health, spine connection health) or test (POST /v1/connections/{id}/test, spine connection test).",
  "ok": "The remote answered as the connector type requires (a 2xx; JSON for http_json).",
  "error_class": "Why the check failed, as a job error class (auth, rate_limited, server, network, timeout, invalid, internal); NULL when ok.",
  "http_status": "The HTTP status the remote answered with; NULL when there was no answer.",
  "latency_ms": "Milliseconds from sending the request to the end of the answer (or the failure).",
  "retry_after_secs": "Seconds the remote asked to wait (Retry-After of a 429 or 503); NULL otherwise.",
  "message": "Short redacted diagnosis: method, URL without user info or query, status, content type and size; never secrets or response bodies.",
  "checked_at": "When the check ran.",
  "checked_by": "Who ran the check, as kind:id (user, API key, cli, worker)."
}');
-- History: the application appends and reads (rows leave with their connection).
REVOKE UPDATE ON qiconnect.connection_health_checks FROM spine_app;

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (23, 'Connector runtime: test calls, health checks, error classes, validated credential rotation',
  'Issue 5 items 1 (behaviour of connector types), 4 (credential rotation) and 8 (health). Seed 004 asks that updating credentials runs the type''s test call first and keeps the old ones on failure, and that health checks return a redacted diagnosis kept as history. Decision 0021 left the behaviour per type to the runtime crates as a match on ConnectorType. Nothing says how a webhook ping is signed, which HTTP answers count as healthy, or what a diagnosis may show.',
  'spine_pipeline::connectors holds the runtime: Connector (one variant per type) is built from a ResolvedConfig (the stored config with each secret decrypted through connections::read_secret, audited with a purpose, and zeroized on drop); its test call and health check return a Diagnosis (ok, error class, HTTP status, latency, Retry-After, content type and size, a short message; never secrets, bodies, URL user info or query). classify() maps outcomes to job error classes through spine_core::http_class: 401/403 auth, 429 rate_limited with Retry-After, 5xx server, connect failures network, no answer in time timeout, redirects, other 4xx and (http_json) non-JSON answers invalid. Connector calls never follow redirects, so credentials never go to another URL. http_json''s test call and health check are its configured GET/POST, requiring a 2xx JSON answer; webhook_out''s are a signed ping event, with Standard Webhooks headers webhook-id, webhook-timestamp and webhook-signature v1,base64(HMAC-SHA256(signing secret bytes, id.timestamp.body)). A PATCH or CLI update that gives any secret field runs the test call with the candidate config (new values plus kept stored secrets) first: a failure keeps the old credentials and answers 422 credentials_rejected with the diagnosis; ?skip_test=true (API) or --skip-test (CLI) skips it, audited. Create never calls out; POST /v1/connections/{id}/test and GET /v1/connections/{id}/health run checks on demand and record each in qiconnect.connection_health_checks.',
  'Every rotation costs one remote call, and cannot happen while the remote is down unless skip_test is used. A health check of an http_json connection with method POST repeats its configured POST, which the tenant chose. Checks do not yet change a connection''s status (degraded, needs_reauth): that belongs to the error-class behaviour of issue 5 item 7, which can read this history.',
  'docs/decisions/0023-connector-runtime.md', DATE '2026-11-22');
