//! Moving in and out: `tessera users import` with every hash format, bad lines, dry runs,
//! re-runs and updates, CSV, a sign-up racing the import; sign-in upgrading imported hashes;
//! `tessera users export` round trips.

use std::path::PathBuf;
use std::process::Output;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;

const VECTORS: &str = include_str!("../data/password_hashes.jsonl");
const FIREBASE: [&str; 8] = [
    "--firebase-signer-key",
    "jxspr8Ki0RYycVU8zykbdLGjFQ3McFUH0uiiTvC8pVMXAn210wjLNmdZJzxUECKbm0QsEmYUSDzZvpjeJ9WmXA==",
    "--firebase-salt-separator",
    "Bw==",
    "--firebase-rounds",
    "8",
    "--firebase-mem-cost",
    "14",
];

/// A file of `content` under the system's temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(extension: &str, content: &str) -> Self {
        let path = std::env::temp_dir().join(format!("tessera-import-{}.{extension}", uuid::Uuid::now_v7()));
        std::fs::write(&path, content).unwrap();
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `tessera users …` on the database at `url`, off the async workers.
async fn users_command(url: &str, args: &[&str]) -> Output {
    let (url, args): (String, Vec<String>) = (url.to_owned(), args.iter().map(|a| (*a).to_owned()).collect());
    tokio::task::spawn_blocking(move || {
        tessera().env("TESSERA_DATABASE_URL", url).arg("users").args(args).output().unwrap()
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn vectors() -> Vec<Value> {
    VECTORS.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

/// One account per reference vector (`v000`, `v001`, … with that vector's stored hash) whose
/// salted digests, if any, were made by `salted_by`.
fn vector_accounts(salted_by: &str) -> String {
    let lines: Vec<String> = vectors()
        .iter()
        .enumerate()
        .filter(|(_, v)| v.get("salted_by").is_none_or(|by| by == salted_by))
        .map(|(i, v)| {
            let mut record = json!({"username": format!("v{i:03}"), "password_hash": v["password_hash"]});
            if let Some(salt) = v.get("password_salt") {
                record["password_salt"] = salt.clone();
            }
            record.to_string()
        })
        .collect();
    lines.join("\n") + "\n"
}

each_backend! {
    async fn every_imported_format_signs_in_and_is_upgraded_to_argon2id(backend) {
        let db = TestDb::create(backend).await;
        let django = TempFile::new("jsonl", &vector_accounts("django"));
        let mut args = vec!["import", django.path(), "--allow-legacy-digests", "--salted-digests", "django"];
        args.extend(FIREBASE);
        let output = users_command(&db.url, &args).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let werkzeug = TempFile::new("jsonl", &vector_accounts("werkzeug"));
        let mut args = vec!["import", werkzeug.path(), "--allow-legacy-digests", "--salted-digests", "werkzeug"];
        args.extend(FIREBASE);
        let output = users_command(&db.url, &args).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let vectors = vectors();
        assert_eq!(db.count("SELECT COUNT(*) FROM users").await, vectors.len() as i64, "{}", text(&output.stdout));
        let app = spawn_on(db, |_| {}).await;
        for (i, vector) in vectors.iter().enumerate() {
            let (username, format) = (format!("v{i:03}"), vector["format"].as_str().unwrap());
            let password = vector["password"].as_str().unwrap();
            if i % 7 == 0 {
                let wrong = app.login(&username, &format!("{password}!")).await;
                assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{format} took a wrong password");
            }
            let before = app.db.fetch_string(&format!("SELECT password_hash FROM users WHERE username = '{username}'")).await;
            let response = app.login(&username, password).await;
            assert_eq!(response.status(), StatusCode::OK, "{format} ({}) refused its password", vector["by"]);
            let after = app.db.fetch_string(&format!("SELECT password_hash FROM users WHERE username = '{username}'")).await;
            assert!(after.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{format} not upgraded: {after}");
            assert_ne!(before, after);
            // The upgraded hash is the password's own, not the old digest's: it signs in again.
            assert_eq!(app.login(&username, password).await.status(), StatusCode::OK, "{format} after upgrade");
        }
        let upgraded = app
            .db
            .count("SELECT COUNT(*) FROM audit_events WHERE type = 'login.succeeded' AND detail LIKE '%password_hash_upgraded_from%'")
            .await;
        assert_eq!(upgraded, vectors.len() as i64, "one upgrade per account, recorded");
    }

    async fn bad_lines_are_reported_by_number_and_the_rest_imported(backend) {
        let db = TestDb::create(backend).await;
        let content = [
            r#"{"username": "ada", "email": "ada@example.com", "password": "old-password-1", "display_name": "Ada"}"#,
            r#"{"username": "x", "password": "short-name-here"}"#,
            r#"{"username": "bob", "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99"}"#,
            "",
            r#"{"username": "cy", "pasword": "typo in the field name"}"#,
            r#"{"username": "dee", "password": 123456789}"#,
            "not json at all",
            r#"{"username": "ADA", "password": "same name other case"}"#,
            r#"{"username": "eve"}"#,
            r#"{"username": "fay", "password_hash": "$2b$04$short"}"#,
            r#"{"username": "gus", "password_hash": "plain$$hunter2"}"#,
            r#"{"username": "hal", "email": "hal@example.com", "password_hash": "pbkdf2:sha256:1000$salt$88e0000e3e13613ee3be421a4bd483f90f58df3fdb999f22a53c008c108eceb4", "role": "admin", "email_verified": true}"#,
            r#"{"username": "ivy", "password": "p", "role": "root"}"#,
        ]
        .join("\n");
        let file = TempFile::new("jsonl", &content);

        let dry = users_command(&db.url, &["import", file.path(), "--dry-run"]).await;
        assert_eq!(dry.status.code(), Some(1));
        assert!(text(&dry.stdout).starts_with("dry run: would import 3,"), "{}", text(&dry.stdout));
        assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 0, "a dry run writes nothing");
        assert_eq!(db.count("SELECT COUNT(*) FROM audit_events").await, 0);

        let output = users_command(&db.url, &["import", file.path()]).await;
        assert_eq!(output.status.code(), Some(1), "refused lines make the run fail");
        let stderr = text(&output.stderr);
        for expected in [
            "line 2: username:",
            "line 3: an unsafe md5 digest",
            "line 5: unknown field `pasword`",
            "line 6: password: not the kind of value",
            "line 7: not valid JSON",
            "line 8: the same username as line 1",
            "line 10: malformed password hash",
            "line 11: unknown password hash format",
            "line 13: role:",
        ] {
            assert!(stderr.contains(expected), "{expected:?} missing from:\n{stderr}");
        }
        assert!(!stderr.contains("line 4"), "a blank line is no account: {stderr}");
        assert!(!stderr.contains("line 9"), "an account without a password is one: {stderr}");
        for secret in ["old-password-1", "123456789", "5f4dcc3b5aa765d61d8327deb882cf99", "hunter2", "typo in the field"] {
            assert!(!stderr.contains(secret) && !text(&output.stdout).contains(secret), "{secret} printed");
        }
        assert!(text(&output.stdout).contains("imported 3,"), "{}", text(&output.stdout));
        assert!(text(&output.stdout).contains("refused 9 of 12 lines"), "{}", text(&output.stdout));
        assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 3);
        assert_eq!(db.fetch_string("SELECT role FROM users WHERE username = 'hal'").await, "admin");
        assert_eq!(db.count("SELECT COUNT(*) FROM users WHERE username = 'hal' AND email_verified_at IS NOT NULL").await, 1);
        let detail = db.fetch_string("SELECT detail FROM audit_events WHERE type = 'users.imported'").await;
        let detail: Value = serde_json::from_str(&detail).unwrap();
        assert_eq!(detail["counts"]["imported"], 3);
        assert_eq!(detail["counts"]["refused"], 9);
        assert_eq!(detail["counts"]["formats"], json!({"none": 1, "plain": 1, "werkzeug-pbkdf2": 1}));

        // A re-run skips what is there; with --update it overwrites the profile fields only.
        let again = users_command(&db.url, &["import", file.path()]).await;
        assert!(text(&again.stdout).contains("imported 0, updated 0, skipped 3"), "{}", text(&again.stdout));
        assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 3);
        let changed = TempFile::new(
            "jsonl",
            r#"{"username": "ada", "email": "ada@example.com", "password": "another-password", "display_name": "Ada Lovelace", "role": "owner"}"#,
        );
        let update = users_command(&db.url, &["import", changed.path(), "--update"]).await;
        assert!(update.status.success(), "{}", text(&update.stderr));
        assert!(text(&update.stdout).contains("updated 1"), "{}", text(&update.stdout));
        assert_eq!(db.fetch_string("SELECT display_name FROM users WHERE username = 'ada'").await, "Ada Lovelace");
        assert_eq!(db.fetch_string("SELECT role FROM users WHERE username = 'ada'").await, "user", "roles stay");

        // An update lands only on the account the line names by id or address, never renames or
        // moves an address, never blanks what the line leaves out, never undoes a newer edit.
        let mut outcomes = Vec::new();
        for line in [
            r#"{"username": "hal", "email": "thief@example.com", "display_name": "Thief"}"#,
            r#"{"username": "hal", "display_name": "Thief"}"#,
            r#"{"email": "hal@example.com", "username": "hal2", "display_name": "Thief"}"#,
            r#"{"email": "ada@example.com", "display_name": "Stale", "updated_at": "2001-01-01T00:00:00Z"}"#,
            r#"{"email": "ada@example.com", "first_name": "Augusta"}"#,
        ] {
            let file = TempFile::new("jsonl", line);
            let output = users_command(&db.url, &["import", file.path(), "--update"]).await;
            outcomes.push(text(&output.stdout) + &text(&output.stderr));
        }
        assert!(outcomes[0].contains("line 1: its e-mail is not account"), "{}", outcomes[0]);
        assert!(outcomes[1].contains("line 1: it matches account"), "{}", outcomes[1]);
        assert!(outcomes[2].contains("line 1: its username is not account"), "{}", outcomes[2]);
        assert!(outcomes[3].contains("updated 0, skipped 1"), "{}", outcomes[3]);
        assert!(outcomes[4].contains("updated 1, skipped 0"), "{}", outcomes[4]);
        assert_eq!(db.fetch_string("SELECT email FROM users WHERE username = 'hal'").await, "hal@example.com");
        assert_eq!(db.count("SELECT COUNT(*) FROM users WHERE display_name = 'Thief' OR display_name = 'Stale'").await, 0);
        assert_eq!(db.fetch_string("SELECT first_name FROM users WHERE username = 'ada'").await, "Augusta");
        assert_eq!(db.fetch_string("SELECT display_name FROM users WHERE username = 'ada'").await, "Ada Lovelace");

        let app = spawn_on(db, |_| {}).await;
        assert_eq!(app.login("ada", "old-password-1").await.status(), StatusCode::OK, "passwords stay");
        assert_eq!(app.login("ada", "another-password").await.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(app.login("eve", "").await.status(), StatusCode::UNAUTHORIZED, "no password, no sign-in");
        assert_eq!(app.login("eve", "!").await.status(), StatusCode::UNAUTHORIZED);
    }

    async fn csv_files_import_with_sql_spellings(backend) {
        let db = TestDb::create(backend).await;
        let csv = "username,email,email_verified,first_name,metadata,created_at,password_hash\n\
            ann,ann@example.com,t,Ann,\"{\"\"plan\"\": \"\"pro\"\"}\",2021-03-04 05:06:07.123456,$2b$04$vqfJ6dMJ1575O/L1hrNSXeaQXLmyX48KFfu.iS6THUQA53nQ8lMj.\n\
            ben,ben@example.com,f,Ben,,2021-03-04 05:06:07+00,pbkdf2_sha1$1000$uXQKZQsYE07jCkXbORdRU9$6lwqNaPwFE05yQnmhQhrlwt7xMU=\n\
            cat,not-an-address,f,Cat,,,$2b$04$vqfJ6dMJ1575O/L1hrNSXeaQXLmyX48KFfu.iS6THUQA53nQ8lMj.\n\
            dan,dan@example.com,f\n";
        let file = TempFile::new("csv", csv);
        let output = users_command(&db.url, &["import", file.path()]).await;
        let stderr = text(&output.stderr);
        assert!(stderr.contains("line 4: email:"), "{stderr}");
        assert!(stderr.contains("line 5: 3 fields where the header row has 7"), "{stderr}");
        assert_eq!(db.count("SELECT COUNT(*) FROM users").await, 2);
        assert_eq!(db.count("SELECT COUNT(*) FROM users WHERE username = 'ann' AND email_verified_at IS NOT NULL").await, 1);
        assert_eq!(db.fetch_string("SELECT metadata FROM users WHERE username = 'ann'").await.replace(' ', ""), r#"{"plan":"pro"}"#);
        assert_eq!(db.count("SELECT COUNT(*) FROM users WHERE created_at = 1614834367123456").await, 1);
        let app = spawn_on(db, |_| {}).await;
        assert_eq!(app.login("ann", "pässwörd ✓ 密码").await.status(), StatusCode::OK);
        assert_eq!(app.login("ben", "pässwörd ✓ 密码").await.status(), StatusCode::OK);

        let misspelt = TempFile::new("csv", "username,pasword\nzed,secret-password\n");
        let refused = users_command(&app.db.url, &["import", misspelt.path()]).await;
        assert_eq!(refused.status.code(), Some(1));
        assert!(text(&refused.stderr).contains("unknown CSV column \"pasword\""), "{}", text(&refused.stderr));
        let unknown = TempFile::new("txt", "");
        assert!(text(&users_command(&app.db.url, &["import", unknown.path()]).await.stderr).contains("--format"));
    }

    async fn an_export_imports_into_another_tessera_losslessly(backend) {
        let db = TestDb::create(backend).await;
        let accounts = [
            json!({"username": "ada", "email": "Ada@Example.com", "email_verified": true, "phone": "+15551234567",
                   "first_name": "Ada", "last_name": "Lovelace", "display_name": "Ada L.", "role": "admin",
                   "metadata": {"team": "engines", "n": 1}, "created_at": "2020-01-02T03:04:05.678901Z",
                   "last_login_at": "2024-05-06T07:08:09Z", "password": "ada-password-1"}),
            json!({"email": "nobody@example.com", "status": "disabled", "pending_email": "new@example.com",
                   "password_hash": "$2b$04$vqfJ6dMJ1575O/L1hrNSXeaQXLmyX48KFfu.iS6THUQA53nQ8lMj."}),
            json!({"username": "old", "password_hash": "5f4dcc3b5aa765d61d8327deb882cf99"}),
        ];
        let lines: Vec<String> = accounts.iter().map(Value::to_string).collect();
        let file = TempFile::new("jsonl", &lines.join("\n"));
        let output = users_command(&db.url, &["import", file.path(), "--allow-legacy-digests"]).await;
        assert!(output.status.success(), "{}", text(&output.stderr));
        let app = spawn_on(db, |_| {}).await;
        app.register_user("newcomer").await;
        assert_eq!(app.login("newcomer", PASSWORD).await.status(), StatusCode::OK);

        let first = users_command(&app.db.url, &["export", "--with-password-hashes"]).await;
        assert!(first.status.success(), "{}", text(&first.stderr));
        assert_eq!(text(&first.stdout).lines().count(), 4);
        assert!(!text(&first.stdout).contains("5f4dcc3b5aa765d61d8327deb882cf99"), "the digest was wrapped");

        let other = TestDb::create(backend).await;
        let exported = TempFile::new("jsonl", &text(&first.stdout));
        let imported = users_command(&other.url, &["import", exported.path()]).await;
        assert!(imported.status.success(), "{}", text(&imported.stderr));
        let second = users_command(&other.url, &["export", "--with-password-hashes"]).await;
        assert_eq!(text(&second.stdout), text(&first.stdout), "export, import, export gives the same file");

        let copy = spawn_on(other, |_| {}).await;
        assert_eq!(copy.login("ada", "ada-password-1").await.status(), StatusCode::OK);
        assert_eq!(copy.login("newcomer", PASSWORD).await.status(), StatusCode::OK);
        assert_eq!(copy.login("old", "password").await.status(), StatusCode::OK, "the wrapped digest moved too");

        let without = users_command(&app.db.url, &["export"]).await;
        assert!(!text(&without.stdout).contains("password_hash"), "hashes only when asked");
        let bare = TestDb::create(backend).await;
        let exported = TempFile::new("jsonl", &text(&without.stdout));
        let imported = users_command(&bare.url, &["import", exported.path()]).await;
        assert!(imported.status.success(), "accounts without hashes come as accounts without passwords");
        assert_eq!(bare.count("SELECT COUNT(*) FROM users WHERE password_hash = '!'").await, 4);
        let record: Value = serde_json::from_str(text(&without.stdout).lines().next().unwrap()).unwrap();
        assert_eq!(record["username"], "ada");
        assert_eq!(record["created_at"], "2020-01-02T03:04:05.678901Z");
    }

    async fn a_sign_up_racing_the_import_keeps_names_unique(backend) {
        let db = TestDb::create(backend).await;
        let hash = "$2b$04$vqfJ6dMJ1575O/L1hrNSXeaQXLmyX48KFfu.iS6THUQA53nQ8lMj.";
        let lines: Vec<String> =
            (0..3000).map(|n| json!({"username": format!("racer{n:04}"), "password_hash": hash}).to_string()).collect();
        let file = TempFile::new("jsonl", &lines.join("\n"));
        let app = spawn_on(db, |_| {}).await;
        let url = app.db.url.clone();
        let path = file.path().to_owned();
        let import = tokio::spawn(async move { users_command(&url, &["import", &path, "--batch-size", "100"]).await });
        let mut taken = 0;
        for n in (0..3000).rev().step_by(97) {
            let body = json!({"username": format!("racer{n:04}"), "password": PASSWORD});
            if app.register(&body).await.status() == StatusCode::CREATED {
                taken += 1;
            }
        }
        let output = import.await.unwrap();
        let stdout = text(&output.stdout);
        assert!(output.status.code() == Some(0) || output.status.code() == Some(1), "{}", text(&output.stderr));
        assert_eq!(app.db.count("SELECT COUNT(*) FROM users").await, 3000, "{stdout}");
        assert_eq!(
            app.db.count("SELECT COUNT(*) FROM (SELECT username_lower FROM users GROUP BY username_lower HAVING COUNT(*) > 1) d").await,
            0
        );
        assert!(taken > 0, "some sign-ups got there first");
    }
}
