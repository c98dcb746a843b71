//! Who is calling and what they may do: scopes, roles, the authenticated principal, key formats,
//! password hashing and session tokens.

mod jwt;
mod keys;
mod password;
mod principal;

pub use jwt::{Claims, JwtError, SessionSigner};
pub use keys::{GeneratedKey, KeyKind, PresentedKey};
pub use password::{PasswordError, hash_password, verify_password};
pub use principal::{Principal, Role, Scope};
