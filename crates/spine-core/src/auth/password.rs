//! Argon2id password hashing (PHC strings).

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use thiserror::Error;

use crate::secret::Secret;

#[derive(Debug, Error)]
pub enum PasswordError {
    #[error("password must be 8 to 1024 characters")]
    Policy,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

pub fn hash_password(password: &Secret<String>) -> Result<String, PasswordError> {
    let p = password.expose();
    let n = p.chars().count();
    if !(8..=1024).contains(&n) {
        return Err(PasswordError::Policy);
    }
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(p.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// False for a wrong password or an unparseable stored hash.
pub fn verify_password(password: &Secret<String>, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(h) => Argon2::default().verify_password(password.expose().as_bytes(), &h).is_ok(),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let pw = Secret::new("correct horse battery".to_owned());
        let h = hash_password(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&pw, &h));
        assert!(!verify_password(&Secret::new("wrong password".into()), &h));
        assert!(!verify_password(&pw, "not a hash"));
        assert!(matches!(hash_password(&Secret::new("short".into())), Err(PasswordError::Policy)));
    }
}
