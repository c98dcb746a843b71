//! Key format: `<kind>_<12 id chars>_<43 secret chars>`, e.g. `sak_k3j5…_Zq…`. The part up to the
//! second underscore is the public prefix (stored, shown in listings, used for lookup); the SHA-256
//! of the whole key is stored; the key itself is shown once and never kept.

use rand::RngCore;
use rand::rngs::OsRng;
use sha2::{Digest, Sha256};

use crate::secret::Secret;

const ID_ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// A tenant's scoped API key.
    Api,
    /// A service role key.
    Service,
}

impl KeyKind {
    pub fn tag(self) -> &'static str {
        match self {
            KeyKind::Api => "sak",
            KeyKind::Service => "ssk",
        }
    }
}

/// A freshly minted key: the full key (to show once) and what is stored.
pub struct GeneratedKey {
    pub kind: KeyKind,
    pub prefix: String,
    pub key: Secret<String>,
    pub hash: [u8; 32],
}

impl GeneratedKey {
    pub fn generate(kind: KeyKind) -> Self {
        let mut rng = OsRng;
        let id: String =
            (0..ID_LEN).map(|_| ID_ALPHABET[(rng.next_u32() as usize) % ID_ALPHABET.len()] as char).collect();
        let mut raw = [0u8; 32];
        rng.fill_bytes(&mut raw);
        use base64::Engine;
        let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let prefix = format!("{}_{id}", kind.tag());
        let key = format!("{prefix}_{secret}");
        let hash = hash_key(&key);
        Self { kind, prefix, key: Secret::new(key), hash }
    }
}

/// A key as presented by a caller, syntactically valid.
#[derive(Debug)]
pub struct PresentedKey {
    pub kind: KeyKind,
    pub prefix: String,
    pub hash: [u8; 32],
}

impl PresentedKey {
    /// `None` when the string is not shaped like a Spine key (so it may be a JWT instead).
    pub fn parse(s: &str) -> Option<Self> {
        let kind = if s.starts_with("sak_") {
            KeyKind::Api
        } else if s.starts_with("ssk_") {
            KeyKind::Service
        } else {
            return None;
        };
        let rest = &s[4..];
        let (id, secret) = rest.split_once('_')?;
        if id.len() != ID_LEN || !id.bytes().all(|b| ID_ALPHABET.contains(&b)) {
            return None;
        }
        if secret.len() != SECRET_LEN || !secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
        Some(Self { kind, prefix: format!("{}_{id}", kind.tag()), hash: hash_key(s) })
    }
}

pub fn hash_key(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_and_hash_matches() {
        for kind in [KeyKind::Api, KeyKind::Service] {
            let g = GeneratedKey::generate(kind);
            let p = PresentedKey::parse(g.key.expose()).expect("parses");
            assert_eq!(p.kind, kind);
            assert_eq!(p.prefix, g.prefix);
            assert_eq!(p.hash, g.hash);
            assert!(g.key.expose().starts_with(&format!("{}_", kind.tag())));
        }
        let a = GeneratedKey::generate(KeyKind::Api);
        let b = GeneratedKey::generate(KeyKind::Api);
        assert_ne!(a.prefix, b.prefix);
    }

    #[test]
    fn rejects_malformed() {
        for bad in ["", "sak_", "sak_abc_def", "xyz_aaaaaaaaaaaa_bbb", "eyJhbGciOi.x.y", "sak_aaaaaaaaaaaa_é"] {
            assert!(PresentedKey::parse(bad).is_none(), "{bad}");
        }
    }
}
