//! The `tessera` binary: parse the command line, load the configuration, run the command.
//! Exit codes: 0 success, 1 failure, 2 bad usage or configuration.

use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use tessera::cli::{AdminCommand, Cli, Command, KeysCommand, LedgerCommand, MailCommand, UsersCommand};
use tessera::commands;
use tessera::config::{self, ConfigError};

fn main() -> ExitCode {
    // `.env` fills in variables that are not already set.
    let dotenv = dotenvy::dotenv();
    let cli = match config::matches(Cli::command(), std::env::args_os()).and_then(|matches| {
        let cli = Cli::from_arg_matches(&matches).map_err(|e| ConfigError::new("the command line", e.to_string()))?;
        cli.config.check()?;
        Ok(cli)
    }) {
        Ok(cli) => cli,
        Err(error) => {
            eprintln!("tessera: {error}");
            return ExitCode::from(2);
        }
    };
    let config = cli.config;
    tessera::telemetry::init(config.log_format);
    if let Err(dotenvy::Error::LineParse(line, _)) = &dotenv {
        tracing::warn!(line = %line, "ignoring an unreadable line in .env");
    }
    for name in config::unknown_variables() {
        tracing::warn!(variable = %name, "unknown TESSERA_ variable; is it misspelt?");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tessera: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => commands::serve::run(&config).await,
            Command::Migrate => commands::migrate::run(&config).await,
            Command::Admin { command: AdminCommand::Create(args) } => commands::admin::create(&config, args).await,
            Command::Admin { command: AdminCommand::Seed(args) } => commands::seed::run(&config, args).await,
            Command::Admin { command: AdminCommand::ResetMfa(args) } => commands::admin::reset_mfa(&config, args).await,
            Command::Keys { command: KeysCommand::Rotate } => commands::keys::rotate(&config).await,
            Command::Keys { command: KeysCommand::List } => commands::keys::list(&config).await,
            Command::Keys { command: KeysCommand::Seal } => commands::keys::seal(&config).await,
            Command::Keys { command: KeysCommand::NewMasterKey } => {
                commands::keys::new_master_key();
                Ok(())
            }
            Command::Users { command: UsersCommand::Import(args) } => commands::users::import(&config, args).await,
            Command::Users { command: UsersCommand::Export(args) } => commands::users::export(&config, args).await,
            Command::Ledger { command: LedgerCommand::Verify } => commands::ledger::verify(&config).await,
            Command::Mail { command: MailCommand::Failed } => commands::mail::failed(&config).await,
            Command::Mail { command: MailCommand::Retry(args) } => commands::mail::retry(&config, args).await,
            Command::Openapi => {
                commands::openapi::run();
                Ok(())
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tessera: {error:#}");
            ExitCode::FAILURE
        }
    }
}
