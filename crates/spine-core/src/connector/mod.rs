//! Connector types (blueprints, seed 004 level 1): a closed registry in code, one enum and no
//! plugins (decision 0021). Each type has a stable `name` (never renamed: it is used in paths,
//! logs, idempotency keys and as the key of `qiconnect.connector_types`), display data, a
//! category, JSON Schema 2020-12 documents for its `auth`, `source` and `output` configuration,
//! capabilities, and the list of config fields that are secrets.
//!
//! A connection's config (seed 004 level 2, an instance) is one JSON object: `auth` holds the
//! credentials (validated by the auth schema), and beside it the fields of the source schema
//! (source types), of the output schema (output types), or both. [`ConnectorType::split_secrets`]
//! takes the secret fields out so only the rest is stored as config; the secrets go to the vault.
//!
//! Behaviour per type (test call, health check, error classifier) will be a `match` on this enum
//! in the runtime crates, so adding a type is adding a variant and the compiler lists what's left.
//! Pure: no I/O.

mod validate;

use std::sync::LazyLock;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::secret::Secret;

pub use validate::{FieldError, is_http_url, unsupported_keywords, validate};

/// Every connector type Spine knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnectorType {
    /// GET/POST a JSON API with bearer, basic or header credentials.
    HttpJson,
    /// POST events to a URL, signed with a shared secret.
    WebhookOut,
}

/// What a type can be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    Source,
    Output,
    Both,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Source => "source",
            Category::Output => "output",
            Category::Both => "both",
        }
    }
}

/// What the runtime may do with a type's connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Capabilities {
    pub supports_scheduling: bool,
    pub supports_refresh: bool,
    /// Calls per minute per connection; `None` means no limit of the type's own.
    pub rate_limit_per_minute: Option<u32>,
    /// At most one connection of this type per tenant (seed 003's rule).
    pub single_instance: bool,
}

fn schema(text: &str) -> Value {
    serde_json::from_str(text).expect("connector schemas are valid JSON (unit-tested)")
}

static HTTP_JSON_AUTH: LazyLock<Value> = LazyLock::new(|| schema(include_str!("schemas/http_json.auth.json")));
static HTTP_JSON_SOURCE: LazyLock<Value> = LazyLock::new(|| schema(include_str!("schemas/http_json.source.json")));
static WEBHOOK_OUT_AUTH: LazyLock<Value> = LazyLock::new(|| schema(include_str!("schemas/webhook_out.auth.json")));
static WEBHOOK_OUT_OUTPUT: LazyLock<Value> = LazyLock::new(|| schema(include_str!("schemas/webhook_out.output.json")));
static CONNECTION_SCHEMAS: LazyLock<Vec<Value>> =
    LazyLock::new(|| ConnectorType::ALL.iter().map(|t| t.build_connection_schema()).collect());

impl ConnectorType {
    pub const ALL: [ConnectorType; 2] = [ConnectorType::HttpJson, ConnectorType::WebhookOut];

    /// The stable name. Never rename one: it is stored in connections and used in paths.
    pub fn name(self) -> &'static str {
        match self {
            ConnectorType::HttpJson => "http_json",
            ConnectorType::WebhookOut => "webhook_out",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn display_name(self) -> &'static str {
        match self {
            ConnectorType::HttpJson => "HTTP JSON API",
            ConnectorType::WebhookOut => "Outgoing webhook",
        }
    }

    pub fn category(self) -> Category {
        match self {
            ConnectorType::HttpJson => Category::Source,
            ConnectorType::WebhookOut => Category::Output,
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            ConnectorType::HttpJson => {
                "Reads a JSON API over HTTP(S) with GET or POST, authenticated by a bearer token, HTTP basic \
                 credentials, an API-key header or OAuth2 (authorization code with PKCE, refreshed tokens)."
            }
            ConnectorType::WebhookOut => {
                "POSTs events as JSON to a URL of the tenant's choosing, each delivery signed with HMAC-SHA256 \
                 under a shared signing secret. One per tenant."
            }
        }
    }

