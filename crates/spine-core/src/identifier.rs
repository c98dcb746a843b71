//! Normalised identifiers: the forms `core.identifiers.normalized_value` holds, so that the same
//! email address, phone number or URL written two ways matches itself. Pure functions, no I/O.
//!
//! Choices (each also stated on its function):
//! - **Email**: the whole address is lowercased, local part included. RFC 5321 lets a server
//!   treat the local part case-sensitively, but no mainstream provider does, and imports from
//!   different sources (`Ada@X.org` in one, `ada@x.org` in another) must match. The value as
//!   given is kept next to the normalised form, so nothing is lost.
//! - **Phone**: `+<digits>` when the number is international (written with `+` or `00`, or made
//!   international with a default calling code), digits only otherwise. An extension (`x123`,
//!   `ext. 123`, `#123`, `;ext=123`) is split off into [`NormalizedPhone::extension`] and
//!   rendered RFC 3966-style as `+4930123;ext=45` by [`NormalizedPhone::as_normalized`].
//! - **URL**: `http`, `https`, `ftp` only (a contact's web page; `javascript:` or `file:` never
//!   are); `https://` is assumed when no scheme is written; credentials in the URL are refused.
//!   Internationalised host names are kept in Unicode, lowercased, not converted to punycode.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Longest accepted email address (RFC 5321 path limit less the angle brackets).
pub const MAX_EMAIL_LEN: usize = 254;
/// Longest accepted local part of an email address (RFC 5321).
pub const MAX_EMAIL_LOCAL_LEN: usize = 64;
/// Longest accepted raw phone text (separators and extension included).
pub const MAX_PHONE_INPUT_LEN: usize = 64;
/// Most digits in an international number (E.164).
pub const MAX_PHONE_DIGITS: usize = 15;
/// Fewest digits accepted in a phone number.
pub const MIN_PHONE_DIGITS: usize = 5;
/// Longest accepted URL.
pub const MAX_URL_LEN: usize = 2048;

/// What an identifier is. [`IdentifierKind::as_str`] gives exactly the values of the
/// `core.identifiers.identifier_kind` check constraint; serde uses the same strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentifierKind {
    Email,
    Phone,
    Url,
    Username,
    PostalAddress,
    Other,
}

impl IdentifierKind {
    pub const ALL: [IdentifierKind; 6] = [
        IdentifierKind::Email,
        IdentifierKind::Phone,
        IdentifierKind::Url,
        IdentifierKind::Username,
        IdentifierKind::PostalAddress,
        IdentifierKind::Other,
    ];

    /// The database value: `email`, `phone`, `url`, `username`, `postal_address`, `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            IdentifierKind::Email => "email",
            IdentifierKind::Phone => "phone",
            IdentifierKind::Url => "url",
            IdentifierKind::Username => "username",
            IdentifierKind::PostalAddress => "postal_address",
            IdentifierKind::Other => "other",
        }
    }
}

impl fmt::Display for IdentifierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdentifierKind {
    type Err = IdentifierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdentifierKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| IdentifierError::UnknownKind(s.chars().take(40).collect()))
    }
}

