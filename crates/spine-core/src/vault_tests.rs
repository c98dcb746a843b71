//! Unit tests of the vault's cryptography: round trips, tampering, key parsing, redaction.

use proptest::prelude::*;

use super::*;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="; // bytes 0..32
const CANARY: &[u8] = b"canary-plaintext-7f3a";

fn ring(active: &str) -> Keyring {
    let k2 = MasterKey::generate("k2").unwrap();
    Keyring::new(vec![MasterKey::parse(K1).unwrap(), k2], active).unwrap()
}

fn binding() -> Vec<u8> {
    SecretBinding {
        tenant_id: Uuid::from_u128(1),
        secret_id: Uuid::from_u128(2),
        owner_kind: "connection",
        owner_id: Uuid::from_u128(3),
        field_name: "api_token",
        version: 1,
    }
    .to_aad()
}

#[test]
fn round_trip_and_fresh_nonces() {
    let r = ring("k1");
    let a = seal(&r, CANARY, &binding()).unwrap();
    let b = seal(&r, CANARY, &binding()).unwrap();
    assert_eq!(a.key_id, "k1");
    assert_ne!(a.nonce, b.nonce, "every seal draws a new nonce");
    assert_ne!(a.ciphertext, b.ciphertext);
    assert_eq!(a.ciphertext.len(), CANARY.len() + TAG_LEN);
    assert_eq!(&open(&r, &a, &binding()).unwrap().expose()[..], CANARY);
    assert!(!a.ciphertext.windows(CANARY.len()).any(|w| w == CANARY));
}

#[test]
fn every_bit_of_ciphertext_nonce_and_aad_is_authenticated() {
    let r = ring("k1");
    let aad = binding();
    let s = seal(&r, CANARY, &aad).unwrap();
    for i in 0..s.ciphertext.len() * 8 {
        let mut t = s.clone();
        t.ciphertext[i / 8] ^= 1 << (i % 8);
        assert_eq!(open(&r, &t, &aad).unwrap_err(), VaultError::Decrypt("k1".into()));
    }
    for i in 0..NONCE_LEN * 8 {
        let mut t = s.clone();
        t.nonce[i / 8] ^= 1 << (i % 8);
        assert!(matches!(open(&r, &t, &aad), Err(VaultError::Decrypt(_))));
    }
    for i in 0..aad.len() * 8 {
        let mut a = aad.clone();
        a[i / 8] ^= 1 << (i % 8);
        assert!(matches!(open(&r, &s, &a), Err(VaultError::Decrypt(_))));
    }
    let mut short = s.ciphertext.clone();
    short.pop();
    assert!(matches!(open(&r, &Sealed { ciphertext: short, ..s.clone() }, &aad), Err(VaultError::Decrypt(_))));
}

#[test]
fn key_id_is_authenticated_and_unknown_keys_are_named() {
    let r = ring("k1");
    let aad = binding();
    let s = seal(&r, CANARY, &aad).unwrap();
    let relabelled = Sealed { key_id: "k2".into(), ..s.clone() };
    assert_eq!(open(&r, &relabelled, &aad).unwrap_err(), VaultError::Decrypt("k2".into()));
    let unknown = Sealed { key_id: "k9".into(), ..s };
    let e = open(&r, &unknown, &aad).unwrap_err();
    assert_eq!(e, VaultError::UnknownKey("k9".into()));
    assert!(e.to_string().contains("k9"));
}

#[test]
fn another_rows_binding_fails() {
    let r = ring("k1");
    let s = seal(&r, CANARY, &binding()).unwrap();
    let base = SecretBinding {
        tenant_id: Uuid::from_u128(1),
        secret_id: Uuid::from_u128(2),
        owner_kind: "connection",
        owner_id: Uuid::from_u128(3),
        field_name: "api_token",
        version: 1,
    };
    let others = [
        SecretBinding { tenant_id: Uuid::from_u128(9), ..base },
        SecretBinding { secret_id: Uuid::from_u128(9), ..base },
        SecretBinding { owner_id: Uuid::from_u128(9), ..base },
        SecretBinding { owner_kind: "connectio", ..base },
        SecretBinding { field_name: "refresh_token", ..base },
        SecretBinding { version: 2, ..base },
    ];
    for b in others {
        assert!(matches!(open(&r, &s, &b.to_aad()), Err(VaultError::Decrypt(_))), "{b:?}");
    }
}

