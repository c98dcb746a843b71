//! Import profiles against the real contact exports in ../shared/corpus (read in place), their
//! expected outputs (Roundcube's .vcf files, Thunderbird's expected JSON), inline samples of
//! the formats the corpus lacks, and every messy or hostile file the corpus has.

use std::fs::File;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use spine_core::identifier::IdentifierKind;
use spine_pipeline::profiles::{self, MapOptions, MappedContact, MappedIdentifier, Profile};
use spine_pipeline::staging::{self, Format, ParseOptions};
use spine_testkit::{corpus_dir, files_under};

fn corpus(rel: &str) -> PathBuf {
    corpus_dir().join(rel)
}

struct Parsed {
    header: Vec<String>,
    rows: Vec<Map<String, Value>>,
}

fn parse_reader(input: impl std::io::Read + Send, opts: &ParseOptions) -> Option<Parsed> {
    let mut it = staging::parse(input, opts).ok()?;
    let mut rows = Vec::new();
    for row in it.by_ref() {
        match row {
            Ok(r) => rows.extend(r.outcome.ok()),
            Err(_) => break,
        }
    }
    Some(Parsed { header: it.summary().header.clone(), rows })
}

fn parse_file(path: &Path) -> Parsed {
    let file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse_reader(file, &ParseOptions::default()).unwrap_or_else(|| panic!("{} does not parse", path.display()))
}

fn parse_text(text: &str) -> Parsed {
    parse_reader(text.as_bytes(), &ParseOptions::default()).expect("inline CSV parses")
}

/// Detects the profile, checks it is `want`, and maps every row.
fn detect_and_map(parsed: &Parsed, want: &str, opts: &MapOptions) -> Vec<MappedContact> {
    let detection = profiles::detect(&parsed.header).expect("a profile is detected");
    assert_eq!(detection.profile.name, want, "header {:?}", parsed.header);
    parsed.rows.iter().map(|r| detection.profile.map_row(r, opts)).collect()
}

fn fixture(rel: &str, want: &str) -> Vec<MappedContact> {
    detect_and_map(&parse_file(&corpus(rel)), want, &MapOptions::default())
}

fn of_kind(c: &MappedContact, kind: IdentifierKind) -> Vec<&MappedIdentifier> {
    c.identifiers.iter().filter(|i| i.kind == kind).collect()
}

fn values(c: &MappedContact, kind: IdentifierKind) -> Vec<&str> {
    of_kind(c, kind).iter().map(|i| i.value.as_str()).collect()
}

fn find<'a>(c: &'a MappedContact, kind: IdentifierKind, value: &str) -> &'a MappedIdentifier {
    c.identifiers
        .iter()
        .find(|i| i.kind == kind && i.value == value)
        .unwrap_or_else(|| panic!("no {kind} {value}: {c:#?}"))
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort_unstable();
    v
}

fn has_problem(c: &MappedContact, needle: &str) -> bool {
    c.problems.iter().any(|p| p.contains(needle))
}

// --- expected vCards -------------------------------------------------------------------------

struct Prop {
    name: String,
    params: Vec<String>,
    value: String,
}

impl Prop {
    fn type_param(&self) -> Option<String> {
        self.params.iter().find_map(|p| p.strip_prefix("TYPE=")).map(str::to_lowercase)
    }
}

/// The cards of a .vcf file (unfolded lines, `NAME;PARAMS:VALUE`, vCard 3.0 escapes undone).
fn vcards(rel: &str) -> Vec<Vec<Prop>> {
    let text = std::fs::read_to_string(corpus(rel)).unwrap();
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        match (line.strip_prefix([' ', '\t']), lines.last_mut()) {
            (Some(rest), Some(last)) => last.push_str(rest),
            _ => lines.push(line.to_owned()),
        }
    }
    let mut cards = Vec::new();
    let mut card = Vec::new();
    for line in lines {
        match line.as_str() {
            "BEGIN:VCARD" => card = Vec::new(),
            "END:VCARD" => cards.push(std::mem::take(&mut card)),
            _ => {
                let (left, value) = line.split_once(':').unwrap();
                let mut parts = left.split(';').map(str::to_owned);
                let name = parts.next().unwrap().to_uppercase();
                let value = value.replace("\\n", "\n").replace("\\,", ",").replace("\\;", ";").replace("\\\\", "\\");
                card.push(Prop { name, params: parts.collect(), value });
            }
        }
    }
    cards
}

