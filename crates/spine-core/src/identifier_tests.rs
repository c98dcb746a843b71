use super::*;

#[test]
fn kinds_match_the_database_values() {
    let db = ["email", "phone", "url", "username", "postal_address", "other"];
    let ours: Vec<_> = IdentifierKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(ours, db);
    for k in IdentifierKind::ALL {
        assert_eq!(k.as_str().parse::<IdentifierKind>(), Ok(k));
        assert_eq!(serde_json::to_value(k).unwrap(), serde_json::Value::String(k.as_str().to_owned()));
        assert_eq!(k.to_string(), k.as_str());
    }
    assert!("Email".parse::<IdentifierKind>().is_err());
    assert!("tax_id".parse::<IdentifierKind>().is_err());
}

#[test]
fn emails_are_trimmed_unwrapped_and_lowercased() {
    let ok = [
        ("ada@example.org", "ada@example.org"),
        ("  Ada.Lovelace@Example.ORG \t", "ada.lovelace@example.org"),
        ("Ada <ada@x.org>", "ada@x.org"),
        ("\"Lovelace, Ada\" <Ada@X.org>", "ada@x.org"),
        ("<ada@x.org>", "ada@x.org"),
        ("mailto:ada@x.org", "ada@x.org"),
        ("MAILTO:Ada@X.org?subject=hello", "ada@x.org"),
        ("ada+tag@sub.x.org.", "ada+tag@sub.x.org"),
        ("Jörg@Bücher.de", "jörg@bücher.de"),
        ("o'neil@example.ie", "o'neil@example.ie"),
    ];
    for (raw, want) in ok {
        assert_eq!(normalize_email(raw).as_deref(), Ok(want), "{raw:?}");
    }
}

#[test]
fn bad_emails_are_rejected_with_a_reason() {
    use IdentifierError as E;
    let cases: [(&str, E); 14] = [
        ("", E::Empty),
        ("   \t ", E::Empty),
        ("ada", E::EmailAtSigns(0)),
        ("a@b@c.org", E::EmailAtSigns(2)),
        ("ada lovelace@x.org", E::EmailWhitespace),
        ("ada@x .org", E::EmailWhitespace),
        ("@x.org", E::EmailEmptyLocal),
        ("ada@", E::EmailDomain(String::new())),
        ("ada@localhost", E::EmailDomain("localhost".into())),
        ("ada@x..org", E::EmailDomain("x..org".into())),
        ("ada@-x.org", E::EmailDomain("-x.org".into())),
        ("ada;bob@x.org", E::EmailCharacter(';')),
        (".ada@x.org", E::EmailCharacter('.')),
        ("ada\u{0}@x.org", E::ControlCharacter),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_email(raw), Err(want), "{raw:?}");
    }
    assert_eq!(normalize_email("ada\u{200b}@x.org"), Err(E::ControlCharacter));
    assert_eq!(normalize_email("Ada <ada@x.org"), Err(E::EmailWhitespace));
    assert_eq!(normalize_email("<ada@x.org"), Err(E::EmailCharacter('<')));
    assert!(normalize_email("pager").is_err());
    assert!(normalize_email("ada@x.org, bob@y.org").is_err());
}

#[test]
fn email_length_limits() {
    let local = "a".repeat(64);
    assert!(normalize_email(&format!("{local}@x.org")).is_ok());
    assert_eq!(normalize_email(&format!("a{local}@x.org")), Err(IdentifierError::EmailLocalTooLong));
    let long_domain = format!("{}.org", ["abcdefghij"; 30].join("."));
    assert!(matches!(normalize_email(&format!("a@{long_domain}")), Err(IdentifierError::TooLong { max: 254, .. })));
    let huge = "x".repeat(1_000_000);
    assert!(matches!(normalize_email(&huge), Err(IdentifierError::TooLong { .. })));
    assert!(matches!(normalize_email(&format!("{huge}@x.org")), Err(IdentifierError::TooLong { .. })));
}

fn phone(raw: &str, code: Option<&str>) -> Result<String, IdentifierError> {
    normalize_phone(raw, code).map(|p| p.as_normalized())
}