    pub fn capabilities(self) -> Capabilities {
        match self {
            ConnectorType::HttpJson => Capabilities {
                supports_scheduling: true,
                supports_refresh: true,
                rate_limit_per_minute: Some(60),
                single_instance: false,
            },
            ConnectorType::WebhookOut => Capabilities {
                supports_scheduling: false,
                supports_refresh: false,
                rate_limit_per_minute: Some(600),
                single_instance: true,
            },
        }
    }

    /// JSON Schema of the `auth` object.
    pub fn auth_schema(self) -> &'static Value {
        match self {
            ConnectorType::HttpJson => &HTTP_JSON_AUTH,
            ConnectorType::WebhookOut => &WEBHOOK_OUT_AUTH,
        }
    }

    /// JSON Schema of the source fields, for source-capable types.
    pub fn source_schema(self) -> Option<&'static Value> {
        match self {
            ConnectorType::HttpJson => Some(&HTTP_JSON_SOURCE),
            ConnectorType::WebhookOut => None,
        }
    }

    /// JSON Schema of the output fields, for output-capable types.
    pub fn output_schema(self) -> Option<&'static Value> {
        match self {
            ConnectorType::HttpJson => None,
            ConnectorType::WebhookOut => Some(&WEBHOOK_OUT_OUTPUT),
        }
    }

    /// Dotted paths of the config fields that are secrets (stored only in the vault). A path
    /// absent from a given auth variant simply does not occur.
    pub fn secret_fields(self) -> &'static [&'static str] {
        match self {
            ConnectorType::HttpJson => &["auth.token", "auth.password", "auth.value", "auth.client_secret"],
            ConnectorType::WebhookOut => &["auth.signing_secret"],
        }
    }

    /// The schema of a whole connection config: `auth` plus the source and/or output fields.
    pub fn connection_schema(self) -> &'static Value {
        let i = Self::ALL.iter().position(|t| *t == self).expect("every type is in ALL");
        &CONNECTION_SCHEMAS[i]
    }

    fn build_connection_schema(self) -> Value {
        let mut props = Map::new();
        props.insert("auth".into(), self.auth_schema().clone());
        let mut required = vec![Value::from("auth")];
        for part in [self.source_schema(), self.output_schema()].into_iter().flatten() {
            for (k, v) in part["properties"].as_object().into_iter().flatten() {
                props.insert(k.clone(), v.clone());
            }
            required.extend(part["required"].as_array().into_iter().flatten().cloned());
        }
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": format!("{} connection", self.display_name()),
            "type": "object",
            "properties": props,
            "required": required,
            "additionalProperties": false,
        })
    }

    /// Field-level errors of `config` against [`Self::connection_schema`]; empty when valid.
    pub fn validate(self, config: &Value) -> Vec<FieldError> {
        validate(self.connection_schema(), config)
    }

    /// Removes the secret fields from `config`, returning them by path. Only string values are
    /// secrets (the schemas make every secret field a string).
    pub fn split_secrets(self, config: &mut Value) -> Vec<(&'static str, Secret<String>)> {
        let mut out = Vec::new();
        for path in self.secret_fields() {
            let (parent, leaf) = path.rsplit_once('.').unwrap_or(("", path));
            let holder = if parent.is_empty() { Some(&mut *config) } else { get_path_mut(config, parent) };
            if let Some(Value::Object(obj)) = holder
                && let Some(Value::String(s)) = obj.remove(leaf)
            {
                out.push((*path, Secret::new(s)));
            }
        }
        out
    }
}

/// The object at a dotted path, if there is one.
pub fn get_path_mut<'a>(v: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    path.split('.').try_fold(v, |cur, key| cur.as_object_mut()?.get_mut(key))
}

/// The value at a dotted path, if there is one.
pub fn get_path<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |cur, key| cur.as_object()?.get(key))
}

/// The vault field name of a secret path (`auth.token` → `auth_token`; vault field names are
/// `[a-z][a-z0-9_]*`).
pub fn vault_field(path: &str) -> String {
    path.replace('.', "_")
}

#[cfg(test)]
mod tests;
