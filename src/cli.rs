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
    /// Moving accounts in and out: import from another application, export to a file.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
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
pub enum UsersCommand {
    /// Import accounts with their existing password hashes from JSON Lines or CSV.
    Import(ImportArgs),
    /// Write every account as JSON Lines, in the form `users import` reads.
    Export(ExportArgs),
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The file to import: one account per line (JSON Lines) or per row (CSV with a header row).
    pub file: std::path::PathBuf,
    /// The file's format; by default taken from its extension (`.jsonl`, `.ndjson`, `.json`, `.csv`).
    #[arg(long, value_enum)]
    pub format: Option<FileFormat>,
    /// Check every line and report what would happen; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Overwrite the profile fields of accounts already there (matched by id, username or
    /// e-mail) instead of skipping them. Passwords, roles and statuses are left as they are.
    #[arg(long)]
    pub update: bool,
    /// Import unsalted or salted MD5 and SHA-1 digests, wrapped in Argon2id (the digest itself
    /// is not stored) and upgraded at each account's next sign-in.
    #[arg(long)]
    pub allow_legacy_digests: bool,
    /// Who made the salted digests (`md5$salt$hex`, `sha1$salt$hex`), which read alike: Django
    /// (digest of salt then password) or Werkzeug before 2.3 (HMAC keyed by the salt).
    #[arg(long, value_enum, requires = "allow_legacy_digests")]
    pub salted_digests: Option<SaltedDigestsArg>,
    /// Accounts per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub batch_size: u64,
    /// Firebase: the project's base64 signer key (Authentication → Users → Password hash
    /// parameters); better given in the environment than on the command line.
    #[arg(long, env = "TESSERA_FIREBASE_SIGNER_KEY", hide_env_values = true,
          requires_all = ["firebase_salt_separator", "firebase_rounds", "firebase_mem_cost"])]
    pub firebase_signer_key: Option<String>,
    /// Firebase: the project's base64 salt separator.
    #[arg(long, requires = "firebase_signer_key")]
    pub firebase_salt_separator: Option<String>,
    /// Firebase: the project's rounds.
    #[arg(long, requires = "firebase_signer_key")]
    pub firebase_rounds: Option<u32>,
    /// Firebase: the project's memory cost.
    #[arg(long, requires = "firebase_signer_key")]
    pub firebase_mem_cost: Option<u8>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SaltedDigestsArg {
    Django,
    Werkzeug,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FileFormat {
    Jsonl,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Write here instead of standard output (the file is made readable by its owner only).
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
    /// Include each account's password hash, so that the accounts import elsewhere with their
    /// passwords. Treat such a file as the database itself.
    #[arg(long)]
    pub with_password_hashes: bool,
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
    /// Remove an account's second factors (a lost authenticator app), for the accounts no
    /// administrator outranks: owners. Audited, signs the account out, mails its owner.
    ResetMfa(ResetMfaArgs),
}

#[derive(Debug, clap::Args)]
pub struct ResetMfaArgs {
    /// The account's username.
    #[arg(long)]
    pub username: String,
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
