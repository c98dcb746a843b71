-- Phase 5 (seed 001 §16): the system map (qisystem) and runtime metadata (qiserver). These are
-- platform-wide, not tenant-owned: tenants may read them, only operators write them.

CREATE TABLE qisystem.modules (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    module_key     text NOT NULL UNIQUE CHECK (module_key ~ '^[a-z][a-z0-9_]*$'),
    display_name   text NOT NULL,
    description    text NOT NULL,
    owning_schema  text,
    status         text NOT NULL DEFAULT 'active' CHECK (status IN ('proposed', 'active', 'deprecated', 'retired')),
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now()
);
SELECT qieos.register_table('qisystem', 'modules', 'The Qi modules and the schema each owns.', 'qisystem', 'internal', 'canonical', '{
  "module_key": "Machine name of the module.",
  "owning_schema": "The database schema the module owns, when it owns one."
}', NULL, 'System map rows ship with migrations: import provenance, authorship, sensitivity and notes do not apply.');

CREATE TABLE qisystem.apps (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    app_key       text NOT NULL UNIQUE CHECK (app_key ~ '^[a-z][a-z0-9_-]*$'),
    module_id     uuid REFERENCES qisystem.modules (id),
    display_name  text NOT NULL,
    description   text NOT NULL,
    base_url      text,
    status        text NOT NULL DEFAULT 'active' CHECK (status IN ('proposed', 'active', 'deprecated', 'retired')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
SELECT qieos.register_table('qisystem', 'apps', 'Applications of the system and the module each belongs to.', 'qisystem', 'internal', 'canonical', '{
  "app_key": "Machine name of the application.",
  "module_id": "The module the application belongs to.",
  "base_url": "Where the application is served, when it has a fixed address."
}', NULL, 'System map rows ship with migrations: import provenance, authorship, sensitivity and notes do not apply.');

CREATE TABLE qiserver.hosts (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    hostname      text NOT NULL UNIQUE,
    display_name  text NOT NULL,
    os_name       text,
    status        text NOT NULL DEFAULT 'unknown' CHECK (status IN ('ok', 'degraded', 'down', 'unknown')),
    last_seen_at  timestamptz,
    notes         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
SELECT qieos.register_table('qiserver', 'hosts', 'Machines that run QiOS services.', 'qiserver', 'internal', 'runtime', '{
  "hostname": "Host name as the machine reports it.",
  "os_name": "Operating system and version.",
  "last_seen_at": "When a service on the host last reported in."
}');

CREATE TABLE qiserver.services (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    host_id       uuid NOT NULL REFERENCES qiserver.hosts (id),
    service_key   text NOT NULL,
    display_name  text NOT NULL,
    endpoint_url  text,
    version       text,
    status        text NOT NULL DEFAULT 'unknown' CHECK (status IN ('ok', 'degraded', 'down', 'unknown')),
    last_seen_at  timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (host_id, service_key)
);
SELECT qieos.register_table('qiserver', 'services', 'Services running on hosts (Spine itself, Paperless-ngx, Wiki.js, …).', 'qiserver', 'internal', 'runtime', '{
  "host_id": "The host the service runs on.",
  "service_key": "Machine name of the service on its host.",
  "endpoint_url": "Where the service answers.",
  "version": "Version the service reported."
}');

CREATE TABLE qiserver.health_checks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    service_id  uuid NOT NULL REFERENCES qiserver.services (id),
    checked_at  timestamptz NOT NULL DEFAULT now(),
    status      text NOT NULL CHECK (status IN ('ok', 'degraded', 'down', 'unknown')),
    latency_ms  integer CHECK (latency_ms >= 0),
    message     text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON qiserver.health_checks (service_id, checked_at DESC);
SELECT qieos.register_table('qiserver', 'health_checks', 'Results of health checks against services, newest last.', 'qiserver', 'internal', 'runtime', '{
  "service_id": "The service checked.",
  "checked_at": "When the check ran.",
  "latency_ms": "How long the check took in milliseconds.",
  "message": "What the check reported."
}');

INSERT INTO qisystem.modules (module_key, display_name, description, owning_schema) VALUES
 ('core', 'Core', 'Global primitives: tenants, people, organizations, identifiers, relationships, tags, audit.', 'core'),
 ('qieos', 'QiEOS', 'Doctrine: what things mean; the registries.', 'qieos'),
 ('qisystem', 'QiSystem', 'The map of the system.', 'qisystem'),
 ('qinexus', 'QiNexus', 'Index of source material and imports.', 'qinexus'),
 ('qiaccess', 'QiAccess', 'Front-door capture.', 'qiaccess'),
 ('qilife', 'QiLife', 'Lived operational data.', 'qilife'),
 ('qiconnect', 'QiConnect', 'Integrations and external ids.', 'qiconnect'),
 ('qiserver', 'QiServer', 'Hosts, services, runtime.', 'qiserver'),
 ('qivault', 'QiVault', 'Protected material.', 'qivault'),
 ('spine', 'Spine', 'The integration spine: registration pipeline, jobs, connectors, delivery.', NULL);
INSERT INTO qisystem.apps (app_key, module_id, display_name, description)
SELECT 'spine', id, 'Spine', 'The integration layer of QiOS: API, CLI, workers.' FROM qisystem.modules WHERE module_key = 'spine';
