//! Session tokens: compact JWS with HS256 (RFC 7519 / 7515), signed with the configured key.
//! Small enough to own: header and claims are fixed, verification is constant-time, `alg` must be
//! HS256 (no `none`, no algorithm confusion), and expiry is checked against the caller's clock.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use thiserror::Error;
use uuid::Uuid;

use crate::secret::Secret;

const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: Uuid,
    /// The tenant the session acts in, when any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tid: Option<Uuid>,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Expires at, seconds since the epoch.
    pub exp: i64,
    /// Token id.
    pub jti: Uuid,
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("bad signature")]
    Signature,
    #[error("token expired")]
    Expired,
}

#[derive(Clone)]
pub struct SessionSigner {
    key: Secret<Vec<u8>>,
}

impl SessionSigner {
    pub fn new(key: Secret<Vec<u8>>) -> Self {
        Self { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(self.key.expose()).expect("HMAC takes keys of any length")
    }

    pub fn sign(&self, claims: &Claims) -> Secret<String> {
        let payload = serde_json::to_vec(claims).expect("claims serialise");
        let signing_input = format!("{}.{}", B64.encode(HEADER), B64.encode(payload));
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let sig = B64.encode(mac.finalize().into_bytes());
        Secret::new(format!("{signing_input}.{sig}"))
    }

    pub fn verify(&self, token: &str, now_unix: i64) -> Result<Claims, JwtError> {
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(JwtError::Malformed);
        };
        let header: serde_json::Value = serde_json::from_slice(&B64.decode(h).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)?;
        if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
            return Err(JwtError::Algorithm);
        }
        let sig = B64.decode(s).map_err(|_| JwtError::Malformed)?;
        let mut mac = self.mac();
        mac.update(h.as_bytes());
        mac.update(b".");
        mac.update(p.as_bytes());
        let expected = mac.finalize().into_bytes();
        if expected.as_slice().ct_eq(&sig).unwrap_u8() != 1 {
            return Err(JwtError::Signature);
        }
        let claims: Claims = serde_json::from_slice(&B64.decode(p).map_err(|_| JwtError::Malformed)?)
            .map_err(|_| JwtError::Malformed)?;
        if claims.exp <= now_unix {
            return Err(JwtError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims { sub: Uuid::now_v7(), tid: Some(Uuid::now_v7()), iat: 0, exp, jti: Uuid::now_v7() }
    }

    #[test]
    fn round_trip_and_rejections() {
        let s = SessionSigner::new(Secret::new(b"k1".to_vec()));
        let c = claims(1000);
        let t = s.sign(&c);
        assert_eq!(s.verify(t.expose(), 999).unwrap(), c);
        assert_eq!(s.verify(t.expose(), 1000), Err(JwtError::Expired));
        let other = SessionSigner::new(Secret::new(b"k2".to_vec()));
        assert_eq!(other.verify(t.expose(), 0), Err(JwtError::Signature));
        // alg=none with the same claims is refused.
        let payload = t.expose().split('.').nth(1).unwrap();
        let none = format!("{}.{payload}.", B64.encode(r#"{"alg":"none"}"#));
        assert_eq!(s.verify(&none, 0), Err(JwtError::Algorithm));
        for bad in ["", "a.b", "a.b.c.d", "!!.!!.!!"] {
            assert!(s.verify(bad, 0).is_err());
        }
        // A tampered payload fails the signature.
        let mut parts: Vec<String> = t.expose().split('.').map(str::to_owned).collect();
        parts[1] = B64.encode(serde_json::to_vec(&claims(i64::MAX)).unwrap());
        assert_eq!(s.verify(&parts.join("."), 0), Err(JwtError::Signature));
    }
}
