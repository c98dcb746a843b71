//! The connector runtime (decision 0023): what each connector type *does*. Types themselves (names,
//! schemas, secret fields) are `spine_core::connector::ConnectorType`; behaviour is a `match` on
//! it here (decision 0021), so a new type is a compile error in this file until it has a build, a
//! test call, a health check and its classification.
//!
//! A [`Connector`] is built from a [`ResolvedConfig`] (the stored config with its secrets
//! decrypted, zeroized on drop) and lives only for the call. Its test call validates credentials;
//! its health check is non-destructive. Both return a redacted [`Diagnosis`]; failures are
//! classified into job error classes by [`classify`] through `spine_core::http_class`. Connector
//! calls never follow redirects (credentials never go to another URL).

mod checks;
mod diagnosis;
mod http_json;
pub mod oauth;
pub mod oauth_refresh;
mod resolve;
pub mod webhook_out;

use std::sync::OnceLock;
use std::time::Duration;

use spine_core::connector::ConnectorType;
use spine_core::jobs::ErrorClass;

pub use checks::{Caller, CheckError, check_connection, test_candidate};
pub use diagnosis::{Body, CheckKind, Diagnosis, Outcome, classify, shown_url};
pub use resolve::{ResolveError, ResolvedConfig, gives_secrets, resolve, resolve_candidate};

/// The most of an answer the runtime reads (to tell JSON from not); the rest is not read.
pub const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// How a call is made.
#[derive(Clone, Copy, Debug)]
pub struct CallOptions {
    /// The whole exchange (connect, send, read the answer) must finish within this.
    pub timeout: Duration,
}

impl Default for CallOptions {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10) }
    }
}

/// The HTTP client of connector calls: no redirects, no cookies, Spine's user agent.
fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("spine/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// A connection ready to call, one variant per connector type.
pub enum Connector {
    HttpJson(http_json::HttpJson),
    WebhookOut(webhook_out::WebhookOut),
}

impl Connector {
    /// From a fully resolved config. A config the runtime cannot use (which the schema should
    /// have refused) is an `invalid` diagnosis naming the field, never its value.
    pub fn build(config: &ResolvedConfig, opts: CallOptions) -> Result<Connector, String> {
        match config.connector_type() {
            ConnectorType::HttpJson => http_json::HttpJson::build(config, opts.timeout).map(Connector::HttpJson),
            ConnectorType::WebhookOut => {
                webhook_out::WebhookOut::build(config, opts.timeout).map(Connector::WebhookOut)
            }
        }
    }

    pub fn connector_type(&self) -> ConnectorType {
        match self {
            Connector::HttpJson(_) => ConnectorType::HttpJson,
            Connector::WebhookOut(_) => ConnectorType::WebhookOut,
        }
    }

    /// The type's test call: validates the credentials against the remote.
    /// http_json: the configured GET/POST, 2xx JSON required; webhook_out: a signed ping.
    pub async fn test_call(&self) -> Diagnosis {
        self.check(CheckKind::Test).await
    }

    /// The type's non-destructive health check (the same request as the test call for both
    /// shipped types: http_json's configured read, webhook_out's ping).
    pub async fn health_check(&self) -> Diagnosis {
        self.check(CheckKind::Health).await
    }

    pub async fn check(&self, kind: CheckKind) -> Diagnosis {
        match self {
            Connector::HttpJson(c) => c.call(kind).await,
            Connector::WebhookOut(c) => c.ping(kind).await,
        }
    }
}

/// Builds the connector and runs one check; a config that cannot be built is an `invalid` diagnosis.
pub async fn run_check(config: &ResolvedConfig, kind: CheckKind, opts: CallOptions) -> Diagnosis {
    match Connector::build(config, opts) {
        Ok(c) => c.check(kind).await,
        Err(why) => Diagnosis::refused(config.connector_type(), kind, ErrorClass::Invalid, format!("config: {why}")),
    }
}
