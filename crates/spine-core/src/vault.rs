//! The vault's cryptography: AES-256-GCM under a keyring of master keys (decision 0014). Pure: no
//! database, no files; the keys arrive as config strings and the sealed values leave as bytes.
//!
//! A sealed value is `(key_id, nonce, ciphertext‖tag)`. The nonce is 96 random bits per seal. The
//! authenticated data is a version tag, the key id and the caller's binding (for stored secrets:
//! tenant, row, owner, field and version; see [`SecretBinding`]), so a ciphertext copied to another
//! row, relabelled with another key id or altered in any bit fails to open with
//! [`VaultError::Decrypt`], never yields garbage.
//!
//! Key material lives only in [`Zeroizing`] buffers and the cipher's own zeroize-on-drop key
//! schedule; decrypted values come back as [`Plaintext`] (redacted in Debug/Display, wiped on drop).

use std::collections::BTreeMap;
use std::fmt;

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use sha2::{Digest, Sha256};
use thiserror::Error;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::secret::Secret;

pub const KEY_LEN: usize = 32;
pub const NONCE_LEN: usize = 12;
pub const TAG_LEN: usize = 16;
/// Version tag at the start of every AAD; a new format gets a new tag.
const AAD_VERSION: &[u8] = b"spine.vault.v1\0";

/// A decrypted secret: never shown, wiped from memory when dropped.
pub type Plaintext = Secret<Zeroizing<Vec<u8>>>;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VaultError {
    /// A master key string is malformed. The message never contains key material.
    #[error("master key {0}")]
    BadKey(String),
    #[error("keyring: {0}")]
    Keyring(String),
    #[error("no master key `{0}` is configured (add it to vault.master_keys or the vault key file)")]
    UnknownKey(String),
    #[error("sealed value is malformed: {0}")]
    Malformed(String),
    #[error(
        "decryption failed under master key `{0}`: the ciphertext, nonce, key id or its binding \
         (tenant, secret, owner, field, version) was altered, or the configured key is not the one it was sealed with"
    )]
    Decrypt(String),
    #[error("encryption failed")]
    Encrypt,
}

