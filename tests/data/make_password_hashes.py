#!/usr/bin/env python3
"""Writes password_hashes.jsonl: one line per stored-hash format tessera imports, each made by
the reference implementation that writes it in the wild (Werkzeug, Django, passlib, bcrypt,
argon2-cffi, hashlib), plus Firebase's published scrypt vector.

Run once, commit the output; the Rust tests read it and never need Python:

    python3 -m venv /tmp/hv
    /tmp/hv/bin/pip install werkzeug django passlib bcrypt argon2-cffi
    /tmp/hv/bin/python tests/data/make_password_hashes.py > tests/data/password_hashes.jsonl

Costs are lowered so that the tests stay quick; the first vector of the Argon2, bcrypt and scrypt
families keeps the library's default cost, as an application would have stored it. PBKDF2's
defaults (1,000,000 iterations) take seconds in an unoptimised test build, so its vectors use
20,000 and 1,000; the iteration count is read from the string either way.
"""

import hashlib
import hmac
import json
import os
import sys
from importlib.metadata import version

import argon2
import bcrypt
import django
from django.conf import settings
from passlib import hash as passlib_hash
from werkzeug.security import generate_password_hash

# passlib 1.7.4 cannot drive bcrypt 5 (its start-up probe hashes a 255-byte password, which
# bcrypt 5 refuses), so $2y$ comes from passlib's own pure-Python bcrypt.
os.environ["PASSLIB_BUILTIN_BCRYPT"] = "enabled"
passlib_hash.bcrypt.set_backend("builtin")

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
        "django.contrib.auth.hashers.BCryptPasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
)
django.setup()
from django.contrib.auth import hashers as dj  # noqa: E402

PASSWORDS = ["correct horse battery staple", "pässwörd ✓ 密码"]


def by(package):
    return f"{package} {version(package)}"


def django_hash(name, password, **cost):
    hasher = dj.get_hasher(name)
    for key, value in cost.items():
        setattr(hasher, key, value)
    return hasher.encode(password, hasher.salt())