/// Why a value could not be normalised. Messages are written for the person reviewing an import.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentifierError {
    #[error("the value is empty")]
    Empty,
    #[error("the value is {len} characters long; at most {max} are accepted")]
    TooLong { len: usize, max: usize },
    #[error("the value contains a control character")]
    ControlCharacter,
    #[error("unknown identifier kind `{0}`")]
    UnknownKind(String),
    #[error("an email address needs exactly one `@`, this has {0}")]
    EmailAtSigns(usize),
    #[error("an email address cannot contain spaces")]
    EmailWhitespace,
    #[error("the part before the `@` is empty")]
    EmailEmptyLocal,
    #[error("the part before the `@` is longer than {MAX_EMAIL_LOCAL_LEN} characters")]
    EmailLocalTooLong,
    #[error("the email address contains `{0}`, which is not allowed outside quotes")]
    EmailCharacter(char),
    #[error("`{0}` is not a valid email domain")]
    EmailDomain(String),
    #[error("a phone number cannot contain `{0}`")]
    PhoneCharacter(char),
    #[error("`+` may only start a phone number")]
    PhonePlus,
    #[error("the phone number has {0} digits; at least {MIN_PHONE_DIGITS} are needed")]
    PhoneTooShort(usize),
    #[error("the phone number has {0} digits; an international number has at most {MAX_PHONE_DIGITS}")]
    PhoneTooLong(usize),
    #[error("an international number cannot start with 0 after the `+` or `00`")]
    PhoneCountryCode,
    #[error("the extension `{0}` is not a number")]
    PhoneExtension(String),
    #[error("`{0}` is not a calling code (1 to 3 digits, e.g. `44` or `+44`)")]
    CallingCode(String),
    #[error("a URL cannot contain spaces")]
    UrlWhitespace,
    #[error("URL scheme `{0}` is not accepted (http, https or ftp)")]
    UrlScheme(String),
    #[error("the URL has no host")]
    UrlNoHost,
    #[error("the URL contains a user name or password")]
    UrlCredentials,
    #[error("`{0}` is not a valid host name")]
    UrlHost(String),
    #[error("`{0}` is not a valid port")]
    UrlPort(String),
}

fn check_common(s: &str, max: usize) -> Result<(), IdentifierError> {
    if s.is_empty() {
        return Err(IdentifierError::Empty);
    }
    let len = s.chars().count();
    if len > max {
        return Err(IdentifierError::TooLong { len, max });
    }
    if s.chars().any(is_invisible) {
        return Err(IdentifierError::ControlCharacter);
    }
    Ok(())
}

/// Control characters, zero-width characters, bidi controls and the BOM: never part of an
/// address, and a way to make two different values look the same.
fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Normalises an email address: trims it, unwraps the display-name form (`Ada <ada@x.org>`,
/// `"Lovelace, Ada" <ada@x.org>`) and a `mailto:` prefix (dropping a `?subject=…` query), then
/// lowercases the whole address, local part included (see the module docs for why).
///
/// Rejects: no or several `@`, spaces, an empty local part, a domain without a dot or with an
/// empty label, characters that are only legal quoted (`"(),:;<>[\]`), control characters, and
/// addresses over 254 characters (local part over 64).
pub fn normalize_email(raw: &str) -> Result<String, IdentifierError> {
    let mut s = raw.trim();
    if s.is_empty() {
        return Err(IdentifierError::Empty);
    }
    if s.chars().count() > MAX_EMAIL_LEN * 4 {
        return Err(IdentifierError::TooLong { len: s.chars().count(), max: MAX_EMAIL_LEN });
    }
    if s.ends_with('>')
        && let Some(open) = s.rfind('<')
    {
        s = s[open + 1..s.len() - 1].trim();
    }
    if let Some(rest) = strip_prefix_ci(s, "mailto:") {
        s = rest.split('?').next().unwrap_or_default().trim();
    }
    check_common(s, MAX_EMAIL_LEN)?;
    if s.chars().any(char::is_whitespace) {
        return Err(IdentifierError::EmailWhitespace);
    }
    let ats = s.matches('@').count();
    if ats != 1 {
        return Err(IdentifierError::EmailAtSigns(ats));
    }
    let (local, domain) = s.split_once('@').unwrap_or_default();
    if local.is_empty() {
        return Err(IdentifierError::EmailEmptyLocal);
    }
    if local.chars().count() > MAX_EMAIL_LOCAL_LEN {
        return Err(IdentifierError::EmailLocalTooLong);
    }
    if let Some(c) = s.chars().find(|c| "\"(),:;<>[\\]".contains(*c)) {
        return Err(IdentifierError::EmailCharacter(c));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err(IdentifierError::EmailCharacter('.'));
    }
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if !valid_domain(domain) || !domain.contains('.') {
        return Err(IdentifierError::EmailDomain(domain.chars().take(80).collect()));
    }
    Ok(format!("{}@{}", local.to_lowercase(), domain.to_lowercase()))
}

/// Host-name labels of letters (any script), digits and inner hyphens, none empty.
fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.chars().count() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// A normalised phone number: `number` is `+<digits>` (international) or `<digits>` (national
/// number without a known calling code); `extension` holds the digits after `x`, `ext.` etc.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct NormalizedPhone {
    pub number: String,
    pub extension: Option<String>,
}

