//! `spine ingest`: folders walked recursively, every file registered through the pipeline, a
//! summary for scripts; ingesting the same folder again finds only duplicates.

mod common;

use common::{Env, text};
use serde_json::Value;

const CONTACTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/csv/contacts");

#[test]
fn ingest_registers_a_folder_and_then_finds_duplicates() {
    let env = Env::new();
    assert!(env.run(&["tenant", "create", "solo"]).status.success());
    let files = walk(std::path::Path::new(CONTACTS));
    let out = env.run(&["ingest", CONTACTS, "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["files"].as_u64(), Some(files as u64));
    assert_eq!(v["summary"]["failed"].as_u64(), Some(0));
    let registered = v["summary"]["registered"].as_u64().unwrap();
    assert!(registered > 0 && registered + v["summary"]["duplicates"].as_u64().unwrap() == files as u64, "{v}");
    let csv =
        v["files"].as_array().unwrap().iter().find(|f| f["path"].as_str().unwrap().ends_with("gmail.csv")).unwrap();
    assert_eq!(csv["registered"]["media_type"], "text/csv");

    let again = env.run(&["ingest", CONTACTS, "--json"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    let v: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (v["summary"]["registered"].as_u64(), v["summary"]["duplicates"].as_u64()),
        (Some(0), Some(files as u64))
    );

    let human = env.run(&["ingest", &format!("{CONTACTS}/roundcube/gmail.csv")]);
    assert!(text(&human.stdout).contains("duplicate of file"), "{}", text(&human.stdout));

    let missing = env.run(&["ingest", "/nonexistent/spine/path"]);
    assert_eq!(missing.status.code(), Some(2), "{}", text(&missing.stderr));
    let bad_profile = env.run(&["ingest", CONTACTS, "--profile", "nope"]);
    assert_eq!(bad_profile.status.code(), Some(2));
    assert!(text(&bad_profile.stderr).contains("spine profiles"), "{}", text(&bad_profile.stderr));
    assert!(env.run(&["tenant", "create", "second"]).status.success());
    let ambiguous = env.run(&["ingest", CONTACTS]);
    assert_eq!(ambiguous.status.code(), Some(2), "two tenants: --tenant is needed");
    assert!(env.run(&["ingest", CONTACTS, "--tenant", "second"]).status.success());
}

fn walk(p: &std::path::Path) -> usize {
    std::fs::read_dir(p)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .map(|p| if p.is_dir() { walk(&p) } else { 1 })
        .sum()
}
