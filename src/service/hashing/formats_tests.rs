//! Every format against vectors made by its reference implementation
//! (`tests/data/make_password_hashes.py`), each verified with the right and a wrong password.

use serde_json::Value;

use super::*;
use crate::service::hashing::FirebaseParams;

const VECTORS: &str = include_str!("../../../tests/data/password_hashes.jsonl");

fn vectors() -> Vec<Value> {
    VECTORS.lines().filter_map(|line| serde_json::from_str(line).ok()).collect()
}

fn text<'a>(vector: &'a Value, field: &str) -> &'a str {
    vector[field].as_str().unwrap_or_default()
}

fn firebase(vector: &Value) -> String {
    let project = &vector["firebase"];
    let params = FirebaseParams::new(
        text(project, "signer_key"),
        text(project, "salt_separator"),
        project["rounds"].as_u64().unwrap_or_default() as u32,
        project["mem_cost"].as_u64().unwrap_or_default() as u8,
    );
    params
        .and_then(|p| {
            p.stored_hash(text(vector, "password_hash"), text(vector, "password_salt")).map_err(|e| e.to_string())
        })
        .unwrap_or_default()
}

#[test]
fn every_reference_vector_verifies_its_password_and_no_other() {
    let vectors = vectors();
    assert!(vectors.len() >= 50, "{} vectors", vectors.len());
    let mut memory = Vec::new();
    for vector in &vectors {
        let format = text(vector, "format");
        let stored =
            if format == "firebase-scrypt" { firebase(vector) } else { text(vector, "password_hash").to_owned() };
        let password = text(vector, "password").as_bytes();
        let parsed = StoredHash::parse(&stored);
        assert!(parsed.is_ok(), "{format}: {:?}", parsed.err());
        let Ok(parsed) = parsed else { continue };
        assert!(needs_rehash(&stored), "{format}");
        if vector["legacy"] == true {
            assert!(matches!(parsed, StoredHash::Digest(_)), "{format} reads as an unsafe digest");
            assert!(!parsed.verify(password, &mut memory), "{format}: a bare digest never verifies");
            continue;
        }
        assert!(parsed.verify(password, &mut memory), "{format} ({}) refused its password", text(vector, "by"));
        let mut wrong = password.to_vec();
        wrong.push(b'!');
        assert!(!parsed.verify(&wrong, &mut memory), "{format} took a wrong password");
        assert!(!parsed.verify(b"", &mut memory), "{format} took an empty password");
    }
}

#[test]
fn every_unsafe_digest_verifies_once_wrapped_the_way_its_maker_salted_it() {
    let mut memory = Vec::new();
    for vector in vectors().iter().filter(|v| v["legacy"] == true) {
        let (format, stored) = (text(vector, "format"), text(vector, "password_hash"));
        let Ok(StoredHash::Digest(digest)) = StoredHash::parse(stored) else {
            panic!("{format} does not read as a digest");
        };
        let digest = if vector["salted_by"] == "werkzeug" { digest.made_by_werkzeug() } else { digest };
        assert_eq!(digest.is_salted(), vector.get("salted_by").is_some(), "{format}");
        let inner = super::super::hash_now(&secrecy::SecretString::from(digest.hex().to_owned())).unwrap_or_default();
        let wrapped = digest.wrapped(&inner);
        let parsed = StoredHash::parse(&wrapped);
        assert!(matches!(parsed, Ok(StoredHash::Wrapped(_))), "{format}: {wrapped}");
        let Ok(parsed) = parsed else { continue };
        assert!(parsed.verify(text(vector, "password").as_bytes(), &mut memory), "{format} refused its password");
        assert!(!parsed.verify(b"wrong", &mut memory), "{format} took a wrong password");
        assert!(!parsed.verify(digest.hex().as_bytes(), &mut memory), "{format}: the digest itself is no password");
    }
}

#[test]
fn every_family_is_covered() {
    let formats: Vec<String> = vectors().iter().map(|v| text(v, "format").to_owned()).collect();
    for expected in [
        "argon2id",
        "argon2i",
        "bcrypt-2a",
        "bcrypt-2b",
        "bcrypt-2y",
        "werkzeug-pbkdf2-sha256",
        "werkzeug-pbkdf2-sha512",
        "werkzeug-scrypt",
        "django-pbkdf2-sha256",
        "django-pbkdf2-sha1",
        "django-argon2",
        "django-bcrypt-sha256",
        "passlib-pbkdf2-sha256",
        "passlib-scrypt",
        "firebase-scrypt",
        "md5",
        "sha1",
        "django-md5",
        "werkzeug-salted-sha1",
    ] {
        assert!(formats.iter().any(|f| f == expected), "no {expected} vector");
    }
}

