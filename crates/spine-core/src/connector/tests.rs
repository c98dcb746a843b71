use serde_json::{Value, json};

use super::*;

fn errors(t: ConnectorType, config: Value) -> Vec<String> {
    t.validate(&config).iter().map(ToString::to_string).collect()
}

fn bearer() -> Value {
    json!({"base_url": "https://api.example.org/v1", "method": "GET", "path": "/people",
           "headers": {"Accept": "application/json"}, "auth": {"type": "bearer", "token": "t0ken"}})
}

#[test]
fn names_are_stable_and_unique() {
    let names: Vec<&str> = ConnectorType::ALL.iter().map(|t| t.name()).collect();
    assert_eq!(names, ["http_json", "webhook_out"], "names are never renamed or dropped");
    for t in ConnectorType::ALL {
        assert_eq!(ConnectorType::from_name(t.name()), Some(t));
    }
    assert_eq!(ConnectorType::from_name("HTTP_JSON"), None);
}

#[test]
fn every_schema_is_2020_12_and_uses_only_supported_keywords() {
    for t in ConnectorType::ALL {
        let parts = [Some(t.auth_schema()), t.source_schema(), t.output_schema()];
        for s in parts.into_iter().flatten() {
            assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema", "{}", t.name());
            assert_eq!(unsupported_keywords(s), Vec::<String>::new(), "{}", t.name());
        }
        assert_eq!(unsupported_keywords(t.connection_schema()), Vec::<String>::new());
        assert_eq!(t.source_schema().is_some(), t.category() != Category::Output);
        assert_eq!(t.output_schema().is_some(), t.category() != Category::Source);
    }
    assert_eq!(unsupported_keywords(&json!({"type": "string", "pattern": "x"})), ["#: pattern"]);
    assert_eq!(unsupported_keywords(&json!({"type": "string", "format": "email"})), ["#: format \"email\""]);
}

#[test]
fn secret_fields_are_write_only_strings_in_the_schema() {
    for t in ConnectorType::ALL {
        for path in t.secret_fields() {
            let leaf = path.rsplit('.').next().unwrap();
            let auth = t.auth_schema();
            let branches: Vec<&Value> = match auth.get("oneOf") {
                Some(Value::Array(b)) => b.iter().collect(),
                _ => vec![auth],
            };
            let found: Vec<&Value> = branches.iter().filter_map(|b| b["properties"].get(leaf)).collect();
            assert!(!found.is_empty(), "{path} of {} is in the auth schema", t.name());
            for f in found {
                assert_eq!(f["type"], "string");
                assert_eq!(f["writeOnly"], true, "{path} is marked writeOnly");
            }
        }
    }
}

#[test]
fn valid_configs_pass() {
    assert_eq!(errors(ConnectorType::HttpJson, bearer()), Vec::<String>::new());
    let basic =
        json!({"base_url": "http://127.0.0.1:8080", "auth": {"type": "basic", "username": "u", "password": "p"}});
    assert_eq!(errors(ConnectorType::HttpJson, basic), Vec::<String>::new());
    let header = json!({"base_url": "https://x.test", "method": "POST",
                        "auth": {"type": "header", "name": "X-Api-Key", "value": "k"}});
    assert_eq!(errors(ConnectorType::HttpJson, header), Vec::<String>::new());
    let hook = json!({"url": "https://hooks.example.org/in", "auth": {"signing_secret": "0123456789abcdef"}});
    assert_eq!(errors(ConnectorType::WebhookOut, hook), Vec::<String>::new());
}

#[test]
fn missing_token_is_named() {
    let mut c = bearer();
    c["auth"].as_object_mut().unwrap().remove("token");
    assert_eq!(errors(ConnectorType::HttpJson, c), ["auth.token: required"]);
}

#[test]
fn bad_urls_are_named() {
    for url in ["ftp://x.org", "example.org", "https://", "http:// spaced.org", "javascript:alert(1)", ""] {
        let mut c = bearer();
        c["base_url"] = json!(url);
        let e = errors(ConnectorType::HttpJson, c);
        assert_eq!(e.len(), 1, "{url:?}: {e:?}");
        assert!(e[0].starts_with("base_url: must"), "{url:?}: {e:?}");
    }
    let e = errors(
        ConnectorType::WebhookOut,
        json!({"url": "mailto:a@b.c", "auth": {"signing_secret": "0123456789abcdef"}}),
    );
    assert_eq!(e, ["url: must be an http(s) URL"]);
    assert!(is_http_url("https://[::1]:8443/x?y#z"));
    assert!(is_http_url("HTTP://user@host"));
}

#[test]
fn unknown_fields_are_named_at_every_level() {
    let mut c = bearer();
    c["surprise"] = json!(1);
    c["auth"]["scope"] = json!("all");
    assert_eq!(errors(ConnectorType::HttpJson, c), ["auth.scope: unknown field", "surprise: unknown field"]);
}

