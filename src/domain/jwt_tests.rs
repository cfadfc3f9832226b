use super::*;

fn ed_key(seed: u8) -> KeyMaterial {
    KeyMaterial::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[seed; 32]))
}

fn claims(now: i64) -> AccessClaims {
    AccessClaims {
        iss: "http://issuer".into(),
        aud: "tessera".into(),
        sub: "user".into(),
        sid: "session".into(),
        role: "user".into(),
        iat: now,
        nbf: now,
        exp: now + 900,
        jti: "jti".into(),
        amr: vec!["pwd".to_owned()],
        scope: None,
    }
}

fn ring() -> KeyRing {
    KeyRing::new(("k1".into(), ed_key(1)), [])
}

fn verify(ring: &KeyRing, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
    ring.verify(token, "http://issuer", "tessera", now)
}

fn forge(header: &str, claims: &AccessClaims, signature: &[u8]) -> String {
    let payload = B64.encode(serde_json::to_vec(claims).unwrap_or_default());
    format!("{}.{payload}.{}", B64.encode(header), B64.encode(signature))
}

#[test]
fn a_signed_token_verifies() {
    let ring = ring();
    let token = ring.sign(&claims(1000)).unwrap_or_default();
    assert_eq!(verify(&ring, &token, 1000), Ok(claims(1000)));
}

#[test]
fn alg_none_is_refused() {
    let token = forge(r#"{"alg":"none","typ":"at+jwt","kid":"k1"}"#, &claims(1000), b"");
    assert_eq!(verify(&ring(), &token, 1000), Err(TokenError::WrongAlgorithm));
}

#[test]
fn hs256_signed_with_the_public_key_is_refused() {
    let ring = ring();
    let public = ring.public_keys().next().map(|(_, k)| k).unwrap_or_default();
    let header = r#"{"alg":"HS256","typ":"at+jwt","kid":"k1"}"#;
    let unsigned =
        format!("{}.{}", B64.encode(header), B64.encode(serde_json::to_vec(&claims(1000)).unwrap_or_default()));
    let signature = hmac_sha256(&public, unsigned.as_bytes());
    let token = format!("{unsigned}.{}", B64.encode(signature));
    assert_eq!(verify(&ring, &token, 1000), Err(TokenError::WrongAlgorithm));
}

#[test]
fn a_tampered_payload_is_refused() {
    let ring = ring();
    let token = ring.sign(&claims(1000)).unwrap_or_default();
    let parts: Vec<&str> = token.split('.').collect();
    let mut raised = claims(1000);
    raised.role = "owner".into();
    let forged = format!("{}.{}.{}", parts[0], B64.encode(serde_json::to_vec(&raised).unwrap_or_default()), parts[2]);
    assert_eq!(verify(&ring, &forged, 1000), Err(TokenError::BadSignature));
}

#[test]
fn expiry_and_not_before_allow_thirty_seconds_of_skew() {
    let ring = ring();
    let token = ring.sign(&claims(1000)).unwrap_or_default();
    assert!(verify(&ring, &token, 1900 + LEEWAY_SECS - 1).is_ok());
    assert_eq!(verify(&ring, &token, 1900 + LEEWAY_SECS), Err(TokenError::Expired));
    assert!(verify(&ring, &token, 1000 - LEEWAY_SECS).is_ok());
    assert_eq!(verify(&ring, &token, 1000 - LEEWAY_SECS - 1), Err(TokenError::NotYetValid));
}

#[test]
fn issuer_audience_key_and_shape_are_checked() {
    let ring = ring();
    let token = ring.sign(&claims(1000)).unwrap_or_default();
    assert_eq!(ring.verify(&token, "http://other", "tessera", 1000), Err(TokenError::WrongIssuerOrAudience));
    assert_eq!(ring.verify(&token, "http://issuer", "other", 1000), Err(TokenError::WrongIssuerOrAudience));
    let stranger = KeyRing::new(("k9".into(), ed_key(9)), []);
    assert_eq!(verify(&stranger, &token, 1000), Err(TokenError::UnknownKey));
    assert_eq!(verify(&ring, "garbage", 1000), Err(TokenError::Malformed));
    assert_eq!(verify(&ring, "a.b.c.d", 1000), Err(TokenError::Malformed));
}

#[test]
fn a_token_of_another_type_is_refused() {
    let ring = ring();
    let KeyMaterial::Ed25519(key) = ed_key(1) else {
        return;
    };
    let header = r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#;
    let unsigned =
        format!("{}.{}", B64.encode(header), B64.encode(serde_json::to_vec(&claims(1000)).unwrap_or_default()));
    let signature = key.sign(unsigned.as_bytes()).to_bytes();
    let token = format!("{unsigned}.{}", B64.encode(signature));
    assert_eq!(verify(&ring, &token, 1000), Err(TokenError::WrongType));
}

#[test]
fn hs256_rings_sign_and_verify_and_publish_nothing() {
    let ring = KeyRing::new(("h1".into(), KeyMaterial::Hmac(vec![7; 32])), []);
    let token = ring.sign(&claims(1000)).unwrap_or_default();
    assert!(verify(&ring, &token, 1000).is_ok());
    assert_eq!(ring.public_keys().count(), 0);
}

#[test]
fn old_keys_keep_verifying_after_rotation() {
    let old = ring();
    let token = old.sign(&claims(1000)).unwrap_or_default();
    let rotated = KeyRing::new(("k2".into(), ed_key(2)), [("k1".into(), ed_key(1))]);
    assert!(verify(&rotated, &token, 1000).is_ok());
    assert_eq!(rotated.current_kid(), "k2");
}
