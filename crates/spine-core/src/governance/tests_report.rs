//! The rule names, the report and the snapshot's serialised form.

use super::tests::{db, table};
use super::*;

#[test]
fn rule_names_are_stable_and_match_serde() {
    for rule in Rule::ALL {
        let json = serde_json::to_string(&rule).unwrap();
        assert_eq!(json, format!("\"{}\"", rule.as_str()));
        assert_eq!(rule.to_string(), rule.as_str());
        assert_eq!(serde_json::from_str::<Rule>(&json).unwrap(), rule);
    }
    assert_eq!(Rule::TenantRls.as_str(), "tenant-rls");
    assert_eq!(Rule::MissingSourceOfTruth.as_str(), "missing-source-of-truth");
}

#[test]
fn output_is_sorted_and_report_renders() {
    let mut s = db();
    s.catalog_tables.push(table("core", "widget", &["id"], false));
    s.catalog_schemas.push("docker".into());
    s.catalog_tables.push(table("public", "things", &["id"], false));
    let report = Report::from_snapshot(&s);
    let subjects: Vec<_> = report.violations.iter().map(|v| (v.subject.as_str(), v.rule.as_str())).collect();
    assert_eq!(
        subjects,
        vec![
            ("core.widget", "singular-table-name"),
            ("core.widget", "unregistered-table"),
            ("docker", "unapproved-schema"),
            ("public.things", "public-schema"),
        ]
    );
    assert_eq!((report.tables_checked, report.columns_checked), (5, 26));
    let text = report.render_text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(lines[0].starts_with("core.widget: singular-table-name: "), "{}", lines[0]);
    assert_eq!(lines[4], "4 violations in 5 tables, 26 columns");
    assert!(!report.is_clean());

    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["violations"][2]["rule"], "unapproved-schema");
    assert_eq!(json["tables_checked"], 5);

    let clean = Report::from_snapshot(&db());
    assert!(clean.is_clean());
    assert_eq!(clean.render_text(), "0 violations in 4 tables, 25 columns");
}

#[test]
fn snapshot_round_trips_through_json() {
    let s = db();
    let json = serde_json::to_string(&s).unwrap();
    assert_eq!(serde_json::from_str::<Snapshot>(&json).unwrap(), s);
}
