//! Validated names and addresses: parsed once at the edge, trusted afterwards.

use std::fmt;

use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
#[error("{field}: {reason}")]
pub struct InvalidValue {
    pub field: &'static str,
    pub reason: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidValue {
    InvalidValue { field, reason: reason.into() }
}

macro_rules! string_type {
    ($name:ident) => {
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub struct $name(String);
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_type!(TenantSlug);
string_type!(DisplayName);
string_type!(EmailAddress);

impl TenantSlug {
    /// 1–63 characters of `a-z`, `0-9` and `-`, starting with a letter or digit.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let ok = !s.is_empty()
            && s.len() <= 63
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !s.starts_with('-');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid("slug", "use 1-63 characters: lowercase letters, digits and '-', not starting with '-'"))
        }
    }
}

impl DisplayName {
    /// 1–200 characters after trimming, no control characters. Any script is fine.
    pub fn parse(field: &'static str, s: &str) -> Result<Self, InvalidValue> {
        let t = s.trim();
        if t.is_empty() {
            return Err(invalid(field, "must not be empty"));
        }
        if t.chars().count() > 200 {
            return Err(invalid(field, "must be at most 200 characters"));
        }
        if t.chars().any(|c| c.is_control()) {
            return Err(invalid(field, "must not contain control characters"));
        }
        Ok(Self(t.to_owned()))
    }
}

impl EmailAddress {
    /// A pragmatic address check (one `@`, non-empty local part, a dotted domain, no spaces or
    /// control characters, at most 254 bytes), lowercased.
    pub fn parse(s: &str) -> Result<Self, InvalidValue> {
        let t = s.trim().to_lowercase();
        let bad = || invalid("email", "is not an email address");
        if t.len() > 254 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = t.split_once('@').ok_or_else(bad)?;
        if local.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains("..")
        {
            return Err(bad());
        }
        Ok(Self(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert!(TenantSlug::parse("acme-1").is_ok());
        for bad in ["", "-x", "Acme", "a b", "a/b", "x'; drop table", &"a".repeat(64)] {
            assert!(TenantSlug::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(EmailAddress::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@x.org", "a@b", "a b@c.org", "a@@b.org", "a@b..org", "a@b.org\0"] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn display_names() {
        assert_eq!(DisplayName::parse("name", "  Zoë 🚀 ").unwrap().as_str(), "Zoë 🚀");
        assert!(DisplayName::parse("name", " ").is_err());
        assert!(DisplayName::parse("name", "a\u{0}b").is_err());
        assert!(DisplayName::parse("name", &"x".repeat(201)).is_err());
    }
}
