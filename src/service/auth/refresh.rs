//! Refresh-token rotation with reuse detection.
//!
//! Every refresh rotates the token. Two honest tabs refreshing at once must not sign the user
//! out, so within the grace period a just-rotated token answers with the *same* successor pair
//! (derived, see [`super::tokens`]) instead of a second branch. After the grace, presenting a
//! rotated token means it was copied: the whole session is revoked, taking the successor and
//! every access token of the session down with it.

use secrecy::SecretString;

use serde_json::json;
use uuid::Uuid;

use super::Auth;
use super::tokens::{IssuedTokens, Tokens};
use crate::domain::audit::ClientInfo;
use crate::domain::audit::{AuditEvent, EventType};
use crate::domain::secrets;
use crate::domain::session::Session;
use crate::domain::time::Timestamp;
use crate::domain::user::{User, UserStatus};
use crate::service::error::Error;
use crate::storage::refresh_tokens::{self, RefreshRecord};
use crate::storage::rotations::{self, Rotated, Rotation};
use crate::storage::{Backend, Conn, Connection, StoreError, audit, sessions};

impl Auth {
    /// Exchanges a refresh token for a new pair.
    ///
    /// The token, its session and its user are read first, outside any transaction: a token
    /// that is unknown, expired, or of a session or account that has ended is refused there
    /// and costs no write. (A successor is committed before its pair is answered, so no read
    /// can miss it.) Nothing read there is written back: the conditional writes decide (the
    /// token not yet rotated, the session still live, its account active).
    ///
    /// A token not yet rotated is rotated in the fewest round trips the database allows (see
    /// `storage::rotations`); one rotated before, or on MySQL, goes through a transaction of
    /// its own, which tells a retry within the grace from a reuse.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    pub async fn refresh(&self, presented: SecretString, client: &ClientInfo) -> Result<IssuedTokens, Error> {
        let digest = secrets::digest(&presented);
        let now = Timestamp::now();
        // One connection for the read and, on PostgreSQL, the rotation after it (SQLite, which
        // batches rotations, reads on a reader).
        let mut conn =
            if self.rotations.is_some() { self.store.conn().await? } else { self.store.write_conn().await? };
        let found = refresh_tokens::find_with_session(&mut conn, &digest).await?;
        let (record, session, user) = found.ok_or(Error::InvalidToken)?;
        check_live(&record, &session, &user, now)?;
        if record.rotated_at.is_none() {
            let (successor, jti) = self.tokens.successor(&presented);
            let rotation =
                Rotation { presented: digest.clone(), successor: secrets::digest(&successor), session_id: session.id };
            match self.rotate_quickly(conn, rotation, now).await? {
                Rotated::Done { rotated_at, expires_at } => {
                    self.cache.forget_session(session.id);
                    return self.issued((successor, jti), &session, user, rotated_at, expires_at);
                }
                Rotated::SessionEnded => return Err(Error::InvalidToken),
                // Rotated meanwhile, or no quick way here: the transaction below decides.
                Rotated::AlreadyRotated | Rotated::Retry => {}
            }
        } else {
            // Given back before the transaction takes a connection of its own.
            drop(conn);
        }
        let mut tx = self.store.begin().await?;
        // The conditional write comes first: it makes racing refreshes of one token agree on a
        // single winner, and on SQLite it takes the write lock before anything is read.
        if refresh_tokens::mark_rotated(&mut tx, &digest, now).await? {
            let issued = self.rotate(&mut tx, &presented, &session, user, now).await?;
            tx.commit().await.map_err(StoreError::from)?;
            self.cache.forget_session(session.id);
            return Ok(issued);
        }
        // Rotated already: read again inside the transaction, which now holds what won.
        let found = refresh_tokens::find_with_session(&mut tx, &digest).await?;
        let (record, session, user) = found.ok_or(Error::InvalidToken)?;
        check_live(&record, &session, &user, now)?;
        let rotated_at = record.rotated_at.ok_or(Error::InvalidToken)?;
        let grace = self.tokens.settings().refresh_reuse_grace;
        if now <= rotated_at.plus(grace) && !grace.is_zero() {
            tx.commit().await.map_err(StoreError::from)?;
            return self.replay(&presented, &session, user, rotated_at);
        }
        sessions::revoke(&mut tx, session.id, session.user_id, now).await?;
        let detail = json!({ "session_id": session.id, "rotated_at": rotated_at.to_rfc3339() });
        let event = AuditEvent::new(EventType::RefreshTokenReused, None, Some(session.user_id), client, detail);
        audit::insert(&mut tx, &event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.cache.forget_session(session.id);
        tracing::warn!(session_id = %session.id, user_id = %session.user_id, "refresh token reused: session revoked");
        Err(Error::RefreshTokenReused)
    }

