-- OAuth2 authorization code with PKCE for http_json connections (issue 5 item 5, decision 0026).
--   * http_json gains the auth variant oauth2 (authorize_url, token_url, client_id, client_secret
--     (vaulted), scope, redirect_uri): the mirror row of the type is updated to match the code.
--   * qiconnect.oauth_states: one row per authorization started; the state itself is only stored
--     as its SHA-256, the PKCE code_verifier is sealed in the vault (owner kind oauth_state);
--     single use, bound to tenant and connection, valid for ten minutes.
--   * qiconnect.oauth_grants: non-secret facts of a connection's tokens (expiry, scope, refresh
--     counts); the tokens themselves are sealed in the vault (owner kind connection, fields
--     oauth_access_token and oauth_refresh_token). Its row is also the per-connection refresh lock.

UPDATE qiconnect.connector_types SET
    description = 'Reads a JSON API over HTTP(S) with GET or POST, authenticated by a bearer token, HTTP basic credentials, an API-key header or OAuth2 (authorization code with PKCE, refreshed tokens).',
    auth_schema = '{"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "spine:connector/http_json/auth", "title": "HTTP JSON API credentials", "description": "One of: a bearer token, HTTP basic credentials, a named header carrying a key, or OAuth2 (authorization code with PKCE).", "oneOf": [{"type": "object", "title": "Bearer token", "properties": {"type": {"const": "bearer"}, "token": {"type": "string", "minLength": 1, "writeOnly": true, "description": "Sent as Authorization: Bearer <token>. Secret."}}, "required": ["type", "token"], "additionalProperties": false}, {"type": "object", "title": "HTTP basic", "properties": {"type": {"const": "basic"}, "username": {"type": "string", "minLength": 1}, "password": {"type": "string", "minLength": 1, "writeOnly": true, "description": "Secret."}}, "required": ["type", "username", "password"], "additionalProperties": false}, {"type": "object", "title": "API key header", "properties": {"type": {"const": "header"}, "name": {"type": "string", "minLength": 1, "maxLength": 256, "description": "Header name, e.g. X-Api-Key."}, "value": {"type": "string", "minLength": 1, "writeOnly": true, "description": "Header value. Secret."}}, "required": ["type", "name", "value"], "additionalProperties": false}, {"type": "object", "title": "OAuth2 authorization code with PKCE", "properties": {"type": {"const": "oauth2"}, "authorize_url": {"type": "string", "format": "uri", "minLength": 1, "maxLength": 2048, "description": "The provider''s authorization endpoint; the person authorizing is sent there."}, "token_url": {"type": "string", "format": "uri", "minLength": 1, "maxLength": 2048, "description": "The provider''s token endpoint (code exchange and refresh)."}, "client_id": {"type": "string", "minLength": 1, "maxLength": 1024}, "client_secret": {"type": "string", "minLength": 1, "maxLength": 4096, "writeOnly": true, "description": "Sent to the token endpoint (client_secret_post); leave out for a public client. Secret."}, "scope": {"type": "string", "maxLength": 2048, "description": "Space-separated scopes to request."}, "redirect_uri": {"type": "string", "format": "uri", "minLength": 1, "maxLength": 2048, "description": "Spine''s callback as registered at the provider: <api>/v1/oauth/callback."}}, "required": ["type", "authorize_url", "token_url", "client_id", "redirect_uri"], "additionalProperties": false}]}'::jsonb,
    supports_refresh = true,
    vaulted_fields = '{auth.token,auth.password,auth.value,auth.client_secret}',
    updated_at = now()
WHERE name = 'http_json';