impl NormalizedPhone {
    /// True when the number starts with `+` (E.164 form).
    pub fn is_international(&self) -> bool {
        self.number.starts_with('+')
    }

    /// The matching form stored as `normalized_value`: the number, with `;ext=<digits>`
    /// appended when there is an extension (RFC 3966 style).
    pub fn as_normalized(&self) -> String {
        match &self.extension {
            Some(ext) => format!("{};ext={ext}", self.number),
            None => self.number.clone(),
        }
    }
}

/// Markers that start an extension, longest first (matched case-insensitively).
const EXTENSION_MARKERS: [&str; 7] = [";ext=", "extension", "ext.", "ext", "x.", "x", "#"];

/// Normalises a phone number.
///
/// - A leading `+` or `00` makes the number international: `+<digits>` (`tel:` is stripped;
///   an `(0)` trunk marker inside an international number, as in `+44 (0)20 7946 0000`, is
///   dropped).
/// - Spaces, dots, dashes, slashes and parentheses are separators and are removed.
/// - An extension (`x123`, `ext. 123`, `extension 123`, `#123`, `;ext=123`) is split off into
///   [`NormalizedPhone::extension`]; it must be digits.
/// - A national number (no `+`/`00`) with `default_calling_code` (`"44"` or `"+44"`) becomes
///   `+<code><number without its leading trunk 0>`; without one it stays digits only.
/// - Rejected: letters (including vanity numbers like `1-800-FLOWERS`), a `+` elsewhere than
///   first, fewer than 5 digits, more than 15 digits in an international number, an invalid
///   calling code, more than 64 characters of input.
pub fn normalize_phone(raw: &str, default_calling_code: Option<&str>) -> Result<NormalizedPhone, IdentifierError> {
    let s = raw.trim();
    check_common(s, MAX_PHONE_INPUT_LEN)?;
    let s = strip_prefix_ci(s, "tel:").unwrap_or(s).trim();
    let (main, extension) = split_extension(s)?;
    let mut digits = String::with_capacity(main.len());
    let mut plus = false;
    let main = if main.trim_start().starts_with('+') && main.contains("(0)") {
        main.replacen("(0)", "", 1)
    } else {
        main.to_owned()
    };
    for c in main.chars() {
        match c {
            '0'..='9' => digits.push(c),
            '+' if digits.is_empty() && !plus => plus = true,
            '+' => return Err(IdentifierError::PhonePlus),
            ' ' | '.' | '-' | '(' | ')' | '/' | '\u{a0}' | '\u{2010}'..='\u{2015}' | '\u{2212}' => {}
            c if c.is_whitespace() => {}
            c => return Err(IdentifierError::PhoneCharacter(c)),
        }
    }
    let international = plus || digits.starts_with("00");
    if !plus && international {
        digits.drain(..2);
    }
    let number = if international {
        format!("+{digits}")
    } else if let Some(code) = default_calling_code {
        let code = calling_code(code)?;
        let national = digits.strip_prefix('0').unwrap_or(&digits);
        if national.is_empty() {
            return Err(IdentifierError::PhoneTooShort(0));
        }
        format!("+{code}{national}")
    } else {
        digits.clone()
    };
    let count = number.trim_start_matches('+').len();
    if digits.len() < MIN_PHONE_DIGITS {
        return Err(IdentifierError::PhoneTooShort(digits.len()));
    }
    if number.starts_with('+') && count > MAX_PHONE_DIGITS {
        return Err(IdentifierError::PhoneTooLong(count));
    }
    if number.starts_with("+0") {
        return Err(IdentifierError::PhoneCountryCode);
    }
    Ok(NormalizedPhone { number, extension })
}

/// Splits `main ext` at the first extension marker that follows at least one digit.
fn split_extension(s: &str) -> Result<(&str, Option<String>), IdentifierError> {
    let lower = s.to_ascii_lowercase();
    for (i, _) in lower.char_indices() {
        if !s[..i].chars().any(|c| c.is_ascii_digit()) {
            continue;
        }
        let Some(marker) = EXTENSION_MARKERS.iter().find(|m| lower[i..].starts_with(**m)) else {
            continue;
        };
        let rest = s[i + marker.len()..].trim_start_matches([' ', ':', '.', '\u{a0}']).trim();
        if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit()) {
            return Err(IdentifierError::PhoneExtension(rest.chars().take(20).collect()));
        }
        return Ok((&s[..i], Some(rest.to_owned())));
    }
    Ok((s, None))
}

