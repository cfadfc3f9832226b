//! Sign-out and the user's view of their own sessions.

use uuid::Uuid;

use serde_json::json;

use super::{Auth, Principal};
use crate::domain::audit::ClientInfo;
use crate::domain::audit::{AuditEvent, EventType};
use crate::domain::session::Session;
use crate::domain::time::Timestamp;
use crate::service::error::Error;
use crate::storage::{StoreError, audit, sessions};

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

    /// The caller's live sessions, newest first.
    pub async fn sessions(&self, me: &Principal) -> Result<Vec<Session>, Error> {
        let mut conn = self.store.conn().await?;
        Ok(sessions::list_live(&mut conn, me.user_id, Timestamp::now()).await?)
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