fn props<'a>(card: &'a [Prop], name: &str) -> Vec<&'a Prop> {
    card.iter().filter(|p| p.name == name).collect()
}

fn one<'a>(card: &'a [Prop], name: &str) -> Option<&'a str> {
    props(card, name).first().map(|p| p.value.as_str())
}

/// vCard TYPE values as our labels.
fn vcard_label(t: &str) -> String {
    match t {
        "cell" => "mobile".to_owned(),
        "homefax" => "home_fax".to_owned(),
        "workfax" => "work_fax".to_owned(),
        "homepage" => "home_page".to_owned(),
        other => other.to_owned(),
    }
}

/// Asserts a mapped contact against Roundcube's expected vCard: names, nickname, birthday,
/// note, organization, title, every e-mail and URL (and no others), and every phone either
/// mapped or reported as a problem (the fixtures' "phones" are words such as `pager`).
fn assert_matches_vcard(c: &MappedContact, card: &[Prop]) {
    let person = c.person.as_ref().expect("a person");
    assert_eq!(Some(person.full_name.as_str()), one(card, "FN"));
    let n: Vec<&str> = one(card, "N").unwrap().split(';').collect();
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    assert_eq!(person.family_name, opt(n[0]), "family name");
    assert_eq!(person.given_name, opt(n[1]), "given name");
    assert_eq!(person.middle_name, opt(n[2]), "middle name");
    assert_eq!(person.nickname.as_deref(), one(card, "NICKNAME"));
    assert_eq!(person.birth_date.map(|d| d.to_string()).as_deref(), one(card, "BDAY"));
    assert_eq!(person.notes.as_deref(), one(card, "NOTE"));
    assert_eq!(c.organization.as_ref().map(|o| o.name.as_str()), one(card, "ORG"));
    assert_eq!(c.job_title.as_deref(), one(card, "TITLE"));

    let emails: Vec<&str> = props(card, "EMAIL").iter().map(|p| p.value.as_str()).collect();
    assert_eq!(sorted(values(c, IdentifierKind::Email)), sorted(emails), "emails");
    for p in props(card, "EMAIL") {
        let ours = find(c, IdentifierKind::Email, &p.value);
        if let (Some(want), Some(got)) = (p.type_param(), &ours.label) {
            assert_eq!(*got, vcard_label(&want), "label of {}", p.value);
        }
    }
    // URL labels are not compared: Roundcube calls Thunderbird's "Web Page 1" a homepage,
    // Thunderbird's own address book shows it as the work web page (our label).
    let urls: Vec<&str> = props(card, "URL").iter().map(|p| p.value.as_str()).collect();
    assert_eq!(sorted(values(c, IdentifierKind::Url)), sorted(urls), "urls");

    let tels: Vec<&Prop> = props(card, "TEL");
    for p in &tels {
        match c.identifiers.iter().find(|i| i.kind == IdentifierKind::Phone && i.value == p.value) {
            Some(ours) => {
                if let (Some(want), Some(got)) = (p.type_param(), &ours.label) {
                    assert_eq!(*got, vcard_label(&want), "label of {}", p.value);
                }
            }
            None => assert!(
                has_problem(c, &format!("phone `{}`", p.value)),
                "phone {} neither mapped nor reported: {c:#?}",
                p.value
            ),
        }
    }
    let phones = of_kind(c, IdentifierKind::Phone);
    assert!(phones.iter().all(|i| tels.iter().any(|p| p.value == i.value)), "extra phones: {phones:?}");
    assert_eq!(phones.len() + c.problems.iter().filter(|p| p.starts_with("phone `")).count(), tels.len());
}