#[test]
fn reseal_moves_to_the_active_key() {
    let old = ring("k1");
    let s = seal(&old, CANARY, b"row").unwrap();
    let k2 = MasterKey::generate("k2").unwrap();
    let new = Keyring::new(vec![MasterKey::parse(K1).unwrap(), k2], "k2").unwrap();
    let moved = reseal(&new, &s, b"row").unwrap();
    assert_eq!(moved.key_id, "k2");
    assert_eq!(&open(&new, &moved, b"row").unwrap().expose()[..], CANARY);
    assert!(matches!(open(&old, &moved, b"row"), Err(VaultError::Decrypt(_))), "old ring's k2 is another key");
}

#[test]
fn parsing_master_keys() {
    let k = MasterKey::parse(K1).unwrap();
    assert_eq!(k.id(), "k1");
    assert_eq!(k.to_config_string().expose().as_str(), K1);
    assert!(MasterKey::parse("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_ok(), "padding optional");
    let bad = |s: &str| MasterKey::parse(s).unwrap_err().to_string();
    assert!(bad("no-colon").contains("no ':'"));
    assert!(bad("k1:not base64!").contains("not valid base64"));
    assert!(bad("k1:AAECAw==").contains("expected 32 bytes") && bad("k1:AAECAw==").contains("got 4"));
    assert!(bad(":AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").contains("not valid"));
    assert!(bad("k 1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").contains("not valid"));
    let long = format!("k1:{}", STANDARD.encode([7u8; 33]));
    assert!(bad(&long).contains("got 33") && !bad(&long).contains("BwcH"), "never echoes the key");
}

#[test]
fn keyring_rules() {
    let a = MasterKey::parse(K1).unwrap();
    let same = MasterKey::parse(K1).unwrap();
    assert!(Keyring::new(vec![a, same], "k1").is_ok(), "a repeated identical key is fine");
    let a = MasterKey::parse(K1).unwrap();
    let other = MasterKey::generate("k1").unwrap();
    assert!(Keyring::new(vec![a, other], "k1").unwrap_err().to_string().contains("twice"));
    assert!(Keyring::new(vec![MasterKey::parse(K1).unwrap()], "k2").unwrap_err().to_string().contains("not among"));
    assert!(Keyring::new(vec![], "k1").is_err());
    let f1 = MasterKey::parse(K1).unwrap().fingerprint();
    assert_eq!(f1.len(), 16);
    assert_eq!(f1, MasterKey::parse(K1).unwrap().fingerprint());
    assert_ne!(f1, MasterKey::generate("k1").unwrap().fingerprint());
}

#[test]
fn nothing_prints_key_or_plaintext_bytes() {
    let r = ring("k1");
    let s = seal(&r, CANARY, b"x").unwrap();
    let p = open(&r, &s, b"x").unwrap();
    let key = MasterKey::parse(K1).unwrap();
    let shown = format!("{r:?} {s:?} {p:?} {p} {key:?} {}", key.to_config_string());
    assert!(!shown.contains("canary") && !shown.contains("AAECAw"), "{shown}");
    assert!(!shown.contains("0, 1, 2, 3"), "{shown}");
    assert!(shown.contains("k1"));
}

#[test]
fn malformed_parts() {
    assert!(matches!(Sealed::from_parts("k1".into(), &[0; 11], vec![0; 16]), Err(VaultError::Malformed(_))));
    assert!(matches!(Sealed::from_parts("k1".into(), &[0; 12], vec![0; 15]), Err(VaultError::Malformed(_))));
    assert!(Sealed::from_parts("k1".into(), &[0; 12], vec![0; 16]).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn round_trip_any_value(plain in proptest::collection::vec(any::<u8>(), 0..2048),
                            aad in proptest::collection::vec(any::<u8>(), 0..128),
                            flip in any::<usize>()) {
        let r = ring("k2");
        let s = seal(&r, &plain, &aad).unwrap();
        let back = open(&r, &s, &aad).unwrap();
        prop_assert_eq!(&back.expose()[..], &plain[..]);
        let mut t = s.clone();
        let i = flip % t.ciphertext.len();
        t.ciphertext[i] ^= 0x80;
        prop_assert!(open(&r, &t, &aad).is_err());
    }
}