#[test]
fn an_argon2_hash_without_a_version_is_read_as_version_1_0() {
    let vector = vectors().into_iter().find(|v| text(v, "format") == "argon2i-v16");
    let vector = vector.unwrap_or_default();
    let without_version = text(&vector, "password_hash").replace("$v=16", "");
    let parsed = StoredHash::parse(&without_version);
    assert!(parsed.is_ok_and(|h| h.verify(text(&vector, "password").as_bytes(), &mut Vec::new())));
}

#[test]
fn the_firebase_vector_needs_the_projects_own_key() {
    let vector = vectors().into_iter().find(|v| text(v, "format") == "firebase-scrypt").unwrap_or_default();
    let stored = firebase(&vector);
    let other_key = FirebaseParams::new(
        "b3RoZXIga2V5IG9mIDY0IGJ5dGVzIG9mIGxlbmd0aCwgcGFkZGVkIHRvIGZpdCBleGFjdGx5IDY0IGJ5dGVzIQ==",
        "Bw==",
        8,
        14,
    )
    .and_then(|p| {
        p.stored_hash(text(&vector, "password_hash"), text(&vector, "password_salt")).map_err(|e| e.to_string())
    });
    assert!(StoredHash::parse(&stored).is_ok_and(|h| h.verify(b"user1password", &mut Vec::new())));
    assert!(other_key.is_ok_and(|s| StoredHash::parse(&s).is_ok_and(|h| !h.verify(b"user1password", &mut Vec::new()))));
    assert!(FirebaseParams::new("not base64!", "Bw==", 8, 14).is_err());
    assert!(FirebaseParams::new("a2V5", "Bw==", 8, 40).is_err(), "2^40 blocks is refused");
}

#[test]
fn hashes_too_costly_to_verify_are_refused() {
    for costly in [
        "$2b$17$aKBPF9Viz0lkKsRCHcqdieMEXeM5jUVwKpdCDqxtPgJXzs8FRMITC",
        "pbkdf2:sha256:20000000$salt$1c9884ea42df36dbaaf7f9c87b9f1eb317680254354ebaa6b61259d3a8000000",
        "scrypt:1048576:8:1$salt$09449f66c2b927a2370e1a43743f455568e11c9d961645e855b846d78ab3b936",
        "$scrypt$ln=16,r=8,p=64$c2FsdHNhbHQ$zKxh9C+Cp58eNWgP7d/XII4nc4zAqFqnfHAnptxBKHo",
        "$argon2id$v=19$m=1048576,t=2,p=1$c29tZXNhbHQ$y0t/AGQW2aVt+Lp4eQkExDtz8Q3mS5K7M4Q7mNe0Mzo",
        "$argon2id$v=19$m=19456,t=100,p=1$c29tZXNhbHQ$y0t/AGQW2aVt+Lp4eQkExDtz8Q3mS5K7M4Q7mNe0Mzo",
    ] {
        assert!(matches!(StoredHash::parse(costly), Err(Refusal::TooCostly(_))), "{costly}");
    }
}

#[test]
fn malformed_and_unknown_hashes_are_refused_and_never_match() {
    for malformed in [
        "$2x$04$aKBPF9Viz0lkKsRCHcqdieMEXeM5jUVwKpdCDqxtPgJXzs8FRMITC",
        "$2b$04$short",
        "$2b$04$aKBPF9Viz0lkKsRCHcqdieMEXeM5jUVwKpdCDqxtPgJXzs8FRMI!C",
        "pbkdf2:sha256$salt$abcd",
        "pbkdf2:md5:1000$salt$1c9884ea42df36dbaaf7f9c87b9f1eb3",
        "pbkdf2:sha256:1000$$1c9884ea42df36dbaaf7f9c87b9f1eb317680254354ebaa6b61259d3a8000000",
        "pbkdf2_sha256$1000$salt$not base64",
        "scrypt:1000:8:1$salt$09449f66c2b927a2370e1a43743f4555",
        "$scrypt$ln=10,r=8$salt$hash",
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ",
        "firebase-scrypt$8$14$Bw==$a2V5$c2FsdA==$aGFzaA==",
        "legacy-md5$$plain",
        "legacy-crc32$$$argon2id$v=19$m=19456,t=2,p=1$bm90LWEtcmVhbC1zYWx0$y0t/AGQW2aVt+Lp4eQkExDtz8Q3mS5K7M4Q7mNe0Mzo",
    ] {
        assert!(matches!(StoredHash::parse(malformed), Err(Refusal::Malformed(_))), "{malformed}");
    }
    for unknown in
        ["", "plain$$secret", "hunter2", "sha256$$abcd", "$1$saltsalt$abcdefghijklmnopqrstuv", "md5$salt$nothex"]
    {
        assert!(matches!(StoredHash::parse(unknown), Err(Refusal::Unknown)), "{unknown:?}");
        assert!(needs_rehash(unknown));
    }
}
