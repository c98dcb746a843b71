//! Naming, plural, plaintext-secret and location-based-name rules, and the word heuristics.

use super::tests::{add, db, explanation, found, pair, registry_mut, table};
use super::words::*;
use super::*;

#[test]
fn snake_case() {
    for ok in ["core", "qi2", "import_batches", "a_b_c", "x1_2"] {
        assert!(is_snake_case(ok), "{ok}");
    }
    for bad in ["", "Core", "importBatches", "1st", "_x", "with-hyphen", "with space", "café"] {
        assert!(!is_snake_case(bad), "{bad}");
    }
}

#[test]
fn naming_of_schema_table_and_column() {
    let mut s = db();
    s.catalog_schemas.push("QiFinance".into());
    s.registry_schemas.push(RegistrySchema {
        name: "QiFinance".into(),
        approved: false,
        creation_criteria: vec!["own_lifecycle".into(), "many_tables".into(), "own_permissions".into()],
        sensitivity: Some("sensitive".into()),
    });
    add(&mut s, table("core", "Widgets", &["id"], false), Some("runtime"));
    add(&mut s, table("core", "gadgets", &["id", "createdAt"], false), Some("runtime"));
    assert_eq!(
        found(&s),
        vec![
            pair("QiFinance", Rule::Naming),
            pair("core.Widgets", Rule::Naming),
            pair("core.gadgets.createdAt", Rule::Naming),
        ]
    );
}

#[test]
fn plural_heuristic() {
    for w in ["people", "addresses", "events", "data", "metadata", "staff", "Criteria", "status"] {
        assert!(is_plural(w), "{w}");
    }
    for w in ["widget", "address", "access", "person", "entry", "raw"] {
        assert!(!is_plural(w), "{w}");
    }
    assert_eq!(last_word("health_checks"), Some("checks"));
    assert_eq!(last_word("events_2024"), Some("events"));
    assert_eq!(last_word("zoho_contacts_raw"), Some("contacts"));
    assert_eq!(last_word("chrome_passwords_quarantine"), Some("passwords"));
    assert_eq!(last_word("raw"), Some("raw"));
    assert_eq!(last_word("2024"), None);
}

#[test]
fn singular_table_name() {
    let mut s = db();
    add(&mut s, table("qilife", "timeline", &["id"], false), Some("runtime"));
    add(&mut s, table("qilife", "timeline_items", &["id"], false), Some("runtime"));
    add(&mut s, table("core", "metadata", &["id"], false), Some("runtime"));
    assert_eq!(found(&s), vec![pair("qilife.timeline", Rule::SingularTableName)]);
    assert!(explanation(&s, "qilife.timeline", Rule::SingularTableName).contains("`timeline`"));
    registry_mut(&mut s, "qilife", "timeline").naming_exception_reason = Some("one per tenant".into());
    assert_eq!(found(&s), vec![]);

    // Unregistered tables have no exception to record.
    let mut s = db();
    s.catalog_tables.push(table("core", "widget", &["id"], false));
    assert_eq!(
        found(&s),
        vec![pair("core.widget", Rule::SingularTableName), pair("core.widget", Rule::UnregisteredTable)]
    );
}

#[test]
fn secret_markers() {
    for name in [
        "api_key",
        "api_keys",
        "password",
        "user_passwd",
        "client_secret",
        "oauth_token",
        "credentials",
        "apikey",
        "ssh_private_key",
    ] {
        assert!(secret_marker(name).is_some(), "{name}");
    }
    for name in ["token_ref", "api_token_refs", "credential_id", "secret_ids", "key_hash", "key_prefix", "display_name"]
    {
        assert_eq!(secret_marker(name), None, "{name}");
    }
}

#[test]
fn plaintext_secret_in_table_and_column_names() {
    let mut s = db();
    add(&mut s, table("qiconnect", "api_keys", &["id", "api_key"], false), Some("runtime"));
    assert_eq!(
        found(&s),
        vec![
            pair("qiconnect.api_keys", Rule::PlaintextSecret),
            pair("qiconnect.api_keys.api_key", Rule::PlaintextSecret),
        ]
    );
    assert!(explanation(&s, "qiconnect.api_keys.api_key", Rule::PlaintextSecret).contains("`api_key`"));
}

#[test]
fn references_and_vault_are_not_plaintext_secrets() {
    let mut s = db();
    add(&mut s, table("qiconnect", "api_token_refs", &["id", "token_ref", "credential_id"], false), Some("runtime"));
    add(&mut s, table("qivault", "api_keys", &["id", "key_hash", "secret_ciphertext"], false), Some("runtime"));
    assert_eq!(found(&s), vec![]);
}

#[test]
fn location_words() {
    assert_eq!(location_word("csv_contacts"), Some("csv"));
    assert_eq!(location_word("contacts_csv"), Some("csv"));
    assert_eq!(location_word("zoho_json_rows"), Some("json"));
    assert_eq!(location_word("budget_sheets"), Some("sheets"));
    assert_eq!(location_word("XLSX_rows"), Some("xlsx"));
    for name in ["jsonb_payload", "sheeted", "csvfiles", "contacts"] {
        assert_eq!(location_word(name), None, "{name}");
    }
    assert_eq!(raw_import_suffix("zoho_contacts_import"), Some("_import"));
    assert_eq!(raw_import_suffix("zoho_imports"), Some("_imports"));
    assert_eq!(raw_import_suffix("contacts_raw"), Some("_raw"));
    assert_eq!(raw_import_suffix("import_batches"), None);
}

#[test]
fn location_based_table_and_column_names() {
    let mut s = db();
    add(&mut s, table("qiserver", "csv_contacts", &["id", "raw_json"], false), Some("runtime"));
    assert_eq!(
        found(&s),
        vec![
            pair("qiserver.csv_contacts", Rule::LocationBasedName),
            pair("qiserver.csv_contacts.raw_json", Rule::LocationBasedName),
        ]
    );
}

#[test]
fn raw_imports_only_in_staging() {
    let mut s = db();
    add(&mut s, table("core", "zoho_contacts_import", &["id"], false), Some("runtime"));
    add(&mut s, table("core", "contacts_raw", &["id"], false), Some("runtime"));
    assert_eq!(
        found(&s),
        vec![
            pair("core.contacts_raw", Rule::LocationBasedName),
            pair("core.zoho_contacts_import", Rule::LocationBasedName),
        ]
    );
    assert!(explanation(&s, "core.contacts_raw", Rule::LocationBasedName).contains("`*_raw`"));

    let mut s = db();
    let mut cols = vec!["id", "tenant_id"];
    cols.extend(STAGING_COLUMNS);
    add(&mut s, table("staging", "zoho_contacts_raw", &cols, true), Some("staging"));
    assert_eq!(found(&s), vec![]);
}