fn calling_code(code: &str) -> Result<&str, IdentifierError> {
    let trimmed = code.trim();
    let digits = trimmed.strip_prefix('+').unwrap_or(trimmed);
    let digits = digits.strip_prefix("00").unwrap_or(digits);
    if (1..=3).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) && !digits.starts_with('0') {
        Ok(digits)
    } else {
        Err(IdentifierError::CallingCode(code.chars().take(20).collect()))
    }
}

/// Normalises a web address: trims it, adds `https://` when no scheme is written (`//host`
/// too), lowercases scheme and host, drops the scheme's default port (80, 443, 21), an empty
/// port and a trailing `.` on the host, and a lone `/` path when nothing follows it. Path,
/// query and fragment are kept as written (they can be case-sensitive).
///
/// Rejected: spaces, control characters, schemes other than http/https/ftp, a missing or
/// invalid host, a user name or password, an invalid port, more than 2048 characters.
pub fn normalize_url(raw: &str) -> Result<String, IdentifierError> {
    let s = raw.trim();
    check_common(s, MAX_URL_LEN)?;
    if s.chars().any(char::is_whitespace) {
        return Err(IdentifierError::UrlWhitespace);
    }
    let (scheme, rest) = match s.find("://") {
        Some(i) if is_scheme(&s[..i]) => (s[..i].to_ascii_lowercase(), &s[i + 3..]),
        _ => {
            // `mailto:x`, `javascript:…`: a scheme without `//`; `host:8080` is a host and port.
            if let Some((before, after)) = s.split_once(':')
                && is_scheme(before)
                && !after.starts_with(|c: char| c.is_ascii_digit())
                && !before.contains('.')
            {
                return Err(IdentifierError::UrlScheme(before.chars().take(20).collect()));
            }
            ("https".to_owned(), s.strip_prefix("//").unwrap_or(s))
        }
    };
    let default_port: u32 = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        "ftp" => 21,
        _ => return Err(IdentifierError::UrlScheme(scheme.chars().take(20).collect())),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err(IdentifierError::UrlCredentials);
    }
    let (host, port) = split_host_port(authority)?;
    let host = normalize_host(host)?;
    let port =
        match port {
            None | Some("") => String::new(),
            Some(p) => {
                match p.parse::<u32>() {
                    Ok(n) if p.len() <= 5 && p.chars().all(|c| c.is_ascii_digit()) && n <= 65_535 => {
                        if n == default_port { String::new() } else { format!(":{n}") }
                    }
                    _ => return Err(IdentifierError::UrlPort(p.chars().take(20).collect())),
                }
            }
        };
    let tail = if tail == "/" { "" } else { tail };
    Ok(format!("{scheme}://{host}{port}{tail}"))
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), IdentifierError> {
    if authority.starts_with('[') {
        let close =
            authority.find(']').ok_or_else(|| IdentifierError::UrlHost(authority.chars().take(80).collect()))?;
        let (host, after) = authority.split_at(close + 1);
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host, Some(p))),
                None => Err(IdentifierError::UrlHost(authority.chars().take(80).collect())),
            },
        };
    }
    Ok(match authority.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (authority, None),
    })
}

fn normalize_host(host: &str) -> Result<String, IdentifierError> {
    if host.is_empty() {
        return Err(IdentifierError::UrlNoHost);
    }
    let bad = || IdentifierError::UrlHost(host.chars().take(80).collect());
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        let ok = !inner.is_empty() && inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.');
        return if ok { Ok(format!("[{}]", inner.to_ascii_lowercase())) } else { Err(bad()) };
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    if !valid_domain(host) || host.chars().count() > 253 {
        return Err(bad());
    }
    Ok(host.to_lowercase())
}

#[cfg(test)]
#[path = "identifier_tests.rs"]
mod tests;