fn assert_vcf_fixture(csv: &str, vcf: &str, want: &str) -> Vec<MappedContact> {
    let contacts = fixture(csv, want);
    let cards = vcards(vcf);
    assert_eq!(contacts.len(), cards.len(), "{csv}: one contact per expected card");
    for (c, card) in contacts.iter().zip(&cards) {
        assert_matches_vcard(c, card);
    }
    contacts
}

// --- the corpus fixtures ---------------------------------------------------------------------

#[test]
fn google_legacy_export_matches_its_vcard() {
    let contacts = assert_vcf_fixture(
        "csv/contacts/roundcube/gmail.csv",
        "csv/contacts/roundcube/gmail.vcf",
        "google_contacts_legacy",
    );
    let c = &contacts[0];
    // `* Home` marks the primary address; the other types become labels.
    let home = find(c, IdentifierKind::Email, "home@aaa.pl");
    assert!(home.is_primary);
    assert_eq!(home.label.as_deref(), Some("home"));
    assert_eq!(find(c, IdentifierKind::Email, "work@email.pl").label.as_deref(), Some("work"));
    assert_eq!(find(c, IdentifierKind::Email, "unknown@email.com").label, None);
    assert_eq!(of_kind(c, IdentifierKind::Email).iter().filter(|i| i.is_primary).count(), 1);
    assert_eq!(find(c, IdentifierKind::Url, "test.com").normalized, "https://test.com");
    assert_eq!(find(c, IdentifierKind::Url, "home.page.com").label.as_deref(), Some("home_page"));
    // Seven "phones" that are words: kept as problems, with their labels.
    assert!(of_kind(c, IdentifierKind::Phone).is_empty());
    assert!(has_problem(c, "phone `homefax` in column `Phone 4 - Value` (label home_fax)"));
    let detection = profiles::detect(&parse_file(&corpus("csv/contacts/roundcube/gmail.csv")).header).unwrap();
    assert!(detection.unknown.is_empty(), "columns the legacy profile does not know: {:?}", detection.unknown);
    assert!((detection.score - 1.0).abs() < f32::EPSILON);
}

#[test]
fn outlook_export_matches_its_vcard() {
    let contacts =
        assert_vcf_fixture("csv/contacts/roundcube/outlook.csv", "csv/contacts/roundcube/outlook.vcf", "outlook");
    let c = &contacts[0];
    assert!(find(c, IdentifierKind::Email, "test1@domain.tld").is_primary);
    assert!(!find(c, IdentifierKind::Email, "test2@domain.tld").is_primary);
    assert!(has_problem(c, "no name in the row; the full name is the email address `test1@domain.tld`"));
    assert!(c.organization.is_none() && c.external_id.is_none());
}

#[test]
fn thunderbird_export_matches_its_vcard() {
    let contacts =
        assert_vcf_fixture("csv/contacts/roundcube/tb_plain.csv", "csv/contacts/roundcube/tb_plain.vcf", "thunderbird");
    let c = &contacts[0];
    assert!(find(c, IdentifierKind::Email, "test@domain.tld").is_primary);
    assert_eq!(find(c, IdentifierKind::Url, "http://page.com").label.as_deref(), Some("work"));
    assert!(has_problem(c, "phone `mobile` in column `Mobile Number` (label mobile)"));
    let detection = profiles::detect(&parse_file(&corpus("csv/contacts/roundcube/tb_plain.csv")).header).unwrap();
    assert!(detection.unknown.is_empty(), "{:?}", detection.unknown);
}

#[test]
fn single_email_column_is_thunderbird_and_matches_its_vcards() {
    let contacts =
        assert_vcf_fixture("csv/contacts/roundcube/email.csv", "csv/contacts/roundcube/email.vcf", "thunderbird");
    assert_eq!(contacts.len(), 4);
    for (i, c) in contacts.iter().enumerate() {
        let email = format!("test{}@domain.tld", i + 1);
        assert_eq!(c.person.as_ref().unwrap().full_name, email);
        assert!(find(c, IdentifierKind::Email, &email).is_primary);
    }
}

