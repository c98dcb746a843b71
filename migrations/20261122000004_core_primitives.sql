-- Phase 2 (seed 001 §16): core primitives. Every canonical table carries the §13 metadata columns;
-- people and organizations are specialisations of core.entities (same id), so relationships and
-- identifiers can point at any entity. Composite (tenant_id, …) keys keep references in-tenant.

CREATE TABLE core.entities (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES core.tenants (id),
    entity_kind        text NOT NULL CHECK (entity_kind IN ('person', 'organization', 'location', 'document', 'other')),
    display_name       text NOT NULL,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'merged', 'archived')),
    merged_into_id     uuid,
    source_system      text,
    source_file_id     uuid,
    import_batch_id    uuid,
    sensitivity_level  text NOT NULL DEFAULT 'private' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    UNIQUE (tenant_id, id),
    FOREIGN KEY (tenant_id, merged_into_id) REFERENCES core.entities (tenant_id, id),
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
CREATE INDEX ON core.entities (tenant_id, entity_kind);
SELECT qieos.register_table('core', 'entities', 'Anything that can be related, tagged or identified: the common parent of people, organizations and other entities.', 'core', 'private', 'canonical', '{
  "entity_kind": "Which specialisation the entity is (person, organization, location, document, other).",
  "merged_into_id": "The surviving entity when this one was merged into it."
}');

CREATE TABLE core.people (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES core.tenants (id),
    given_name         text,
    middle_name        text,
    family_name        text,
    full_name          text NOT NULL,
    nickname           text,
    birth_date         date,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'merged', 'archived')),
    source_system      text,
    source_file_id     uuid,
    import_batch_id    uuid,
    sensitivity_level  text NOT NULL DEFAULT 'private' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    FOREIGN KEY (tenant_id, id) REFERENCES core.entities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
SELECT qieos.register_table('core', 'people', 'Human beings known to the tenant; contact details live in core.identifiers.', 'core', 'private', 'canonical', '{
  "given_name": "First or given name.",
  "middle_name": "Middle name or names.",
  "family_name": "Last or family name.",
  "full_name": "Name as it should be displayed in full.",
  "nickname": "Informal name.",
  "birth_date": "Date of birth, when known."
}');

CREATE TABLE core.organizations (
    id                 uuid PRIMARY KEY,
    tenant_id          uuid NOT NULL REFERENCES core.tenants (id),
    legal_name         text NOT NULL,
    organization_kind  text NOT NULL DEFAULT 'company' CHECK (organization_kind IN ('company', 'nonprofit', 'government', 'school', 'household', 'other')),
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'merged', 'archived')),
    source_system      text,
    source_file_id     uuid,
    import_batch_id    uuid,
    sensitivity_level  text NOT NULL DEFAULT 'private' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    FOREIGN KEY (tenant_id, id) REFERENCES core.entities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
SELECT qieos.register_table('core', 'organizations', 'Companies, institutions and other organizations known to the tenant.', 'core', 'private', 'canonical', '{
  "legal_name": "The organization name as registered or as the source gives it.",
  "organization_kind": "Kind of organization."
}');

CREATE TABLE core.identifiers (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES core.tenants (id),
    entity_id          uuid NOT NULL,
    identifier_kind    text NOT NULL CHECK (identifier_kind IN ('email', 'phone', 'url', 'username', 'postal_address', 'tax_id', 'other')),
    value              text NOT NULL,
    normalized_value   text NOT NULL,
    label              text,
    is_primary         boolean NOT NULL DEFAULT false,
    verified_at        timestamptz,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'merged', 'archived')),
    source_system      text,
    source_file_id     uuid,
    import_batch_id    uuid,
    sensitivity_level  text NOT NULL DEFAULT 'private' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    UNIQUE (tenant_id, entity_id, identifier_kind, normalized_value),
    FOREIGN KEY (tenant_id, entity_id) REFERENCES core.entities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
CREATE INDEX ON core.identifiers (tenant_id, identifier_kind, normalized_value);
SELECT qieos.register_table('core', 'identifiers', 'Ways to identify or reach an entity: emails, phones, URLs, usernames. One home instead of email_1, contact_email, …', 'core', 'private', 'canonical', '{
  "identifier_kind": "Kind of identifier.",
  "value": "The identifier as the source gave it.",
  "normalized_value": "Normalised form used for matching (lowercased email, E.164 phone, canonical URL).",
  "label": "Label from the source (work, home, mobile, …).",
  "is_primary": "True for the preferred identifier of its kind.",
  "verified_at": "When the identifier was verified, when it was."
}');

CREATE TABLE core.relationships (
    id                     uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id              uuid NOT NULL REFERENCES core.tenants (id),
    source_entity_id       uuid NOT NULL,
    target_entity_id       uuid NOT NULL,
    relationship_type      text NOT NULL REFERENCES qieos.relationship_types (type_key),
    relationship_strength  numeric(3, 2) CHECK (relationship_strength BETWEEN 0 AND 1),
    start_date             date,
    end_date               date,
    status                 text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'merged', 'archived')),
    source_system          text,
    source_file_id         uuid,
    import_batch_id        uuid,
    sensitivity_level      text NOT NULL DEFAULT 'private' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    notes                  text,
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    created_by             text,
    updated_by             text,
    CHECK (source_entity_id <> target_entity_id),
    CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date),
    FOREIGN KEY (tenant_id, source_entity_id) REFERENCES core.entities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, target_entity_id) REFERENCES core.entities (tenant_id, id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
CREATE INDEX ON core.relationships (tenant_id, source_entity_id);
CREATE INDEX ON core.relationships (tenant_id, target_entity_id);
SELECT qieos.register_table('core', 'relationships', 'Explicit, typed relationships between any two entities (seed 001 §12).', 'core', 'private', 'canonical', '{
  "source_entity_id": "The entity the relationship reads from.",
  "target_entity_id": "The entity the relationship points to.",
  "relationship_type": "Type from qieos.relationship_types.",
  "relationship_strength": "Confidence or strength between 0 and 1, when known.",
  "start_date": "When the relationship began.",
  "end_date": "When it ended."
}');

CREATE TABLE core.tags (
    id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    tenant_id          uuid NOT NULL REFERENCES core.tenants (id),
    slug               text NOT NULL CHECK (slug ~ '^[a-z0-9][a-z0-9_-]*$'),
    display_name       text NOT NULL,
    description        text,
    status             text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive', 'merged', 'archived')),
    source_system      text,
    source_file_id     uuid,
    import_batch_id    uuid,
    sensitivity_level  text NOT NULL DEFAULT 'internal' CHECK (sensitivity_level IN ('public', 'internal', 'private', 'sensitive', 'restricted', 'secret')),
    notes              text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text,
    updated_by         text,
    UNIQUE (tenant_id, slug),
    FOREIGN KEY (tenant_id, source_file_id) REFERENCES qinexus.files (tenant_id, id),
    FOREIGN KEY (tenant_id, import_batch_id) REFERENCES qinexus.import_batches (tenant_id, id)
);
SELECT qieos.register_table('core', 'tags', 'Labels a tenant attaches to entities.', 'core', 'internal', 'canonical', '{
  "slug": "Unique machine name of the tag within the tenant."
}');
