//! Sign-out and the user's view of their own sessions.

use uuid::Uuid;

use super::auth::{Auth, Principal};
use super::error::Error;
use super::session::Session;
use super::time::Timestamp;
use crate::storage::sessions;

impl Auth {
    /// Revokes the caller's session, or with `all` every session of the caller. The access
    /// token stops working at once: every request checks its session.
    pub async fn logout(&self, me: &Principal, all: bool) -> Result<(), Error> {
        let now = Timestamp::now();
        let mut conn = self.store.conn().await?;
        if all {
            sessions::revoke_all_except(&mut conn, me.user_id, None, now).await?;
            self.cache.forget_user(me.user_id);
        } else {
            sessions::revoke(&mut conn, me.session_id, me.user_id, now).await?;
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
    pub async fn revoke_session(&self, me: &Principal, session_id: Uuid) -> Result<(), Error> {
        let mut conn = self.store.conn().await?;
        if sessions::revoke(&mut conn, session_id, me.user_id, Timestamp::now()).await? {
            self.cache.forget_session(session_id);
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }
}
