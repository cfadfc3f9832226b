//! The cost of access-token work per request: signing and verifying, EdDSA and HS256.
//! `cargo bench -p tessera-bench --bench tokens`

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tessera::domain::jwt::{AccessClaims, KeyMaterial, KeyRing};

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "https://auth.example.com".into(),
        aud: "tessera".into(),
        sub: "0193a1b2-c3d4-7e5f-8071-8293a4b5c6d7".into(),
        sid: "0193a1b2-c3d4-7e5f-8071-8293a4b5c6d8".into(),
        role: "user".into(),
        iat: 1_795_428_000,
        nbf: 1_795_428_000,
        exp: 1_795_428_900,
        jti: "0193a1b2-c3d4-7e5f-8071-8293a4b5c6d9".into(),
        amr: vec!["pwd".to_owned()],
        scope: None,
    }
}

fn bench_ring(c: &mut Criterion, name: &str, ring: &KeyRing) {
    let claims = claims();
    let token = ring.sign(&claims).unwrap_or_default();
    c.bench_function(&format!("{name} sign"), |b| b.iter(|| ring.sign(black_box(&claims))));
    c.bench_function(&format!("{name} verify"), |b| {
        b.iter(|| ring.verify(black_box(&token), "https://auth.example.com", "tessera", 1_795_428_100))
    });
}

fn tokens(c: &mut Criterion) {
    let eddsa = KeyRing::new(("k1".into(), KeyMaterial::Ed25519(ed25519_dalek::SigningKey::from_bytes(&[7; 32]))), []);
    bench_ring(c, "EdDSA", &eddsa);
    let hs256 = KeyRing::new(("h1".into(), KeyMaterial::Hmac(vec![9; 32])), []);
    bench_ring(c, "HS256", &hs256);
}

criterion_group!(benches, tokens);
criterion_main!(benches);