#[test]
fn international_phones_keep_their_plus() {
    let cases = [
        ("+41 31 928 09 60", "+41319280960"),
        ("+1 (555) 010-9999", "+15550109999"),
        ("0044 20 7946 0000", "+442079460000"),
        ("+44 (0)20 7946 0000", "+442079460000"),
        ("+49.30.1234567", "+49301234567"),
        ("tel:+33-1-23-45-67-89", "+33123456789"),
        ("\u{a0}+31\u{a0}20\u{a0}123\u{a0}4567 ", "+31201234567"),
    ];
    for (raw, want) in cases {
        // The default calling code never applies to a number that is already international.
        assert_eq!(phone(raw, None).as_deref(), Ok(want), "{raw:?}");
        assert_eq!(phone(raw, Some("61")).as_deref(), Ok(want), "{raw:?}");
    }
}

#[test]
fn national_phones_use_the_default_calling_code() {
    assert_eq!(phone("031 378 65 65", Some("41")).as_deref(), Ok("+41313786565"));
    assert_eq!(phone("(030) 1234-567", Some("+49")).as_deref(), Ok("+49301234567"));
    assert_eq!(phone("555 010 9999", Some("1")).as_deref(), Ok("+15550109999"));
    assert_eq!(phone("031 378 65 65", None).as_deref(), Ok("0313786565"));
    assert_eq!(phone("555-0109", None).as_deref(), Ok("5550109"));
    assert_eq!(phone("12345", Some("0049")).as_deref(), Ok("+4912345"));
    assert_eq!(phone("031 378 65 65", Some("abc")), Err(IdentifierError::CallingCode("abc".into())));
    assert_eq!(phone("031 378 65 65", Some("1234")), Err(IdentifierError::CallingCode("1234".into())));
    assert_eq!(phone("031 378 65 65", Some("")), Err(IdentifierError::CallingCode(String::new())));
}

#[test]
fn phone_extensions_are_split_off() {
    let p = normalize_phone("+1 555 010 9999 x123", None).unwrap();
    assert_eq!(p, NormalizedPhone { number: "+15550109999".into(), extension: Some("123".into()) });
    assert_eq!(p.as_normalized(), "+15550109999;ext=123");
    assert!(p.is_international());
    for raw in [
        "+1 555 010 9999 ext. 123",
        "+1 555 010 9999 Ext 123",
        "+1 555 010 9999 extension: 123",
        "+1 555 010 9999#123",
        "+15550109999;ext=123",
        "+1 555 010 9999 X123",
    ] {
        assert_eq!(phone(raw, None).as_deref(), Ok("+15550109999;ext=123"), "{raw:?}");
    }
    assert_eq!(phone("+1 555 010 9999 x", None), Err(IdentifierError::PhoneExtension(String::new())));
    assert_eq!(phone("+1 555 010 9999 ext. 12a", None), Err(IdentifierError::PhoneExtension("12a".into())));
    assert!(!normalize_phone("0313786565", None).unwrap().is_international());
}

#[test]
fn bad_phones_are_rejected_with_a_reason() {
    use IdentifierError as E;
    let cases: [(&str, E); 12] = [
        ("", E::Empty),
        ("  ", E::Empty),
        ("pager", E::PhoneCharacter('p')),
        ("phone work", E::PhoneCharacter('p')),
        ("1-800-FLOWERS", E::PhoneCharacter('F')),
        ("100", E::PhoneTooShort(3)),
        ("+", E::PhoneTooShort(0)),
        ("12 34", E::PhoneTooShort(4)),
        ("+1234567890123456", E::PhoneTooLong(16)),
        ("555+0109", E::PhonePlus),
        ("+0 555 0109", E::PhoneCountryCode),
        ("555\u{7}0109", E::ControlCharacter),
    ];
    for (raw, want) in cases {
        assert_eq!(phone(raw, None), Err(want), "{raw:?}");
    }
    assert_eq!(phone("0", Some("44")), Err(E::PhoneTooShort(0)));
    assert_eq!(phone("٠١٢٣٤٥٦٧", None), Err(E::PhoneCharacter('٠')));
    assert_eq!(phone("１２３４５６", None), Err(E::PhoneCharacter('１')));
    assert!(matches!(phone(&"5".repeat(65), None), Err(E::TooLong { max: 64, .. })));
    assert!(matches!(phone(&"5".repeat(1_000_000), None), Err(E::TooLong { .. })));
}

