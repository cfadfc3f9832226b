//! A transaction on a connection of the [`Pool`](super::pool::Pool): sqlx's own transaction
//! control (its `BEGIN`, `COMMIT` and `ROLLBACK`, and how each is made safe to drop halfway),
//! on a connection that this type owns, so that it can be held and passed on like any value.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

use sqlx::{Any, AnyConnection, Database, TransactionManager as _};

use super::pool::{Lease, State};

type Manager = <Any as Database>::TransactionManager;

/// An open transaction. Dropped before [`Tx::commit`], it rolls back: sqlx queues the
/// `ROLLBACK` on the connection, and the pool's ping sends it before anyone else uses the
/// connection.
#[derive(Debug)]
pub struct Tx {
    /// `Settled` once committed or rolled back; open until then.
    lease: Lease,
}

impl Tx {
    /// Begins with `statement` (`BEGIN IMMEDIATE`, say), or the driver's own `BEGIN`.
    pub(super) async fn begin(mut lease: Lease, statement: Option<&'static str>) -> Result<Self, sqlx::Error> {
        // Until the server is seen to have begun, it may have begun unseen: see `State::Discard`.
        lease.set_state(State::Discard);
        Manager::begin(&mut lease, statement.map(Cow::Borrowed)).await?;
        lease.set_state(State::Unknown);
        Ok(Self { lease })
    }

    /// Makes everything written through the transaction durable, together.
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        Manager::commit(&mut self.lease).await?;
        self.lease.set_state(State::Settled);
        Ok(())
    }

    /// Undoes everything written through the transaction.
    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        Manager::rollback(&mut self.lease).await?;
        self.lease.set_state(State::Settled);
        Ok(())
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.lease.state() != State::Settled {
            Manager::start_rollback(&mut self.lease);
        }
    }
}

impl Deref for Tx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.lease
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.lease
    }
}
