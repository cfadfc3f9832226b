//! Moving in: accounts from another application, with the password hashes they have, in
//! batches. Each batch is checked line by line (a bad line is reported with its number and
//! skipped), matched against the accounts already there in one query, and inserted in one
//! transaction; plain-text passwords and unsafe digests are hashed on the hashing pool.
//!
//! Re-running an import skips the accounts it brought in before (matched by id, username or
//! e-mail); with `update` it overwrites their profile fields instead. A run is one audit event.

pub mod record;

use std::collections::{BTreeMap, HashMap};

use futures_util::{StreamExt as _, stream};
use serde::Serialize;
use serde_json::json;
use sha2::Digest as _;
use uuid::Uuid;

use self::record::{Account, Allowances, NO_PASSWORD, Present, Secret, UserRecord};
use super::accounts::uniqueness;
use super::error::Error;
use super::hashing::{PasswordHasher, StoredHash};
use crate::domain::audit::{AuditEvent, ClientInfo, EventType};
use crate::domain::fields::email_key;
use crate::domain::time::Timestamp;
use crate::domain::user::{User, username_key};
use crate::storage::user_import::{self, Existing};
use crate::storage::{Store, StoreError, audit, users};

/// What an import run may do.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Check everything, write nothing.
    pub dry_run: bool,
    /// Overwrite the profile fields a line has (phone, names, metadata) on the account already
    /// there that it names by id or e-mail, instead of skipping it.
    pub update: bool,
    pub allow: Allowances,
}

/// What a run did, line by line; a dry run counts what it would have done.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportCounts {
    pub lines: u64,
    pub imported: u64,
    pub updated: u64,
    /// Accounts already there (and, with `update`, already as the file has them).
    pub skipped: u64,
    pub refused: u64,
    /// Imported accounts by the format of their password's hash (`plain`: hashed at import).
    pub formats: BTreeMap<&'static str, u64>,
}

/// A line that was not imported, and why (never with the password or hash in it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    pub line: u64,
    pub reason: String,
}

/// A line as read from the file: its number, and the record or why it could not be read.
pub type Line = (u64, Result<UserRecord, String>);

/// A checked line on its way in.
struct Candidate {
    line: u64,
    user: User,
    secret: Secret,
    present: Present,
    /// Whether the file named the account's id (else a new one was made).
    named_id: bool,
}

/// One import run.
pub struct Importer {
    store: Store,
    hasher: PasswordHasher,
    options: ImportOptions,
    /// The ids, usernames and addresses earlier lines named (as 128-bit digests, 32 bytes an
    /// entry however long the file), with their line: a second line naming one is refused, so
    /// a file cannot import one person twice.
    seen: HashMap<[u8; 16], u64>,
    counts: ImportCounts,
    now: Timestamp,
}

impl Importer {
    pub fn new(store: Store, hasher: PasswordHasher, options: ImportOptions) -> Self {
        Self { store, hasher, options, seen: HashMap::new(), counts: ImportCounts::default(), now: Timestamp::now() }
    }

    pub fn counts(&self) -> &ImportCounts {
        &self.counts
    }

    /// Imports one batch; answers the lines refused. An error (the database gone) stops the
    /// run; what earlier batches imported stays, and a re-run skips it.
    pub async fn import(&mut self, lines: Vec<Line>) -> Result<Vec<LineError>, Error> {
        let mut refused = Vec::new();
        let mut candidates = Vec::new();
        for (line, record) in lines {
            self.counts.lines += 1;
            let checked = record.and_then(|record| {
                let named_id = record.id.is_some();
                let Account { user, secret, present } = record.into_account(&self.options.allow, self.now)?;
                self.first_mention(line, &user)?;
                Ok(Candidate { line, user, secret, present, named_id })
            });
            match checked {
                Ok(candidate) => candidates.push(candidate),
                Err(reason) => refused.push(LineError { line, reason }),
            }
        }
        let existing = self.existing(&candidates).await?;
        let mut new = Vec::new();
        for candidate in candidates {
            match already_there(&candidate, &existing) {
                Ok(None) => new.push(candidate),
                Ok(Some(_)) if !self.options.update => self.counts.skipped += 1,
                Ok(Some(id)) => self.update(candidate, id, &mut refused).await?,
                Err(reason) => refused.push(LineError { line: candidate.line, reason }),
            }
        }
        let ready = self.hash(new).await?;
        self.insert(ready, &mut refused).await?;
        refused.sort_by_key(|error| error.line);
        self.counts.refused += refused.len() as u64;
        Ok(refused)
    }

