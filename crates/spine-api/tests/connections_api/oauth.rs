//! OAuth2 over the API (issue 5 item 5), against a provider the test runs on loopback: start
//! answers the authorization URL (S256 challenge, state); the callback needs no bearer, exchanges
//! the code with the verifier and stores the tokens in the vault only; a reused or forged state is
//! a 400; another tenant cannot start an authorization of the connection; the health check calls
//! the API with the access token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::{Form, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use spine_core::auth::Scope;
use spine_pipeline::connectors::oauth::code_challenge;

use super::common::Resp;
use super::{env, tables_containing, tenant};

const ACCESS: &str = "canary-api-oauth-ACCESS-6b1d";
const REFRESH: &str = "canary-api-oauth-REFRESH-93aa";
const SECRET: &str = "canary-api-oauth-CLIENT-0f0f";

/// code → S256 challenge it was issued for.
type Codes = Arc<Mutex<HashMap<String, String>>>;

async fn token(State(codes): State<Codes>, Form(f): Form<HashMap<String, String>>) -> Response {
    let bad = || (StatusCode::BAD_REQUEST, Json(json!({"error": "invalid_grant"}))).into_response();
    if f.get("client_secret").map(String::as_str) != Some(SECRET) || f["grant_type"] != "authorization_code" {
        return bad();
    }
    let Some(challenge) = codes.lock().unwrap().remove(&f["code"]) else { return bad() };
    if code_challenge(&f["code_verifier"]) != challenge {
        return bad();
    }
    Json(json!({"access_token": ACCESS, "refresh_token": REFRESH, "expires_in": 3600, "token_type": "Bearer"}))
        .into_response()
}

async fn people(h: HeaderMap) -> Response {
    if h.get("authorization").is_some_and(|v| v == format!("Bearer {ACCESS}").as_str()) {
        Json(json!({"people": []})).into_response()
    } else {
        StatusCode::UNAUTHORIZED.into_response()
    }
}

fn no_token(r: &Resp) {
    for c in [ACCESS, REFRESH, SECRET] {
        assert!(!r.text.contains(c), "a token came back: {}", r.text);
    }
}

#[tokio::test]
async fn authorization_code_flow_over_the_api() {
    let env = env().await;
    let codes: Codes = Arc::default();
    let app = Router::new().route("/token", post(token)).route("/v1/people", get(people)).with_state(codes.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (_, key) = tenant(&env, "oa", true, &[Scope::ConnectionsAdmin]).await;
    let (_, other) = tenant(&env, "ob", true, &[Scope::ConnectionsAdmin]).await;
    let config = json!({"name": "crm", "connector_type": "http_json", "config": {"base_url": base, "path": "/v1/people",
        "auth": {"type": "oauth2", "authorize_url": format!("{base}/authorize"), "token_url": format!("{base}/token"),
                 "client_id": "spine", "client_secret": SECRET, "redirect_uri": "http://127.0.0.1/v1/oauth/callback"}}});
    let r = env.send("POST", "/v1/connections", Some(&config), Some(&key)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json.as_ref().unwrap()["status"], "needs_reauth", "unusable until authorized");
    let id = r.json.as_ref().unwrap()["id"].as_str().unwrap().to_owned();

    let start = format!("/v1/connections/{id}/oauth/start");
    let r = env.send("POST", &start, None, Some(&other)).await;
    assert_eq!(r.status, 404, "another tenant's connection: {}", r.text);
    let r = env.send("POST", &start, None, None).await;
    assert_eq!(r.status, 401);
    let r = env.send("POST", &start, None, Some(&key)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let body = r.json.clone().unwrap();
    let url = body["authorization_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("{base}/authorize?")), "{url}");
    // state and code_challenge are base64url: nothing to percent-decode.
    let q: HashMap<String, String> = url
        .split_once('?')
        .unwrap()
        .1
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!((q["code_challenge_method"].as_str(), q["state"].as_str()), ("S256", body["state"].as_str().unwrap()));
    codes.lock().unwrap().insert("the-code".into(), q["code_challenge"].clone());

    let forged = env.send("GET", "/v1/oauth/callback?code=the-code&state=forged", None, None).await;
    assert_eq!((forged.status, forged.code()), (400, Some("invalid_request")), "{}", forged.text);
    let cb = format!("/v1/oauth/callback?code=the-code&state={}", q["state"]);
    let r = env.send("GET", &cb, None, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json.as_ref().unwrap()["status"], "active");
    no_token(&r);
    let again = env.send("GET", &cb, None, None).await;
    assert_eq!(again.status, 400, "a state is single-use: {}", again.text);
    assert_eq!(again.json.as_ref().unwrap()["details"]["reason"], "invalid_state");

    let r = env.send("GET", &format!("/v1/connections/{id}/health"), None, Some(&key)).await;
    assert_eq!((r.status, r.json.as_ref().unwrap()["ok"].as_bool()), (200, Some(true)), "{}", r.text);
    no_token(&r);
    let r = env.send("GET", &format!("/v1/connections/{id}"), None, Some(&key)).await;
    no_token(&r);
    for t in [ACCESS, REFRESH, SECRET] {
        assert_eq!(tables_containing(&env, t).await, vec![], "{t} outside the vault's ciphertext");
    }
}