#[test]
fn urls_are_canonicalised() {
    let cases = [
        ("test.com", "https://test.com"),
        ("home.page.com", "https://home.page.com"),
        ("http://page.com", "http://page.com"),
        ("https://blog", "https://blog"),
        ("  HTTPS://Example.COM/  ", "https://example.com"),
        ("HTTP://Example.COM:80/Path?Q=1#Frag", "http://example.com/Path?Q=1#Frag"),
        ("https://example.com:443", "https://example.com"),
        ("https://example.com:8443/a/", "https://example.com:8443/a/"),
        ("https://example.com:08443", "https://example.com:8443"),
        ("https://example.com:/", "https://example.com"),
        ("example.com./x", "https://example.com/x"),
        ("//cdn.example.com/lib.js", "https://cdn.example.com/lib.js"),
        ("localhost:8080", "https://localhost:8080"),
        ("ftp://Files.Example.org:21/pub", "ftp://files.example.org/pub"),
        ("https://[2001:DB8::1]:443/", "https://[2001:db8::1]"),
        ("https://Bücher.DE/ä", "https://bücher.de/ä"),
        ("https://example.com/?q=1", "https://example.com/?q=1"),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_url(raw).as_deref(), Ok(want), "{raw:?}");
    }
}

#[test]
fn bad_urls_are_rejected_with_a_reason() {
    use IdentifierError as E;
    let cases: [(&str, E); 13] = [
        ("", E::Empty),
        (" \n ", E::Empty),
        ("https://exa mple.com", E::UrlWhitespace),
        ("javascript:alert(1)", E::UrlScheme("javascript".into())),
        ("mailto:ada@x.org", E::UrlScheme("mailto".into())),
        ("file:///etc/passwd", E::UrlScheme("file".into())),
        ("https://", E::UrlNoHost),
        ("https:///path", E::UrlNoHost),
        ("https://user:pw@example.com", E::UrlCredentials),
        ("https://exa_mple!.com", E::UrlHost("exa_mple!.com".into())),
        ("https://example.com:99999", E::UrlPort("99999".into())),
        ("https://example.com:http", E::UrlPort("http".into())),
        ("https://[zz::1]/", E::UrlHost("[zz::1]".into())),
    ];
    for (raw, want) in cases {
        assert_eq!(normalize_url(raw), Err(want), "{raw:?}");
    }
    assert_eq!(normalize_url("https://exa\u{202e}mple.com"), Err(E::ControlCharacter));
    assert_eq!(normalize_url("https://a..b"), Err(E::UrlHost("a..b".into())));
    assert!(matches!(normalize_url(&format!("https://x.org/{}", "a".repeat(3000))), Err(E::TooLong { max: 2048, .. })));
}

#[test]
fn naughty_strings_never_panic() {
    let naughty = [
        "\u{feff}",
        "\u{0}",
        "ｔｅｓｔ＠ｅｘａｍｐｌｅ．ｃｏｍ",
        "Ω≈ç√∫˜µ≤≥÷",
        "😀@😀.😀",
        "<script>alert(1)</script>@x.org",
        "'; DROP TABLE core.people; --",
        "%s%s%s%n",
        "..",
        "@",
        "::",
        "[",
        "]:",
        "+",
        "00",
        "x123",
        "ext.",
        "+1 x",
        "http://",
        "http://:80",
        "http://[",
        "http://[]",
        "\u{202e}gro.x@ada",
        "a\u{301}@x.org",
    ];
    for s in naughty {
        let _ = normalize_email(s);
        let _ = normalize_phone(s, None);
        let _ = normalize_phone(s, Some("44"));
        let _ = normalize_url(s);
    }
    let long = "é".repeat(100_000);
    assert!(normalize_email(&long).is_err());
    assert!(normalize_phone(&long, None).is_err());
    assert!(normalize_url(&long).is_err());
}