CREATE TABLE qiconnect.oauth_states (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id      uuid NOT NULL REFERENCES core.tenants (id),
    connection_id  uuid NOT NULL,
    state_hash     bytea NOT NULL UNIQUE CHECK (length(state_hash) = 32),
    expires_at     timestamptz NOT NULL,
    used_at        timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text NOT NULL CHECK (length(created_by) BETWEEN 1 AND 200),
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, connection_id) REFERENCES qiconnect.connections (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX oauth_states_connection ON qiconnect.oauth_states (tenant_id, connection_id, created_at DESC);
SELECT qieos.register_table('qiconnect', 'oauth_states', 'OAuth2 authorizations in progress: the single-use state (as a hash) bound to a tenant''s connection, with its expiry; the PKCE code_verifier is in the vault.', 'qiconnect', 'internal', 'runtime', '{
  "connection_id": "The connection being authorized (qiconnect.connections); rows are deleted with it.",
  "state_hash": "SHA-256 of the state parameter sent to the provider (the state itself is never stored).",
  "expires_at": "The callback is refused after this (ten minutes after the start).",
  "used_at": "When a callback consumed the state; a state is used at most once.",
  "created_at": "When the authorization was started.",
  "created_by": "Who started it, as kind:id (user, API key, cli)."
}');

CREATE TABLE qiconnect.oauth_grants (
    tenant_id         uuid NOT NULL REFERENCES core.tenants (id),
    connection_id     uuid PRIMARY KEY,
    expires_at        timestamptz,
    scope             text CHECK (length(scope) <= 2048),
    refreshable boolean NOT NULL,
    authorized_at     timestamptz NOT NULL,
    refreshed_at      timestamptz,
    refresh_count     integer NOT NULL DEFAULT 0 CHECK (refresh_count >= 0),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    updated_by        text,
    UNIQUE (tenant_id, connection_id),
    FOREIGN KEY (tenant_id, connection_id) REFERENCES qiconnect.connections (tenant_id, id) ON DELETE CASCADE
);
SELECT qieos.register_table('qiconnect', 'oauth_grants', 'Non-secret facts of a connection''s OAuth2 tokens (expiry, scope, refreshes); the tokens are sealed in the vault. The row is the per-connection refresh lock.', 'qiconnect', 'internal', 'runtime', '{
  "connection_id": "The connection the tokens belong to (qiconnect.connections); deleted with it.",
  "expires_at": "When the current access token expires (from expires_in); NULL when the provider did not say.",
  "scope": "The scope the provider granted, space-separated.",
  "refreshable": "Whether the provider gave a refresh credential (stored in the vault).",
  "authorized_at": "When a person last completed the authorization (code exchange).",
  "refreshed_at": "When the access token was last refreshed.",
  "refresh_count": "Refreshes since the last authorization.",
  "updated_at": "When the row last changed.",
  "updated_by": "Who last changed it, as kind:id."
}');

INSERT INTO qieos.adr_records (adr_number, title, context, decision, consequences, document_path, decided_at) VALUES
 (26, 'OAuth2 authorization code with PKCE, tokens in the vault, refresh under a per-connection lock',
  'Issue 5 item 5 and seed 004: redirect to the provider, receive a code, exchange it, store the refresh token encrypted, refresh before expiry, handle revocation. Nothing said where the state and PKCE verifier live, how many workers may refresh at once, or what a refused refresh does to a connection.',
  'http_json gets an auth variant oauth2 (authorize_url, token_url, client_id, vaulted client_secret, scope, redirect_uri). POST /v1/connections/{id}/oauth/start returns an authorization URL with a random state and an S256 code_challenge; the state is stored only as its SHA-256 in qiconnect.oauth_states (tenant, connection, ten-minute expiry, single use) and the code_verifier is sealed in the vault. GET /v1/oauth/callback needs no bearer: the state authenticates; unknown, expired or used states are refused with 400. The code is exchanged with the verifier (client_secret_post); access and refresh tokens are sealed in the vault under the connection (oauth_access_token, oauth_refresh_token), expiry and scope in qiconnect.oauth_grants, and the connection becomes active. Any use of an oauth2 connection asks for an access token: one expiring within five minutes is refreshed under a row lock on the connection''s oauth_grants row, re-read after the lock, so concurrent callers cause one refresh; a rotated refresh token replaces the stored one. invalid_grant (and invalid_client, unauthorized_client) sets the connection to needs_reauth with the reason; transient failures keep the current token while it is valid.',
  'A refresh holds one row lock for the duration of one token call (at most the call timeout); callers of the same connection wait for it. Tokens switching away from oauth2 stay in the vault until the connection is deleted. The client authenticates by client_secret_post only.',
  'docs/decisions/0026-oauth2.md', DATE '2026-11-22');
