//! The command line: one binary, one command enum, every setting a flag and a variable.

use clap::{Parser, Subcommand, ValueEnum};

use crate::config::{Config, ConfigFile};

/// tessera: user accounts and authentication as one binary.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub config_file: ConfigFile,
    #[command(flatten)]
    pub config: Config,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The wallets' ledger.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// The mail outbox.
    Mail {
        #[command(subcommand)]
        command: MailCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Debug, Subcommand)]
pub enum LedgerCommand {
    /// Recompute every balance and held amount and check every transfer; exits 1 on a mismatch.
    Verify,
}

#[derive(Debug, Subcommand)]
pub enum MailCommand {
    /// List the dead letters: mails set aside after failing for too long.
    Failed,
    /// Put dead letters back in the queue, to be tried again now.
    Retry(RetryArgs),
}

#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// The ids of the mails to requeue, as `mail failed` lists them.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub ids: Vec<uuid::Uuid>,
    /// Requeue every dead letter.
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make a new Ed25519 key current; older keys keep verifying until their tokens expire.
    Rotate,
    /// List the stored signing keys.
    List,
    /// Seal the signing keys and server secrets stored in clear with TESSERA_MASTER_KEY.
    Seal,
    /// Print a fresh master key for TESSERA_MASTER_KEY.
    NewMasterKey,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a verified account with a role, e.g. the first owner.
    Create(CreateAccountArgs),
    /// Insert synthetic accounts (`user0000000`, …) for benchmarks and trials.
    Seed(SeedArgs),
}

#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// How many accounts to add.
    #[arg(long)]
    pub users: u64,
    /// The start of every seeded username and e-mail address.
    #[arg(long, default_value = "user")]
    pub prefix: String,
    /// Give the seeded accounts the password on standard input's first line, instead of a
    /// random one nobody knows.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, clap::Args)]
pub struct CreateAccountArgs {
    #[arg(long)]
    pub username: Option<String>,
    #[arg(long)]
    pub email: Option<String>,
    #[arg(long, value_enum, default_value_t = RoleArg::Owner)]
    pub role: RoleArg,
    /// Read the password from the first line of standard input instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Owner,
    Admin,
    User,
}