    /// Issues the successor pair and slides the session forward, up to its absolute end. A
    /// session revoked (or its account disabled) since it was read is not extended: the
    /// rotation fails as for a revoked session.
    async fn rotate(
        &self,
        tx: &mut Connection,
        presented: &SecretString,
        session: &Session,
        user: User,
        now: Timestamp,
    ) -> Result<IssuedTokens, Error> {
        let (successor, jti) = self.tokens.successor(presented);
        // The session row is written before the successor's insert locks it for the foreign
        // key (the order that cannot deadlock on MySQL; see `Auth::open_session`).
        // The absolute end was read before the transaction, but it never changes.
        let expires_at = now.plus(self.tokens.settings().refresh_ttl).min(session.max_expires_at);
        if !sessions::extend(tx, session.id, now, expires_at).await? {
            return Err(Error::InvalidToken);
        }
        refresh_tokens::insert(tx, &secrets::digest(&successor), session.id, now, expires_at).await?;
        self.issued((successor, jti), session, user, now, expires_at)
    }

    /// The pair a rotation at `now` issued: `successor` and the access token `jti`, for a
    /// session that now ends at `expires_at`.
    fn issued(
        &self,
        (successor, jti): (SecretString, Uuid),
        session: &Session,
        user: User,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<IssuedTokens, Error> {
        Ok(IssuedTokens {
            access_token: self.tokens.access_token(&user, session, now, jti)?,
            expires_in: self.tokens.settings().access_ttl.as_secs(),
            refresh_token: successor,
            refresh_expires_in: Tokens::seconds_between(now, expires_at),
            user,
        })
    }

    /// `rotation` in a batch (SQLite; `conn`, a reader, is given back first) or in one
    /// statement on `conn` (PostgreSQL); [`Rotated::Retry`] where neither is available (MySQL).
    async fn rotate_quickly(&self, mut conn: Conn, rotation: Rotation, now: Timestamp) -> Result<Rotated, Error> {
        if let Some(batcher) = &self.rotations {
            drop(conn);
            return Ok(batcher.rotate(rotation).await);
        }
        if self.store.backend() != Backend::Postgres {
            return Ok(Rotated::Retry);
        }
        let until = now.plus(self.tokens.settings().refresh_ttl);
        let rotated = rotations::rotate_in_one_statement(&mut conn, &rotation, until).await?;
        conn.finish().await?;
        Ok(rotated)
    }

    /// The pair a rotation at `rotated_at` issued, reproduced exactly.
    fn replay(
        &self,
        presented: &SecretString,
        session: &Session,
        user: User,
        rotated_at: Timestamp,
    ) -> Result<IssuedTokens, Error> {
        self.issued(self.tokens.successor(presented), session, user, rotated_at, session.expires_at)
    }
}

/// Whether the token may be used at `now`: neither it nor its session ended, its account active.
fn check_live(record: &RefreshRecord, session: &Session, user: &User, now: Timestamp) -> Result<(), Error> {
    if record.expires_at <= now || session.revoked_at.is_some() || session.expires_at <= now {
        return Err(Error::InvalidToken);
    }
    if user.status != UserStatus::Active {
        return Err(Error::AccountDisabled);
    }
    Ok(())
}