#[test]
fn wrong_auth_variant_lists_the_variants() {
    let mut c = bearer();
    c["auth"] = json!({"type": "digest", "token": "x"});
    assert_eq!(errors(ConnectorType::HttpJson, c), ["auth.type: must be one of bearer, basic, header, oauth2"]);
    let mut c = bearer();
    c["auth"] = json!({"token": "x"});
    assert_eq!(errors(ConnectorType::HttpJson, c), ["auth.type: required (one of bearer, basic, header, oauth2)"]);
    // A known variant with another variant's fields: that variant's own errors.
    let mut c = bearer();
    c["auth"] = json!({"type": "basic", "token": "x"});
    assert_eq!(
        errors(ConnectorType::HttpJson, c),
        ["auth.username: required", "auth.password: required", "auth.token: unknown field"]
    );
}

#[test]
fn types_enums_and_lengths() {
    let c = json!({"base_url": 5, "method": "DELETE", "headers": {"A": 1}, "auth": {"type": "bearer", "token": ""}});
    assert_eq!(
        errors(ConnectorType::HttpJson, c),
        [
            "auth.token: must not be empty",
            "base_url: must be a string",
            "headers.A: must be a string",
            "method: must be one of GET, POST",
        ]
    );
    assert_eq!(errors(ConnectorType::HttpJson, json!([])), ["config: must be an object"]);
    assert_eq!(errors(ConnectorType::HttpJson, json!({})), ["auth: required", "base_url: required"]);
    let short = json!({"url": "https://a.b", "auth": {"signing_secret": "short"}});
    assert_eq!(errors(ConnectorType::WebhookOut, short), ["auth.signing_secret: must be at least 16 characters"]);
}

#[test]
fn errors_never_carry_values() {
    let c = json!({"base_url": "not a url CANARY", "auth": {"type": "nope-CANARY", "token": 7}});
    for e in ConnectorType::HttpJson.validate(&c) {
        assert!(!e.to_string().contains("CANARY"), "{e}");
    }
}

#[test]
fn split_secrets_takes_only_secret_fields() {
    let mut c = bearer();
    let s = ConnectorType::HttpJson.split_secrets(&mut c);
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].0, "auth.token");
    assert_eq!(s[0].1.expose(), "t0ken");
    assert_eq!(c["auth"], json!({"type": "bearer"}));
    assert_eq!(c["base_url"], "https://api.example.org/v1");

    let mut h = json!({"auth": {"type": "header", "name": "X-Key", "value": "v"}, "base_url": "https://a.b"});
    let s = ConnectorType::HttpJson.split_secrets(&mut h);
    assert_eq!(s.iter().map(|x| x.0).collect::<Vec<_>>(), ["auth.value"]);
    assert_eq!(h["auth"], json!({"type": "header", "name": "X-Key"}));
    assert_eq!(vault_field("auth.signing_secret"), "auth_signing_secret");
}

#[test]
fn capabilities_and_categories() {
    assert!(ConnectorType::WebhookOut.capabilities().single_instance);
    assert!(!ConnectorType::HttpJson.capabilities().single_instance);
    assert_eq!(ConnectorType::HttpJson.category().as_str(), "source");
    assert_eq!(serde_json::to_value(Category::Both).unwrap(), "both");
}

fn oauth2() -> Value {
    json!({"base_url": "https://api.example.org", "auth": {"type": "oauth2",
           "authorize_url": "https://id.example.org/authorize", "token_url": "https://id.example.org/token",
           "client_id": "spine", "client_secret": "s3cret", "scope": "people.read",
           "redirect_uri": "https://spine.example.org/v1/oauth/callback"}})
}

#[test]
fn oauth2_variant_validates_and_vaults_its_client_secret() {
    assert_eq!(errors(ConnectorType::HttpJson, oauth2()), Vec::<String>::new());
    let mut public = oauth2();
    public["auth"].as_object_mut().unwrap().remove("client_secret");
    assert_eq!(errors(ConnectorType::HttpJson, public), Vec::<String>::new(), "a public client has no secret");
    let mut c = oauth2();
    c["auth"].as_object_mut().unwrap().remove("token_url");
    c["auth"]["authorize_url"] = json!("ftp://x");
    let mut e = errors(ConnectorType::HttpJson, c);
    e.sort();
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].starts_with("auth.authorize_url"), "{e:?}");
    assert_eq!(e[1], "auth.token_url: required");
    let mut c = oauth2();
    let s = ConnectorType::HttpJson.split_secrets(&mut c);
    assert_eq!(s.iter().map(|x| x.0).collect::<Vec<_>>(), ["auth.client_secret"]);
    assert!(c["auth"].get("client_secret").is_none());
    assert!(ConnectorType::HttpJson.capabilities().supports_refresh);
}
