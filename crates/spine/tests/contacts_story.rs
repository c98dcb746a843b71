//! Issue 4's "done when", through the binary: `spine up`, drop a Google Contacts export into
//! `data/inbox`, see it registered and staged, review it with the CLI, promote it, find the person
//! and their emails, and `spine trace` the person back to the file and row it came from.

mod common;

use std::time::{Duration, Instant};

use common::{Env, Up, text};
use serde_json::Value;
use sha2::{Digest, Sha256};

const GMAIL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/corpus/csv/contacts/roundcube/gmail.csv");

fn json(env: &Env, args: &[&str]) -> Value {
    let out = env.run(args);
    assert!(out.status.success(), "spine {args:?}: {}", text(&out.stderr));
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("spine {args:?} printed no JSON ({e}): {}", text(&out.stdout)))
}

/// Polls (`spine up` does the work in another process) until `f` gives a value.
fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_contacts_export_dropped_in_the_inbox_ends_as_traceable_people() {
    let env = Env::new();
    let up = Up::start(&env, &[]);
    assert!(up.banner.iter().any(|l| l.contains("Watching") && l.contains("inbox")), "{:?}", up.banner);
    let inbox = env.data_dir().join("inbox");
    let bytes = std::fs::read(GMAIL).unwrap();
    let sha = hex::encode(Sha256::digest(&bytes));
    // Written under a temporary name, then renamed: the watcher takes it at once.
    std::fs::write(inbox.join("contacts.csv.part"), &bytes).unwrap();
    std::fs::rename(inbox.join("contacts.csv.part"), inbox.join("contacts.csv")).unwrap();

    until("the file to move to processed/", || inbox.join("processed/contacts.csv").exists().then_some(()));
    let rows = until("the staged row", || {
        let v = json(&env, &["review", "list", "--json"]);
        let rows = v.as_array().cloned().unwrap_or_default();
        (!rows.is_empty()).then_some(rows)
    });
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["proposed_action"], "create");
    assert_eq!(rows[0]["profile"], "google_contacts_legacy");
    let row_id = rows[0]["id"].as_str().unwrap().to_owned();
    let batch = rows[0]["import_batch_id"].as_str().unwrap().to_owned();
    assert_eq!(rows[0]["proposal"]["person"]["full_name"], "Prefix Firstname Middle Lastname Suffix");

    let out = env.run(&["review", "approve-all", &batch]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("1 rows approved"), "{}", text(&out.stdout));
    let report = json(&env, &["promote", &batch, "--json"]);
    assert_eq!((report["created"].as_i64(), report["batch_done"].as_bool()), (Some(1), Some(true)), "{report}");

    let shown = json(&env, &["review", "show", &row_id]);
    assert_eq!(shown["review_status"], "promoted");
    let person = shown["promoted_entity_id"].as_str().unwrap().to_owned();

    // Back from the person to the row, batch, file version, blob and capture.
    let trace = json(&env, &["trace", &person, "--json"]);
    let o = &trace["origins"][0];
    assert_eq!(o["record_table"], "core.people");
    assert_eq!(o["import_row_id"], row_id.as_str());
    assert_eq!(o["import_batch_id"], batch.as_str());
    assert_eq!(o["original_name"], "contacts.csv");
    assert_eq!(o["content_sha256"], sha.as_str());
    assert_eq!(o["ingress_kind"], "watch_folder");
    assert!(o["route"].as_str().unwrap().ends_with("/inbox"), "{o}");
    // Forward from the file: the person and their emails in core tables.
    let file = o["file_id"].as_str().unwrap().to_owned();
    let forward = json(&env, &["trace", &file, "--json"]);
    let derived = forward["derived"].as_array().unwrap();
    assert!(derived.iter().any(|d| d["record_table"] == "core.people" && d["record_id"] == person.as_str()));
    let identifiers = derived.iter().filter(|d| d["record_table"] == "core.identifiers").count();
    assert!(identifiers >= 4, "the four emails at least: {forward}");
    let human = env.run(&["trace", &person]);
    assert!(text(&human.stdout).contains("contacts.csv"), "{}", text(&human.stdout));

    let (status, log) = up.terminate();
    assert!(status.success(), "{log}");
}
