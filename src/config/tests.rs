use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The configuration from these flags alone (the tests' environment names no setting).
fn load(flags: &[&str]) -> Result<Config, ConfigError> {
    Config::parse_from(std::iter::once("tessera").chain(flags.iter().copied()))
}

fn refusal(flags: &[&str]) -> String {
    load(flags).err().map(|e| e.to_string()).unwrap_or_default()
}

#[test]
fn defaults_are_sensible() -> TestResult {
    let config = load(&[])?;
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.database_url.expose(), "sqlite://tessera.db?mode=rwc");
    assert_eq!(config.access_token_ttl, Duration::from_secs(15 * 60));
    assert_eq!(config.refresh_token_ttl, Duration::from_secs(30 * 86_400));
    assert_eq!(config.log_format, LogFormat::Text);
    assert!(config.hash_concurrency >= 1);
    assert_eq!(config.public_url, None);
    assert_eq!(config.require_mfa, crate::domain::second_factor::MfaPolicy::None);
    assert_eq!(load(&["--require-mfa", "all"])?.require_mfa, crate::domain::second_factor::MfaPolicy::All);
    Ok(())
}

#[test]
fn a_bad_value_names_its_variable() {
    let error = refusal(&["--listen", "nowhere"]);
    assert!(error.starts_with("invalid TESSERA_LISTEN:"), "{error}");

    let error = refusal(&["--access-token-ttl", "soon"]);
    assert!(error.contains("TESSERA_ACCESS_TOKEN_TTL"), "{error}");

    assert!(load(&["--hash-concurrency", "0"]).is_err());

    let error = refusal(&["--require-mfa", "admins"]);
    assert!(error.contains("TESSERA_REQUIRE_MFA") && error.contains("none, admin or all"), "{error}");
}

#[test]
fn database_urls_never_show_their_password() {
    let url = SecretUrl::new("postgres://app:s3cret@db.example:5432/tessera");
    assert_eq!(format!("{url:?}"), "\"postgres://app:***@db.example:5432/tessera\"");
    assert_eq!(SecretUrl::new("sqlite://tessera.db").masked(), "sqlite://tessera.db");
    assert_eq!(SecretUrl::new("mysql://root@localhost/test").masked(), "mysql://root@localhost/test");

    let error = refusal(&["--database-url", "oracle://app:s3cret@db"]);
    assert!(error.starts_with("invalid TESSERA_DATABASE_URL:"), "{error}");
    assert!(!error.contains("s3cret"), "{error}");
}

#[test]
fn the_toml_file_sits_under_flags_and_variables() -> TestResult {
    let path = std::env::temp_dir().join(format!("tessera-config-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nhash_concurrency = 3\nlog_format = \"json\"\n")?;
    let file = path.to_string_lossy().into_owned();
    let config = load(&["--config", &file, "--log-format", "text"])?;
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.hash_concurrency, 3);
    assert_eq!(config.log_format, LogFormat::Text);

    std::fs::write(&path, "lsiten = \"x\"\n")?;
    let error = refusal(&["--config", &file]);
    assert!(error.contains("unknown key \"lsiten\""), "{error}");

    std::fs::write(&path, "access_token_ttl = \"soon\"\n")?;
    let error = refusal(&["--config", &file]);
    assert!(error.starts_with("invalid TESSERA_ACCESS_TOKEN_TTL:"), "a file's value is parsed like a flag's: {error}");
    std::fs::remove_file(&path).ok();
    Ok(())
}

#[test]
fn token_lifetimes_must_nest() {
    let error = refusal(&["--refresh-token-ttl", "5m"]);
    assert!(error.contains("TESSERA_REFRESH_TOKEN_TTL"), "{error}");
}

#[test]
fn a_short_jwt_secret_is_refused_without_being_shown() {
    let error = refusal(&["--jwt-secret", "too-short-secret"]);
    assert!(error.starts_with("invalid TESSERA_JWT_SECRET: must be at least 32 bytes"), "{error}");
    assert!(!error.contains("too-short-secret"), "{error}");
    assert!(load(&["--jwt-secret", &"x".repeat(32)]).is_ok());
}

#[test]
fn the_refresh_grace_may_be_zero() -> TestResult {
    assert_eq!(load(&["--refresh-reuse-grace", "0s"])?.refresh_reuse_grace, Duration::ZERO);
    assert_eq!(load(&[])?.refresh_reuse_grace, Duration::from_secs(10));
    Ok(())
}

#[test]
fn every_setting_has_a_variable_and_a_flag() {
    let variables = variables();
    assert!(variables.len() >= 24, "{variables:?}");
    for variable in &variables {
        assert!(variable.starts_with("TESSERA_"), "{variable}");
    }
    for arg in settings_command().get_arguments().filter(|a| a.get_id() != "help") {
        assert!(arg.get_long().is_some() && arg.get_env().is_some(), "{}", arg.get_id());
    }
}
