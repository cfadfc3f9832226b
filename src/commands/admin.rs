//! `tessera admin create`: make a verified account with a role, typically the first owner;
//! `tessera admin reset-mfa`: remove an account's second factors when no administrator can.

use std::io::{BufRead as _, IsTerminal as _};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::app::{notices, relying_party};
use crate::cli::{CreateAccountArgs, ResetMfaArgs, RoleArg};
use crate::config::{Config, Origins};
use crate::domain::audit::ClientInfo;
use crate::domain::lockout::Policy;
use crate::domain::user::{LoginName, Role};
use crate::service::Error;
use crate::service::abuse::AbuseStats;
use crate::service::abuse::lockout::Lockout;
use crate::service::accounts::{Accounts, NewAccount, RegistrationInput};
use crate::service::auth::cache::AuthCache;
use crate::service::hashing::PasswordHasher;
use crate::service::sealing::Sealer;
use crate::service::second_factors::{FactorParts, SecondFactors};
use crate::storage::{Store, users};

pub async fn create(config: &Config, args: CreateAccountArgs) -> anyhow::Result<()> {
    let password = read_password(args.password_stdin)?;
    let input =
        RegistrationInput { username: args.username, email: args.email, password, ..RegistrationInput::default() };
    let mut account = NewAccount::parse(input).map_err(explain)?;
    account.role = match args.role {
        RoleArg::Owner => Role::Owner,
        RoleArg::Admin => Role::Admin,
        RoleArg::User => Role::User,
    };
    account.email_verified = true;
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    // The account is created verified, so no mail is queued and the links' base is moot.
    let notices = notices(
        &config.mail,
        config.public_url.as_deref().unwrap_or(""),
        Arc::new(Notify::new()),
        AbuseStats::default(),
    );
    let lockout = Lockout::new(store.clone(), Policy { threshold: config.lockout_threshold });
    let accounts =
        Accounts::new(store.clone(), PasswordHasher::new(1), AuthCache::new(Duration::ZERO), notices, lockout, false);
    let created = accounts.register(account, None, &ClientInfo::default()).await.map_err(explain);
    store.close().await;
    let user = created?;
    println!(
        "created {} {} ({})",
        user.role.as_str(),
        user.id,
        user.profile.username.or(user.profile.email).unwrap_or_default()
    );
    Ok(())
}

pub async fn reset_mfa(config: &Config, args: ResetMfaArgs) -> anyhow::Result<()> {
    let store = Store::connect(config.database_url.expose(), 1).await?;
    store.migrate().await?;
    let outcome = async {
        let name = LoginName::username(args.username).map_err(|e| explain(e.at("username").into()))?;
        let user = users::find_by_login(&mut *store.conn().await?, &name).await?.context("no such account")?;
        let notices = notices(
            &config.mail,
            config.public_url.as_deref().unwrap_or(""),
            Arc::new(Notify::new()),
            AbuseStats::default(),
        );
        // A reset runs no ceremony: a relying party of localhost does, whatever is configured.
        let mut unceremonious = config.clone();
        unceremonious.webauthn_rp_id = None;
        unceremonious.webauthn_origins = Origins::default();
        let parts = FactorParts {
            sealer: Sealer::new(config.master_key())?,
            hasher: PasswordHasher::new(1),
            lockout: Lockout::new(store.clone(), Policy { threshold: config.lockout_threshold }),
            notices,
            cache: AuthCache::new(Duration::ZERO),
            policy: config.require_mfa,
            relying_party: relying_party(&unceremonious, "http://localhost")?,
        };
        SecondFactors::new(store.clone(), parts).reset(&user, None, &ClientInfo::default()).await?;
        anyhow::Ok(user)
    }
    .await;
    store.close().await;
    let user = outcome?;
    println!("reset the second factors of {} and signed it out everywhere", user.id);
    Ok(())
}

/// The password from standard input's first line, or typed at a prompt twice.
fn read_password(from_stdin: bool) -> anyhow::Result<SecretString> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
        return Ok(SecretString::from(line.trim_end_matches(['\r', '\n']).to_owned()));
    }
    if !std::io::stdin().is_terminal() {
        bail!("no terminal to prompt on: pass --password-stdin and pipe the password in");
    }
    let first = rpassword::prompt_password("Password: ").context("reading the password")?;
    let second = rpassword::prompt_password("Repeat it: ").context("reading the password")?;
    if first != second {
        bail!("the two passwords differ");
    }
    Ok(SecretString::from(first))
}

/// A domain refusal as one readable line.
fn explain(error: Error) -> anyhow::Error {
    match error {
        Error::Validation(errors) => {
            let lines: Vec<String> = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
            anyhow::anyhow!("{}", lines.join("; "))
        }
        Error::UsernameTaken => anyhow::anyhow!("username: already taken"),
        Error::EmailTaken => anyhow::anyhow!("email: already taken"),
        other => anyhow::Error::new(other),
    }
}