/// A master key id: 1 to 64 of `A-Z a-z 0-9 _ . -`, starting with a letter or digit.
pub fn is_valid_key_id(id: &str) -> bool {
    let mut chars = id.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// One master key: an id (stored next to every ciphertext) and 32 bytes that never leave memory.
pub struct MasterKey {
    id: String,
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl MasterKey {
    pub fn new(id: &str, key: Zeroizing<[u8; KEY_LEN]>) -> Result<Self, VaultError> {
        if !is_valid_key_id(id) {
            return Err(VaultError::BadKey(format!(
                "id {id:?} is not valid: use 1-64 letters, digits, '_', '.', '-', starting with a letter or digit"
            )));
        }
        Ok(Self { id: id.to_owned(), key })
    }

    /// Parses `id:base64-of-32-bytes` (standard alphabet, padding optional).
    pub fn parse(s: &str) -> Result<Self, VaultError> {
        let s = s.trim();
        let Some((id, b64)) = s.split_once(':') else {
            return Err(VaultError::BadKey("is not `id:base64` (no ':' found)".into()));
        };
        let bytes = Zeroizing::new(
            STANDARD
                .decode(b64.trim())
                .or_else(|_| STANDARD_NO_PAD.decode(b64.trim()))
                .map_err(|_| VaultError::BadKey(format!("{id:?}: the part after ':' is not valid base64")))?,
        );
        if bytes.len() != KEY_LEN {
            return Err(VaultError::BadKey(format!(
                "{id:?}: expected {KEY_LEN} bytes after base64 decoding, got {}",
                bytes.len()
            )));
        }
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        key.copy_from_slice(&bytes);
        Self::new(id, key)
    }

    /// A fresh random key.
    pub fn generate(id: &str) -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(&mut key[..]);
        Self::new(id, key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `id:base64`, the form [`MasterKey::parse`] reads (for writing a key file).
    pub fn to_config_string(&self) -> Secret<Zeroizing<String>> {
        Secret::new(Zeroizing::new(format!("{}:{}", self.id, STANDARD.encode(&self.key[..]))))
    }

    /// A public fingerprint (16 hex digits of SHA-256 over a domain tag and the key): recorded in
    /// the database so a different key configured under a known id is caught before it is used.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"spine.vault.fingerprint.v1\0");
        h.update(&self.key[..]);
        hex::encode(&h.finalize()[..8])
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MasterKey").field("id", &self.id).field("key", &crate::secret::REDACTED).finish()
    }
}

struct Entry {
    key: MasterKey,
    cipher: Aes256Gcm,
}

/// Every configured master key, and the one new values are sealed with.
pub struct Keyring {
    active: String,
    keys: BTreeMap<String, Entry>,
}

impl Keyring {
    /// `active` must be one of `keys`. The same id twice is accepted only with the same bytes.
    pub fn new(keys: Vec<MasterKey>, active: &str) -> Result<Self, VaultError> {
        let mut map: BTreeMap<String, Entry> = BTreeMap::new();
        for key in keys {
            if let Some(old) = map.get(key.id()) {
                if old.key.key[..] != key.key[..] {
                    return Err(VaultError::Keyring(format!(
                        "master key id `{}` is configured twice with different keys",
                        key.id()
                    )));
                }
                continue;
            }
            let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&key.key[..]));
            map.insert(key.id.clone(), Entry { key, cipher });
        }
        if map.is_empty() {
            return Err(VaultError::Keyring("no master key is configured".into()));
        }
        if !map.contains_key(active) {
            return Err(VaultError::Keyring(format!(
                "the active key `{active}` is not among the configured keys ({})",
                map.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(Self { active: active.to_owned(), keys: map })
    }

    pub fn active_id(&self) -> &str {
        &self.active
    }

    pub fn contains(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    /// The configured keys in id order.
    pub fn keys(&self) -> impl Iterator<Item = &MasterKey> {
        self.keys.values().map(|e| &e.key)
    }

    fn cipher(&self, id: &str) -> Result<&Aes256Gcm, VaultError> {
        self.keys.get(id).map(|e| &e.cipher).ok_or_else(|| VaultError::UnknownKey(id.to_owned()))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring").field("active", &self.active).field("keys", &self.keys.keys()).finish()
    }
}

/// A sealed value as stored: the key id, the nonce and the ciphertext with its 16-byte tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: String,
    pub nonce: [u8; NONCE_LEN],
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// From stored columns; a nonce of the wrong length or a ciphertext shorter than the tag is
    /// [`VaultError::Malformed`].
    pub fn from_parts(key_id: String, nonce: &[u8], ciphertext: Vec<u8>) -> Result<Self, VaultError> {
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| VaultError::Malformed(format!("nonce is {} bytes, expected {NONCE_LEN}", nonce.len())))?;
        if ciphertext.len() < TAG_LEN {
            return Err(VaultError::Malformed(format!(
                "ciphertext is {} bytes, shorter than the tag",
                ciphertext.len()
            )));
        }
        Ok(Self { key_id, nonce, ciphertext })
    }
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("key_id", &self.key_id)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

fn full_aad(key_id: &str, aad: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(AAD_VERSION.len() + 1 + key_id.len() + aad.len());
    v.extend_from_slice(AAD_VERSION);
    v.push(key_id.len() as u8); // ids are at most 64 bytes
    v.extend_from_slice(key_id.as_bytes());
    v.extend_from_slice(aad);
    v
}

/// Encrypts under the keyring's active key with a fresh random nonce.
pub fn seal(keyring: &Keyring, plaintext: &[u8], aad: &[u8]) -> Result<Sealed, VaultError> {
    let key_id = keyring.active_id();
    let cipher = keyring.cipher(key_id)?;
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let full = full_aad(key_id, aad);
    let ciphertext = cipher.encrypt(&nonce, Payload { msg: plaintext, aad: &full }).map_err(|_| VaultError::Encrypt)?;
    Ok(Sealed { key_id: key_id.to_owned(), nonce: nonce.into(), ciphertext })
}

/// Decrypts with the key the value names; any alteration is [`VaultError::Decrypt`].
pub fn open(keyring: &Keyring, sealed: &Sealed, aad: &[u8]) -> Result<Plaintext, VaultError> {
    let cipher = keyring.cipher(&sealed.key_id)?;
    let full = full_aad(&sealed.key_id, aad);
    let nonce = Nonce::from_slice(&sealed.nonce);
    cipher
        .decrypt(nonce, Payload { msg: &sealed.ciphertext, aad: &full })
        .map(|p| Secret::new(Zeroizing::new(p)))
        .map_err(|_| VaultError::Decrypt(sealed.key_id.clone()))
}

/// Opens under the value's key and seals again under the active key with a fresh nonce (rotation).
pub fn reseal(keyring: &Keyring, sealed: &Sealed, aad: &[u8]) -> Result<Sealed, VaultError> {
    let plain = open(keyring, sealed, aad)?;
    seal(keyring, plain.expose(), aad)
}

/// What a stored secret's ciphertext is bound to: its row and what the row says it is.
#[derive(Clone, Copy, Debug)]
pub struct SecretBinding<'a> {
    pub tenant_id: Uuid,
    pub secret_id: Uuid,
    pub owner_kind: &'a str,
    pub owner_id: Uuid,
    pub field_name: &'a str,
    pub version: i32,
}

impl SecretBinding<'_> {
    /// Unambiguous encoding: fixed-width ids and length-prefixed strings.
    pub fn to_aad(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(64 + self.owner_kind.len() + self.field_name.len());
        v.extend_from_slice(self.tenant_id.as_bytes());
        v.extend_from_slice(self.secret_id.as_bytes());
        v.extend_from_slice(&(self.owner_kind.len() as u32).to_be_bytes());
        v.extend_from_slice(self.owner_kind.as_bytes());
        v.extend_from_slice(self.owner_id.as_bytes());
        v.extend_from_slice(&(self.field_name.len() as u32).to_be_bytes());
        v.extend_from_slice(self.field_name.as_bytes());
        v.extend_from_slice(&self.version.to_be_bytes());
        v
    }
}

#[cfg(test)]
#[path = "vault_tests.rs"]
mod tests;