    /// Records the identifiers `user` has; refuses the line if an earlier one had any of them.
    fn first_mention(&mut self, line: u64, user: &User) -> Result<(), String> {
        let keys = [
            Some(("id", format!("id:{}", user.id))),
            user.profile.username.as_deref().map(|name| ("username", format!("username:{}", username_key(name)))),
            user.profile.email.as_deref().map(|email| ("email", format!("email:{}", email_key(email)))),
        ];
        let digest = |key: &str| -> [u8; 16] {
            let full: [u8; 32] = sha2::Sha256::digest(key.as_bytes()).into();
            let mut short = [0_u8; 16];
            short.copy_from_slice(&full[..16]);
            short
        };
        let keys: Vec<(&str, [u8; 16])> = keys.iter().flatten().map(|(what, key)| (*what, digest(key))).collect();
        for (what, key) in &keys {
            if let Some(earlier) = self.seen.get(key) {
                return Err(format!("the same {what} as line {earlier}"));
            }
        }
        for (_, key) in keys {
            self.seen.insert(key, line);
        }
        Ok(())
    }

    /// The accounts already there that any candidate names.
    async fn existing(&self, candidates: &[Candidate]) -> Result<Vec<Existing>, Error> {
        let ids: Vec<Uuid> = candidates.iter().map(|c| c.user.id).collect();
        let usernames: Vec<String> =
            candidates.iter().filter_map(|c| c.user.profile.username.as_deref().map(username_key)).collect();
        let emails: Vec<String> =
            candidates.iter().filter_map(|c| c.user.profile.email.as_deref().map(email_key)).collect();
        let mut conn = self.store.conn().await?;
        Ok(user_import::matching(&mut conn, &ids, &usernames, &emails).await?)
    }

    /// Overwrites the profile fields the line has on account `id`, under the row's lock. The
    /// line must name the account by id or by its address, and its username and address (when
    /// given) must be the account's: an update never renames an account, never moves its
    /// address, and never lands on an account that merely shares a username with the line.
    async fn update(&mut self, candidate: Candidate, id: Uuid, refused: &mut Vec<LineError>) -> Result<(), Error> {
        let Candidate { line, user: theirs, present, named_id, .. } = candidate;
        let mut tx = self.store.begin().await?;
        let account = if self.options.dry_run {
            users::find_by_id(&mut tx, id).await?
        } else {
            users::lock_and_find(&mut tx, id).await?
        };
        let Some(mut user) = account else {
            refused.push(LineError { line, reason: "the account was deleted during the import".into() });
            return Ok(());
        };
        if let Err(reason) = same_account(&theirs, &user, named_id) {
            refused.push(LineError { line, reason });
            return Ok(());
        }
        if present.updated_at.is_some_and(|at| user.updated_at > at) {
            // Changed here after the file was made: the newer edit stays.
            self.counts.skipped += 1;
            return Ok(());
        }
        let before = user.profile.clone();
        let (mine, new) = (&mut user.profile, theirs.profile);
        if present.phone {
            mine.phone = new.phone;
        }
        if present.first_name {
            mine.first_name = new.first_name;
        }
        if present.last_name {
            mine.last_name = new.last_name;
        }
        if present.display_name {
            mine.display_name = new.display_name;
        }
        if present.metadata {
            mine.metadata = new.metadata;
        }
        if user.profile == before {
            self.counts.skipped += 1;
            return Ok(());
        }
        user.updated_at = self.now;
        if !self.options.dry_run {
            users::update(&mut tx, &before, &user).await?;
            tx.commit().await.map_err(StoreError::from)?;
        }
        self.counts.updated += 1;
        Ok(())
    }

    /// Gives every candidate its stored hash: plain passwords and digests are hashed on the
    /// pool, a few per thread at a time (a dry run hashes nothing).
    async fn hash(&self, candidates: Vec<Candidate>) -> Result<Vec<Candidate>, Error> {
        if self.options.dry_run {
            return Ok(candidates);
        }
        let hasher = self.hasher.clone();
        let in_flight = hasher.concurrency() * 4;
        stream::iter(candidates)
            .map(|mut candidate| {
                let hasher = hasher.clone();
                async move {
                    candidate.user.password_hash = match &candidate.secret {
                        Secret::Ready { hash, .. } => hash.clone(),
                        Secret::None => NO_PASSWORD.to_owned(),
                        Secret::Plain(password) => hasher.hash(password.clone()).await?,
                        Secret::Digest { stored, werkzeug, .. } => match StoredHash::parse(stored) {
                            Ok(StoredHash::Digest(digest)) if *werkzeug => {
                                hasher.wrap(&digest.made_by_werkzeug()).await?
                            }
                            Ok(StoredHash::Digest(digest)) => hasher.wrap(&digest).await?,
                            _ => return Err(Error::Internal("a digest read once no longer reads".into())),
                        },
                    };
                    Ok(candidate)
                }
            })
            .buffered(in_flight)
            .collect::<Vec<Result<Candidate, Error>>>()
            .await
            .into_iter()
            .collect()
    }