#[test]
fn bom_file_with_every_roundcube_column_is_generic_and_matches_its_vcard() {
    // all.csv starts with a UTF-8 BOM and mixes column names of several address books.
    let parsed = parse_file(&corpus("csv/contacts/roundcube/all.csv"));
    assert_eq!(parsed.header[0], "Display Name", "BOM stripped");
    let contacts =
        assert_vcf_fixture("csv/contacts/roundcube/all.csv", "csv/contacts/roundcube/all.vcf", "generic_people");
    let c = &contacts[0];
    assert_eq!(find(c, IdentifierKind::Email, "home@example.com").label.as_deref(), Some("home"));
    assert_eq!(find(c, IdentifierKind::Url, "https://blog").label.as_deref(), Some("blog"));
    // 100, 200, … are three digits: not phone numbers, reported with their columns.
    assert!(has_problem(c, "phone `500` in column `Home Mobile` (label mobile)"));
    assert!(!c.problems.iter().any(|p| p.contains("birthday")), "20/01/1991 reads one way only");
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ExpectedCard {
    display_name: String,
    first_name: String,
    last_name: String,
    primary_email: String,
}

#[test]
fn thunderbird_address_books_match_the_expected_import() {
    let text = std::fs::read_to_string(corpus("csv/contacts/thunderbird/expected_csv_import.json")).unwrap();
    let expected: Vec<ExpectedCard> =
        serde_json::from_value(serde_json::from_str::<Value>(&text).unwrap()["csv_import"].clone()).unwrap();
    assert_eq!(expected.len(), 2);
    for file in ["basic_csv_addressbook.csv", "csv_semicolon.csv"] {
        let contacts = fixture(&format!("csv/contacts/thunderbird/{file}"), "thunderbird");
        assert_eq!(contacts.len(), expected.len(), "{file}");
        for (c, want) in contacts.iter().zip(&expected) {
            let p = c.person.as_ref().unwrap();
            assert_eq!(p.full_name, want.display_name);
            assert_eq!(p.given_name.as_deref(), Some(want.first_name.as_str()));
            assert_eq!(p.family_name.as_deref(), Some(want.last_name.as_str()));
            assert_eq!(values(c, IdentifierKind::Email), [want.primary_email.as_str()]);
            assert!(c.identifiers[0].is_primary);
            assert!(c.problems.is_empty(), "{file}: {:?}", c.problems);
        }
    }
}

#[test]
fn headerless_thunderbird_file_is_not_taken_for_a_profile() {
    let parsed = parse_file(&corpus("csv/contacts/thunderbird/csv_no_header.csv"));
    // The first contact became the header: nothing recognises `John Doe,John,Doe,john@…`.
    let detection = profiles::detect(&parsed.header);
    assert!(detection.as_ref().is_none_or(|d| d.profile.name == "generic_people"), "{detection:?}");
    for p in profiles::builtin() {
        for row in &parsed.rows {
            let _ = p.map_row(row, &MapOptions::default());
        }
    }
}

// --- formats without a corpus fixture ---------------------------------------------------------

/// The current Google Contacts header, as exported by contacts.google.com. No export is in
/// the corpus; this header is the one several public projects write or pin in their tests
/// (e.g. a README listing the "Fields" of an export, a Go test of "a real-world Google Contacts
/// export", a Kotlin test asserting "googles_header_starts_with_its_fixed_columns"), found with
/// the code search. The rows below are made up.
const GOOGLE_HEADER: &str = "First Name,Middle Name,Last Name,Phonetic First Name,Phonetic Middle Name,Phonetic Last Name,Name Prefix,Name Suffix,Nickname,File As,Organization Name,Organization Title,Organization Department,Birthday,Notes,Photo,Labels,E-mail 1 - Label,E-mail 1 - Value,E-mail 2 - Label,E-mail 2 - Value,Phone 1 - Label,Phone 1 - Value,Phone 2 - Label,Phone 2 - Value,Address 1 - Label,Address 1 - Formatted,Address 1 - Street,Address 1 - City,Address 1 - PO Box,Address 1 - Region,Address 1 - Postal Code,Address 1 - Country,Address 1 - Extended Address,Website 1 - Label,Website 1 - Value,Event 1 - Label,Event 1 - Value,Custom Field 1 - Label,Custom Field 1 - Value";

#[test]
fn current_google_export_maps_multi_values_primaries_and_org_only_rows() {
    let csv = format!(
        "{GOOGLE_HEADER}\n\
         Grace,Brewster,Hopper,,,,Rear Admiral,,Amazing Grace,,US Navy,Computer Scientist,,1906-12-09,\"Wrote the first\ncompiler\",,* myContacts ::: Navy,* Work,grace@navy.example,Home,grace@home.example ::: GRACE@Navy.example,Mobile,+1 202 555 0143 ::: 202-555-0199,Work,(202) 555-0100 x42,,,,,,,,,,Profile,navy.example/hopper,,,,\n\
         ,,,,,,,,,,Acme Corp,,,,,,* myContacts,,,,,Work,+44 20 7946 0000,,,,,,,,,,,,,,,,,,\n\
         ,,,,,,,,,,,,,--04-01,,,* myContacts,* ,Solo@Example.org,,,,,,,,,,,,,,,,,,,,,\n\
         Bad,,Data,,,,,,,,,,,31/02/2001,,,* myContacts,,not-an-email,,,Home,call me,,,,,,,,,,,,,,,,,\n"
    );
    let parsed = parse_text(&csv);
    let opts = MapOptions { default_calling_code: Some("1".into()) };
    let contacts = detect_and_map(&parsed, "google_contacts", &opts);
    assert_eq!(contacts.len(), 4);

    let grace = &contacts[0];
    let p = grace.person.as_ref().unwrap();
    assert_eq!(p.full_name, "Rear Admiral Grace Brewster Hopper");
    assert_eq!(
        (p.given_name.as_deref(), p.middle_name.as_deref(), p.family_name.as_deref()),
        (Some("Grace"), Some("Brewster"), Some("Hopper"))
    );
    assert_eq!(p.nickname.as_deref(), Some("Amazing Grace"));
    assert_eq!(p.birth_date.unwrap().to_string(), "1906-12-09");
    assert_eq!(p.notes.as_deref(), Some("Wrote the first\ncompiler"));
    assert_eq!(grace.organization.as_ref().unwrap().name, "US Navy");
    assert_eq!(grace.job_title.as_deref(), Some("Computer Scientist"));
    // GRACE@Navy.example repeats grace@navy.example: deduplicated, the first one kept.
    assert_eq!(values(grace, IdentifierKind::Email), ["grace@navy.example", "grace@home.example"]);
    let work = find(grace, IdentifierKind::Email, "grace@navy.example");
    assert!(work.is_primary && work.label.as_deref() == Some("work"));
    assert_eq!(find(grace, IdentifierKind::Email, "grace@home.example").label.as_deref(), Some("home"));
    let phones: Vec<(&str, Option<&str>)> =
        of_kind(grace, IdentifierKind::Phone).iter().map(|i| (i.normalized.as_str(), i.label.as_deref())).collect();
    assert_eq!(
        phones,
        [("+12025550143", Some("mobile")), ("+12025550199", Some("mobile")), ("+12025550100;ext=42", Some("work"))]
    );
    let url = find(grace, IdentifierKind::Url, "navy.example/hopper");
    assert_eq!((url.normalized.as_str(), url.label.as_deref()), ("https://navy.example/hopper", Some("profile")));
    assert!(grace.problems.is_empty(), "{:?}", grace.problems);
    assert!(grace.external_id.is_none());

    // An organization with a phone and nobody: the organization alone, the phone is its.
    let acme = &contacts[1];
    assert!(acme.person.is_none() && acme.job_title.is_none());
    assert_eq!(acme.organization.as_ref().unwrap().name, "Acme Corp");
    assert_eq!(values(acme, IdentifierKind::Phone), ["+44 20 7946 0000"]);
    assert!(!acme.is_empty());

    // No name: the e-mail address is the name, and the yearless birthday is reported.
    let solo = &contacts[2];
    assert_eq!(solo.person.as_ref().unwrap().full_name, "solo@example.org");
    assert!(find(solo, IdentifierKind::Email, "Solo@Example.org").is_primary);
    assert!(has_problem(solo, "no name in the row"));
    assert!(has_problem(solo, "birthday `--04-01` not mapped: it has no year"));

    let bad = &contacts[3];
    assert_eq!(bad.person.as_ref().unwrap().full_name, "Bad Data");
    assert!(bad.identifiers.is_empty());
    assert!(has_problem(bad, "email `not-an-email` in column `E-mail 1 - Value` is not usable"));
    assert!(has_problem(bad, "phone `call me` in column `Phone 1 - Value` (label home) is not usable"));
    assert!(has_problem(bad, "birthday `31/02/2001` not mapped"));
}

/// A Zoho CRM Contacts export header. No export is in the corpus (none is public): the columns
/// are Zoho's documented Contacts field labels (zoho.com/crm/help/api/modules-fields.html lists
/// them) in the form the export writes them, with `Record Id` as in public scripts that read
/// these exports (e.g. a `migrate-zoho-contacts` script mapping 'Record Id' → zoho_record_id).
/// The rows are made up.
const ZOHO_HEADER: &str = "Record Id,Contact Owner,Lead Source,First Name,Last Name,Account Name,Email,Title,Department,Phone,Home Phone,Other Phone,Fax,Mobile,Date of Birth,Assistant,Asst Phone,Email Opt Out,Skype ID,Created By,Modified By,Created Time,Modified Time,Full Name,Mailing Street,Mailing City,Mailing State,Mailing Zip,Mailing Country,Description,Salutation,Secondary Email,Twitter,Tag";

#[test]
fn zoho_export_maps_people_organizations_and_record_ids() {
    let csv = format!(
        "{ZOHO_HEADER}\n\
         zcrm_5512000000123001,Owner One,Web Site,Ada,Lovelace,Analytical Engines Ltd,ADA@Engines.example,Chief Mathematician,R&D,020 7946 0018,,,,07700 900123,1815-12-10,,,false,,Owner One,Owner One,2024-01-02 10:00:00,2024-01-03 11:00:00,Ada Lovelace,12 St James's Square,London,,SW1Y 4JH,United Kingdom,\"Met at the \"\"Difference\"\" talk.\",Ms.,ada@home.example,,VIP\n\
         zcrm_5512000000123002,Owner One,,,Babbage,,,,,,,,,,,,,false,,,,,,,,,,,,,,,,\n"
    );
    let parsed = parse_text(&csv);
    let opts = MapOptions { default_calling_code: Some("+44".into()) };
    let contacts = detect_and_map(&parsed, "zoho_crm", &opts);
    let ada = &contacts[0];
    let p = ada.person.as_ref().unwrap();
    assert_eq!(p.full_name, "Ada Lovelace");
    assert_eq!(p.birth_date.unwrap().to_string(), "1815-12-10");
    assert_eq!(p.notes.as_deref(), Some("Met at the \"Difference\" talk."));
    assert_eq!(ada.organization.as_ref().unwrap().name, "Analytical Engines Ltd");
    assert_eq!(ada.job_title.as_deref(), Some("Chief Mathematician"));
    let ext = ada.external_id.as_ref().unwrap();
    assert_eq!((ext.source_system.as_str(), ext.external_id.as_str()), ("zoho_crm", "zcrm_5512000000123001"));
    let ids: Vec<(&str, &str, Option<&str>, bool)> = ada
        .identifiers
        .iter()
        .map(|i| (i.kind.as_str(), i.normalized.as_str(), i.label.as_deref(), i.is_primary))
        .collect();
    assert_eq!(
        ids,
        [
            ("email", "ada@engines.example", None, true),
            ("email", "ada@home.example", None, false),
            ("phone", "+442079460018", Some("work"), false),
            ("phone", "+447700900123", Some("mobile"), false),
        ]
    );
    assert!(ada.problems.is_empty(), "{:?}", ada.problems);

    let babbage = &contacts[1];
    assert_eq!(babbage.person.as_ref().unwrap().full_name, "Babbage");
    assert_eq!(babbage.external_id.as_ref().unwrap().external_id, "zcrm_5512000000123002");
}

// --- mapping rules on the generic profile -------------------------------------------------------

#[test]
fn generic_rows_follow_the_mapping_rules() {
    // Repeated header names become `Email_2`, `Notes_2` in staging; both are used.
    let csv = "Name,Email,Email,Phone,Company,Job Title,Birthday,Notes,Notes\n\
               Ada Lovelace,ada@x.org,Ada <ADA@X.org>,555 0100,,,03/04/1990,first,second\n\
               ,,,,Acme,,,,\n\
               ,,,,Acme,Boss,,a note,\n\
               ,,,,,,,,\n\
               ,,,030 1234567,,,,,\n\
               ,,,,,,1990-01-01,,\n\
               ,mr@x.org,,,,,,,\n";
    let parsed = parse_text(csv);
    assert!(parsed.header.contains(&"Email_2".to_owned()) && parsed.header.contains(&"Notes_2".to_owned()));
    let contacts = detect_and_map(&parsed, "generic_people", &MapOptions::default());

    let ada = &contacts[0];
    let p = ada.person.as_ref().unwrap();
    assert_eq!(p.notes.as_deref(), Some("first\n\nsecond"));
    assert_eq!(values(ada, IdentifierKind::Email), ["ada@x.org"], "deduplicated by normalised value");
    assert_eq!(find(ada, IdentifierKind::Phone, "555 0100").normalized, "5550100", "no calling code: digits");
    assert_eq!(p.birth_date.unwrap().to_string(), "1990-04-03", "day first is listed first");
    assert!(has_problem(ada, "ambiguous: read as 1990-04-03, could be 1990-03-04"));

    let org_only = &contacts[1];
    assert!(org_only.person.is_none() && org_only.organization.is_some() && org_only.problems.is_empty());
    let org_with_title = &contacts[2];
    assert!(org_with_title.person.is_none() && org_with_title.job_title.is_none());
    assert!(has_problem(org_with_title, "job title `Boss` not mapped"));
    assert!(has_problem(org_with_title, "notes not mapped"));

    assert!(contacts[3].is_empty() && contacts[3].problems.is_empty());
    let phone_only = &contacts[4];
    assert_eq!(phone_only.person.as_ref().unwrap().full_name, "030 1234567");
    assert!(has_problem(phone_only, "the full name is the phone `030 1234567`"));
    assert!(contacts[5].is_empty());
    assert!(has_problem(&contacts[5], "birth date 1990-01-01 not mapped"));
    assert_eq!(contacts[6].person.as_ref().unwrap().full_name, "mr@x.org");

    // A name prefix alone is not a name.
    let outlook = parse_text("Title,E-mail Address\nMr.,Mr@X.org\n");
    let mr = &detect_and_map(&outlook, "outlook", &MapOptions::default())[0];
    assert_eq!(mr.person.as_ref().unwrap().full_name, "mr@x.org");
    assert!(has_problem(mr, "name prefix or suffix `Mr.` not mapped"));
}

#[test]
fn mapped_contacts_round_trip_through_json() {
    let parsed = parse_file(&corpus("csv/contacts/roundcube/gmail.csv"));
    let c = profiles::detect(&parsed.header).unwrap().profile.map_row(&parsed.rows[0], &MapOptions::default());
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["identifiers"][0]["kind"], "email");
    assert_eq!(json["person"]["birth_date"], "1975-12-12");
    let back: MappedContact = serde_json::from_value(json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn detection_explains_itself_and_rejects_unrelated_headers() {
    let h = |s: &str| s.split(',').map(str::to_owned).collect::<Vec<_>>();
    let outlook = profiles::detect(&h("E-mail Address,E-mail 2 Address,E-mail 3 Address")).unwrap();
    assert_eq!(outlook.profile.name, "outlook");
    assert_eq!(outlook.matched.len(), 3);
    assert!(outlook.missing.contains(&"First Name".to_owned()));
    assert!(outlook.unknown.is_empty());
    let all = profiles::detect_all(&h("E-mail Address,E-mail 2 Address"));
    assert_eq!(all.iter().map(|d| d.profile.name.as_str()).collect::<Vec<_>>(), ["outlook", "generic_people"]);
    assert!(all[0].score > all[1].score);
    for header in ["a,b,c", "id,name,price,quantity", "", "column_1,column_2", "key,val"] {
        assert!(profiles::detect(&h(header)).is_none(), "{header:?}");
    }
    // `first,last,…`: a list of people after all.
    assert_eq!(profiles::detect(&h("first,last,address,city,zip")).unwrap().profile.name, "generic_people");
    // A forced profile explains why it was not detected.
    let zoho = profiles::by_name("zoho_crm").unwrap();
    assert!(zoho.score_header(&h("First Name,Last Name,Email")).is_none());
}

// --- every messy and hostile file -------------------------------------------------------------

#[test]
fn every_messy_and_hostile_file_maps_without_panic() {
    let mut files = Vec::new();
    files_under(&corpus("csv/messy"), &mut files);
    files_under(&corpus("bad-input"), &mut files);
    assert!(files.len() > 50, "corpus not found at {}", corpus("").display());
    let generic = profiles::by_name("generic_people").unwrap();
    let opts = MapOptions { default_calling_code: Some("44".into()) };
    let (mut parsed_files, mut rows) = (0, 0);
    for path in &files {
        let Ok(file) = File::open(path) else { continue };
        let csv = ParseOptions { format: Some(Format::Csv), ..ParseOptions::default() };
        let Some(parsed) = parse_reader(file, &csv) else { continue };
        parsed_files += 1;
        let detected: Option<&Profile> = profiles::detect(&parsed.header).map(|d| d.profile);
        for row in &parsed.rows {
            let mapped = detected.unwrap_or(generic).map_row(row, &opts);
            serde_json::to_string(&mapped).unwrap();
            for p in profiles::builtin() {
                let _ = p.map_row(row, &opts);
            }
            rows += 1;
        }
    }
    assert!(parsed_files > 50 && rows > 1000, "{parsed_files} files, {rows} rows");
}

#[test]
fn json_rows_with_numbers_nulls_and_case_twins_map() {
    // Staged JSON rows are objects too: numbers and booleans read as text, null as empty, and
    // keys differing only in case are both read.
    let row: Map<String, Value> = serde_json::from_str(
        r#"{"Name": "  Ada  ", "EMAIL": "a@x.org", "email": "b@x.org", "Phone": 5550100, "Company": null, "Notes": ["x"]}"#,
    )
    .unwrap();
    let generic = profiles::by_name("generic_people").unwrap();
    let c = generic.map_row(&row, &MapOptions::default());
    assert_eq!(c.person.as_ref().unwrap().full_name, "Ada");
    assert_eq!(sorted(values(&c, IdentifierKind::Email)), ["a@x.org", "b@x.org"]);
    assert_eq!(values(&c, IdentifierKind::Phone), ["5550100"]);
    assert!(c.organization.is_none() && c.person.as_ref().unwrap().notes.is_none());
    assert_eq!(c.problems, ["column `Notes` holds a JSON list or object; only text, numbers and booleans are read"]);
}
