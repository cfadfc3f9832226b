//! Sign-out and the user's view of their own sessions.

use uuid::Uuid;

use serde_json::json;

use super::{Auth, Principal};
use crate::domain::audit::ClientInfo;
use crate::domain::audit::{AuditEvent, EventType};
use crate::domain::session::{Session, SessionPosition};
use crate::domain::time::Timestamp;
use crate::service::cursor::{Cursors, Page};
use crate::service::error::Error;
use crate::storage::{Store, StoreError, audit, sessions};

impl Auth {
    /// Revokes the caller's session, or with `all` every session of the caller. The access
    /// token stops working at once: every request checks its session.
    pub async fn logout(&self, me: &Principal, all: bool, client: &ClientInfo) -> Result<(), Error> {
        let now = Timestamp::now();
        let mut tx = self.store.begin().await?;
        let revoked = if all {
            sessions::revoke_all_except(&mut tx, me.user_id, None, now).await?
        } else {
            u64::from(sessions::revoke(&mut tx, me.session_id, me.user_id, now).await?)
        };
        let detail = json!({ "session_id": me.session_id, "all": all, "sessions_revoked": revoked });
        audit::insert(&mut tx, &AuditEvent::by_self(EventType::LoggedOut, me.user_id, client, detail)).await?;
        tx.commit().await.map_err(StoreError::from)?;
        if all {
            self.cache.forget_user(me.user_id);
        } else {
            self.cache.forget_session(me.session_id);
        }
        tracing::info!(user_id = %me.user_id, all, "signed out");
        Ok(())
    }

    /// A page of the caller's live sessions, newest first.
    pub async fn sessions(&self, me: &Principal, cursor: Option<&str>, limit: u32) -> Result<Page<Session>, Error> {
        live_sessions(&self.store, &self.cursors, me.user_id, cursor, limit).await
    }

    /// Revokes one of the caller's own live sessions; any other id is `NotFound`.
    pub async fn revoke_session(&self, me: &Principal, session_id: Uuid, client: &ClientInfo) -> Result<(), Error> {
        let mut tx = self.store.begin().await?;
        if !sessions::revoke(&mut tx, session_id, me.user_id, Timestamp::now()).await? {
            return Err(Error::NotFound);
        }
        let event =
            AuditEvent::by_self(EventType::SessionRevoked, me.user_id, client, json!({ "session_id": session_id }));
        audit::insert(&mut tx, &event).await?;
        tx.commit().await.map_err(StoreError::from)?;
        self.cache.forget_session(session_id);
        Ok(())
    }
}

/// A page of the live sessions of `user_id`, newest first, after the position `cursor` holds.
pub async fn live_sessions(
    store: &Store,
    cursors: &Cursors,
    user_id: Uuid,
    cursor: Option<&str>,
    limit: u32,
) -> Result<Page<Session>, Error> {
    let after: Option<SessionPosition> = cursor.map(|c| cursors.decode(c)).transpose()?;
    let mut conn = store.conn().await?;
    let rows = sessions::list_live(&mut conn, user_id, Timestamp::now(), after.as_ref(), i64::from(limit) + 1).await?;
    Ok(cursors.page(rows, limit, SessionPosition::after))
}
