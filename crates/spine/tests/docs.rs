//! Committed documents that must match the code.

use std::path::PathBuf;

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(rel)
}

#[test]
fn committed_openapi_matches_the_code() {
    let committed = std::fs::read_to_string(repo_file("docs/openapi.json")).expect("docs/openapi.json exists");
    let generated = spine_api::openapi::document();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: regenerate it with `cargo run -q -- openapi > docs/openapi.json`"
    );
    let v: serde_json::Value = serde_json::from_str(&generated).unwrap();
    assert!(v["openapi"].as_str().unwrap().starts_with("3.1"), "OpenAPI 3.1 expected");
}

#[test]
fn every_error_code_is_documented() {
    let doc = std::fs::read_to_string(repo_file("docs/errors.md")).expect("docs/errors.md exists");
    for code in spine_core::error_code::ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.http_status());
        assert!(doc.contains(&row), "docs/errors.md lacks the row for {}: {row}", code.as_str());
    }
}