    /// Inserts the batch in one transaction. If that fails on a conflict (an account made
    /// meanwhile by a sign-up), each account is inserted on its own, and the ones in conflict
    /// are refused.
    async fn insert(&mut self, candidates: Vec<Candidate>, refused: &mut Vec<LineError>) -> Result<(), Error> {
        if candidates.is_empty() {
            return Ok(());
        }
        if !self.options.dry_run {
            let accounts: Vec<User> = candidates.iter().map(|c| c.user.clone()).collect();
            if let Err(error) = self.insert_together(&accounts).await {
                if !matches!(error, StoreError::Conflict { .. }) {
                    return Err(error.into());
                }
                return self.insert_one_by_one(candidates, refused).await;
            }
        }
        let before = self.counts.imported;
        for candidate in &candidates {
            self.imported(candidate);
        }
        if !self.options.dry_run && crossed_a_power_of_ten(before, self.counts.imported) {
            // The planner's statistics still describe the table as it was before the import;
            // refreshed at 1,000, 10,000, … accounts, each batch's lookups keep using the indexes.
            users::after_bulk_load(&self.store).await?;
        }
        Ok(())
    }

    async fn insert_together(&self, accounts: &[User]) -> Result<(), StoreError> {
        let mut tx = self.store.begin().await?;
        users::insert_many(&mut tx, accounts).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn insert_one_by_one(
        &mut self,
        candidates: Vec<Candidate>,
        refused: &mut Vec<LineError>,
    ) -> Result<(), Error> {
        for candidate in candidates {
            match self.insert_together(std::slice::from_ref(&candidate.user)).await {
                Ok(()) => self.imported(&candidate),
                Err(error @ StoreError::Conflict { .. }) => {
                    let reason = format!("{} (by an account made during the import)", uniqueness(error));
                    refused.push(LineError { line: candidate.line, reason });
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    fn imported(&mut self, candidate: &Candidate) {
        self.counts.imported += 1;
        let scheme = match &candidate.secret {
            Secret::Ready { scheme, .. } | Secret::Digest { scheme, .. } => scheme,
            Secret::Plain(_) => "plain",
            Secret::None => "none",
        };
        *self.counts.formats.entry(scheme).or_default() += 1;
    }

    /// Ends the run: one audit event with the counts, unless nothing was written.
    pub async fn finish(self, source: &str) -> Result<ImportCounts, Error> {
        if !self.options.dry_run && (self.counts.imported > 0 || self.counts.updated > 0) {
            let detail = json!({ "source": source, "counts": self.counts, "update": self.options.update });
            let event = AuditEvent::new(EventType::UsersImported, None, None, &ClientInfo::default(), detail);
            self.store.write(async |conn| audit::insert(conn, &event).await).await?;
            users::after_bulk_load(&self.store).await?;
        }
        Ok(self.counts)
    }
}

/// Whether a count went from `before` to `after` past 1,000, 10,000, 100,000, …
fn crossed_a_power_of_ten(before: u64, after: u64) -> bool {
    std::iter::successors(Some(1_000_u64), |n| n.checked_mul(10)).take_while(|n| *n <= after).any(|n| n > before)
}

/// Whether a line may update `account`: named by its id or its address, with no username or
/// address other than the account's.
fn same_account(line: &User, account: &User, named_id: bool) -> Result<(), String> {
    let key = |profile: &crate::domain::user::Profile| {
        (profile.username.as_deref().map(username_key), profile.email.as_deref().map(email_key))
    };
    let ((their_name, their_email), (my_name, my_email)) = (key(&line.profile), key(&account.profile));
    if their_name.is_some() && their_name != my_name {
        return Err(format!("its username is not account {}'s: an update never renames", account.id));
    }
    if their_email.is_some() && their_email != my_email {
        return Err(format!("its e-mail is not account {}'s: an update never moves an address", account.id));
    }
    if !(named_id && line.id == account.id) && their_email.is_none() {
        return Err(format!(
            "it matches account {} by username alone: give the account's id or e-mail to update it",
            account.id
        ));
    }
    Ok(())
}

/// The account already there that the candidate names, if any; refused when its identifiers
/// belong to different accounts, or its id is not the one its username or address has.
fn already_there(candidate: &Candidate, existing: &[Existing]) -> Result<Option<Uuid>, String> {
    let user = &candidate.user;
    let username = user.profile.username.as_deref().map(username_key);
    let email = user.profile.email.as_deref().map(email_key);
    let mut matched: Vec<Uuid> = existing
        .iter()
        .filter(|e| {
            e.id == user.id
                || (username.is_some() && e.username_key == username)
                || (email.is_some() && e.email_key == email)
        })
        .map(|e| e.id)
        .collect();
    matched.sort();
    matched.dedup();
    match matched.as_slice() {
        [] => Ok(None),
        [id] if candidate.named_id && *id != user.id => {
            Err(format!("its username or e-mail belongs to account {id}, not to the id it names"))
        }
        [id] => Ok(Some(*id)),
        [first, second, ..] => {
            Err(format!("its identifiers belong to two accounts already there ({first} and {second})"))
        }
    }
}