def vectors():
    for i, pw in enumerate(PASSWORDS):
        cheap = i > 0
        # argon2-cffi: its defaults (m=64 MiB, t=3, p=4) and Argon2i with small costs
        yield "argon2id", by("argon2-cffi"), pw, (
            argon2.PasswordHasher(memory_cost=1024, time_cost=1, parallelism=1) if cheap else argon2.PasswordHasher()
        ).hash(pw), False
        yield "argon2i", by("argon2-cffi"), pw, argon2.PasswordHasher(
            memory_cost=1024, time_cost=1, parallelism=2, type=argon2.Type.I
        ).hash(pw), False
        # Argon2 version 1.0 (v=16), as hashes made before 2016 were: tessera must not read it as 1.3
        yield "argon2i-v16", by("argon2-cffi"), pw, argon2.low_level.hash_secret(
            pw.encode(), os.urandom(16), time_cost=1, memory_cost=1024, parallelism=1, hash_len=32,
            type=argon2.Type.I, version=16,
        ).decode(), False
        # bcrypt: $2b$ and $2a$ from the bcrypt package, $2y$ (PHP's) from passlib's own code
        yield "bcrypt-2b", by("bcrypt"), pw, bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4 if cheap else 12)).decode(), False
        yield "bcrypt-2a", by("bcrypt"), pw, bcrypt.hashpw(pw.encode(), bcrypt.gensalt(4, prefix=b"2a")).decode(), False
        yield "bcrypt-2y", by("passlib"), pw, passlib_hash.bcrypt.using(ident="2y", rounds=4).hash(pw), False
        # Werkzeug
        yield "werkzeug-pbkdf2-sha256", by("werkzeug"), pw, generate_password_hash(
            pw, "pbkdf2:sha256:1000" if cheap else "pbkdf2:sha256:20000"
        ), False
        yield "werkzeug-pbkdf2-sha512", by("werkzeug"), pw, generate_password_hash(pw, "pbkdf2:sha512:1000"), False
        yield "werkzeug-scrypt", by("werkzeug"), pw, generate_password_hash(
            pw, "scrypt:1024:8:1" if cheap else "scrypt"
        ), False
        # Django
        yield "django-pbkdf2-sha256", by("django"), pw, (
            django_hash("pbkdf2_sha256", pw, iterations=1000 if cheap else 20000)
        ), False
        yield "django-pbkdf2-sha1", by("django"), pw, django_hash("pbkdf2_sha1", pw, iterations=1000), False
        yield "django-argon2", by("django"), pw, (
            django_hash("argon2", pw, memory_cost=1024, time_cost=1, parallelism=1) if cheap else django_hash("argon2", pw)
        ), False
        yield "django-bcrypt-sha256", by("django"), pw, django_hash("bcrypt_sha256", pw, rounds=4), False
        yield "django-bcrypt", by("django"), pw, django_hash("bcrypt", pw, rounds=4), False
        yield "django-scrypt", by("django"), pw, django_hash("scrypt", pw, work_factor=1024), False
        # passlib's PHC-like strings
        yield "passlib-pbkdf2-sha256", by("passlib"), pw, passlib_hash.pbkdf2_sha256.using(rounds=1000).hash(pw), False
        yield "passlib-pbkdf2-sha512", by("passlib"), pw, passlib_hash.pbkdf2_sha512.using(rounds=1000).hash(pw), False
        yield "passlib-pbkdf2-sha1", by("passlib"), pw, passlib_hash.pbkdf2_sha1.using(rounds=1000).hash(pw), False
        yield "passlib-scrypt", by("passlib"), pw, passlib_hash.scrypt.using(rounds=10).hash(pw), False
        # Unsafe digests: imported only with --allow-legacy-digests
        yield "md5", by("passlib"), pw, passlib_hash.hex_md5.hash(pw), True
        yield "sha1", by("passlib"), pw, passlib_hash.hex_sha1.hash(pw), True
        yield "django-md5", by("django"), pw, django_hash("md5", pw), True
        yield "django-salted-sha1", by("passlib"), pw, passlib_hash.django_salted_sha1.hash(pw), True
        yield "django-unsalted-md5", "hashlib", pw, "md5$$" + hashlib.md5(pw.encode()).hexdigest(), True
        yield "django-unsalted-sha1", "hashlib", pw, "sha1$$" + hashlib.sha1(pw.encode()).hexdigest(), True
        # Werkzeug before 2.3 salted its digests as an HMAC keyed by the salt (its _hash_internal):
        # the same shape as Django's salted digests, another algorithm.
        salt = "Xy7" + str(i) + "kQ9pLm"
        yield "werkzeug-salted-sha1", "hmac (as Werkzeug < 2.3)", pw, "sha1$%s$%s" % (
            salt, hmac.new(salt.encode(), pw.encode(), "sha1").hexdigest()), True
        yield "werkzeug-salted-md5", "hmac (as Werkzeug < 2.3)", pw, "md5$%s$%s" % (
            salt, hmac.new(salt.encode(), pw.encode(), "md5").hexdigest()), True


def main():
    out = sys.stdout
    for name, made_by, pw, stored, legacy in vectors():
        vector = {"format": name, "by": made_by, "password": pw, "password_hash": stored, "legacy": legacy}
        if legacy and stored.split("$")[1:2] not in ([], [""]):
            vector["salted_by"] = "werkzeug" if name.startswith("werkzeug") else "django"
        out.write(json.dumps(vector, ensure_ascii=False) + "\n")
    # Firebase's published vector (github.com/firebase/scrypt, README): the project's signer key,
    # salt separator, rounds and memory cost, and one exported account's salt and hash.
    out.write(json.dumps({
        "format": "firebase-scrypt",
        "by": "firebase/scrypt README",
        "password": "user1password",
        "password_hash": "lSrfV15cpx95/sZS2W9c9Kp6i/LVgQNDNC/qzrCnh1SAyZvqmZqAjTdn3aoItz+VHjoZilo78198JAdRuid5lQ==",
        "password_salt": "42xEC+ixf3L2lw==",
        "firebase": {
            "signer_key": "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==",
            "salt_separator": "Bw==",
            "rounds": 8,
            "mem_cost": 14,
        },
        "legacy": False,
    }) + "\n")


if __name__ == "__main__":
    main()
