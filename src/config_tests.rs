use super::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn args() -> SettingsArgs {
    SettingsArgs::default()
}

#[test]
fn defaults_are_sensible() -> TestResult {
    let config = Config::load(&args())?;
    assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.database_url.expose(), "sqlite://tessera.db?mode=rwc");
    assert_eq!(config.access_token_ttl, Duration::from_secs(15 * 60));
    assert_eq!(config.refresh_token_ttl, Duration::from_secs(30 * 86_400));
    assert_eq!(config.log_format, LogFormat::Text);
    assert!(config.hash_concurrency >= 1);
    assert_eq!(config.public_url, None);
    Ok(())
}

#[test]
fn a_bad_value_names_its_variable() {
    let mut a = args();
    a.listen = Some("nowhere".into());
    let error = Config::load(&a).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.starts_with("invalid TESSERA_LISTEN:"), "{error}");

    let mut a = args();
    a.access_token_ttl = Some("soon".into());
    let error = Config::load(&a).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("TESSERA_ACCESS_TOKEN_TTL"), "{error}");

    let mut a = args();
    a.hash_concurrency = Some("0".into());
    assert!(Config::load(&a).is_err());
}

#[test]
fn database_urls_never_show_their_password() {
    let url = SecretUrl::new("postgres://app:s3cret@db.example:5432/tessera");
    assert_eq!(format!("{url:?}"), "\"postgres://app:***@db.example:5432/tessera\"");
    assert_eq!(SecretUrl::new("sqlite://tessera.db").masked(), "sqlite://tessera.db");
    assert_eq!(SecretUrl::new("mysql://root@localhost/test").masked(), "mysql://root@localhost/test");

    let mut a = args();
    a.database_url = Some("oracle://app:s3cret@db".into());
    let error = Config::load(&a).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(!error.contains("s3cret"), "{error}");
}

#[test]
fn the_toml_file_sits_under_flags_and_variables() -> TestResult {
    let path = std::env::temp_dir().join(format!("tessera-config-{}.toml", uuid::Uuid::now_v7()));
    std::fs::write(&path, "listen = \"127.0.0.1:9000\"\nhash_concurrency = 3\nlog_format = \"json\"\n")?;
    let mut a = args();
    a.config = Some(path.clone());
    a.log_format = Some("text".into());
    let config = Config::load(&a)?;
    assert_eq!(config.listen.port(), 9000);
    assert_eq!(config.hash_concurrency, 3);
    assert_eq!(config.log_format, LogFormat::Text);

    std::fs::write(&path, "lsiten = \"x\"\n")?;
    let error = Config::load(&a).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("unknown key \"lsiten\""), "{error}");
    std::fs::remove_file(&path).ok();
    Ok(())
}

#[test]
fn token_lifetimes_must_nest() {
    let mut a = args();
    a.refresh_token_ttl = Some("5m".into());
    let error = Config::load(&a).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("TESSERA_REFRESH_TOKEN_TTL"), "{error}");
}

#[test]
fn a_short_jwt_secret_is_refused_without_being_shown() {
    let mut a = args();
    a.jwt_secret = Some("too-short-secret".into());
    let error = Config::load(&a).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.starts_with("invalid TESSERA_JWT_SECRET: must be at least 32 bytes"), "{error}");
    assert!(!error.contains("too-short-secret"), "{error}");
    a.jwt_secret = Some("x".repeat(32));
    assert!(Config::load(&a).is_ok());
}

#[test]
fn the_refresh_grace_may_be_zero() -> TestResult {
    let mut a = args();
    a.refresh_reuse_grace = Some("0s".into());
    assert_eq!(Config::load(&a)?.refresh_reuse_grace, Duration::ZERO);
    assert_eq!(Config::load(&args())?.refresh_reuse_grace, Duration::from_secs(10));
    Ok(())
}
