//! Connections for statements outside an explicit transaction, and the one setting that
//! changes how they work: a transaction-pooling PgBouncer in front of PostgreSQL.
//!
//! In PgBouncer's `pool_mode = transaction` a client holds a server connection only while a
//! transaction is open. sqlx sends each statement in two round trips (parse, then bind and
//! execute), which outside a transaction may reach two different servers, and it names its
//! prepared statements, which PgBouncer before 1.21 neither tracks nor clears. So behind such a
//! pooler (the URL says `pool_mode=transaction`) the store keeps no statement cache, runs every
//! statement inside a transaction, and begins each transaction by dropping whatever prepared
//! statements an earlier client left on the server it was given (`DEALLOCATE ALL`, in the
//! same round trip as `BEGIN`). A [`Conn`] is then such a transaction: reads may simply drop
//! it (it rolls back); writes end with [`Conn::finish`], which commits.

use std::ops::{Deref, DerefMut};

use sqlx::AnyConnection;

use super::pool::{Lease, State};
use super::sql::Backend;
use super::{StoreError, Tx};

/// How connections reach the database: directly (or through a session-pooling PgBouncer),
/// or through a transaction-pooling one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Direct,
    Transaction,
}

/// The URL parameter that names the pooler's mode, after PgBouncer's own setting.
const POOL_MODE: &str = "pool_mode";

impl Pooling {
    /// How a transaction begins on PostgreSQL.
    pub(super) fn begin(self) -> &'static str {
        match self {
            Self::Direct => "BEGIN",
            Self::Transaction => "BEGIN; DEALLOCATE ALL",
        }
    }

    /// How a connection for reads begins behind a transaction pooler: read-only, so that a
    /// write through it fails loudly instead of being rolled back unseen.
    pub(super) const READ_BEGIN: &str = "BEGIN READ ONLY; DEALLOCATE ALL";

    /// Reads and removes `pool_mode` from `url`: `transaction`, `session` (the same as none) or
    /// absent. Answers the URL the driver is given: behind a transaction pooler, with sqlx's
    /// statement cache turned off.
    pub fn from_url(url: &str, backend: Backend) -> Result<(String, Self), StoreError> {
        let invalid = |why: &str| StoreError::InvalidUrl(why.to_owned());
        let Ok(mut parsed) = url::Url::parse(url) else { return Ok((url.to_owned(), Self::Direct)) };
        let (modes, kept): (Vec<_>, Vec<_>) = parsed
            .query_pairs()
            .map(|(name, value)| (name.into_owned(), value.into_owned()))
            .partition(|(name, _)| name == POOL_MODE);
        if modes.len() > 1 {
            return Err(invalid("pool_mode is given more than once"));
        }
        let pooling = match modes.first().map(|(_, mode)| mode.as_str()) {
            None => return Ok((url.to_owned(), Self::Direct)),
            Some("session") => Self::Direct,
            Some("transaction") if backend == Backend::Postgres => Self::Transaction,
            Some("transaction") => return Err(invalid("pool_mode=transaction is for PostgreSQL only")),
            Some(_) => return Err(invalid("pool_mode must be transaction or session")),
        };
        let mut pairs = kept;
        if pooling == Self::Transaction {
            pairs.push(("statement-cache-capacity".into(), "0".into()));
        }
        parsed.set_query(None);
        if !pairs.is_empty() {
            parsed.query_pairs_mut().extend_pairs(&pairs);
        }
        Ok((parsed.into(), pooling))
    }
}

/// A connection for statements outside an explicit transaction (a transaction behind a
/// transaction pooler). It is used as an [`AnyConnection`].
#[derive(Debug)]
pub struct Conn(Held);

#[derive(Debug)]
enum Held {
    Pooled(Lease),
    Transaction(Tx),
}

impl Conn {
    pub(super) fn pooled(conn: Lease) -> Self {
        Self(Held::Pooled(conn))
    }

    pub(super) fn transaction(tx: Tx) -> Self {
        Self(Held::Transaction(tx))
    }

    /// Makes what was written through this connection durable: each statement already is,
    /// except behind a transaction pooler, where this commits. Every write ends with it.
    pub async fn finish(self) -> Result<(), StoreError> {
        match self.0 {
            // Its statements ended well: the pool may hand it out again without a ping.
            Held::Pooled(mut lease) => {
                lease.set_state(State::Settled);
                Ok(())
            }
            Held::Transaction(tx) => Ok(tx.commit().await?),
        }
    }
}

impl Deref for Conn {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        match &self.0 {
            Held::Pooled(conn) => conn,
            Held::Transaction(tx) => tx,
        }
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        match &mut self.0 {
            Held::Pooled(conn) => conn,
            Held::Transaction(tx) => tx,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_pooling_is_read_from_the_url_and_turns_the_statement_cache_off() {
        let (url, pooling) =
            Pooling::from_url("postgres://u@h:6432/db?sslmode=disable&pool_mode=transaction", Backend::Postgres)
                .unwrap();
        assert_eq!(pooling, Pooling::Transaction);
        assert_eq!(url, "postgres://u@h:6432/db?sslmode=disable&statement-cache-capacity=0");
    }

    #[test]
    fn session_pooling_and_no_mode_connect_directly() {
        for url in ["postgres://u@h/db", "postgres://u@h/db?pool_mode=session"] {
            let (kept, pooling) = Pooling::from_url(url, Backend::Postgres).unwrap();
            assert_eq!((kept.as_str(), pooling), ("postgres://u@h/db", Pooling::Direct));
        }
    }

    #[test]
    fn other_modes_other_databases_and_a_repeated_mode_are_refused() {
        assert!(Pooling::from_url("postgres://u@h/db?pool_mode=statement", Backend::Postgres).is_err());
        assert!(Pooling::from_url("mysql://u@h/db?pool_mode=transaction", Backend::MySql).is_err());
        let twice = "postgres://u@h/db?pool_mode=transaction&pool_mode=session";
        assert!(Pooling::from_url(twice, Backend::Postgres).is_err());
    }

    #[test]
    fn the_rest_of_the_url_reaches_the_driver_as_it_was_written() {
        let (url, _) = Pooling::from_url(
            "postgres://u:p%40ss%2Fw%20rd@h/db?host=/var/run/postgresql&pool_mode=transaction",
            Backend::Postgres,
        )
        .unwrap();
        let parsed = url::Url::parse(&url).unwrap();
        assert_eq!(parsed.password(), Some("p%40ss%2Fw%20rd"));
        let pairs: Vec<(String, String)> =
            parsed.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
        let expected = [("host", "/var/run/postgresql"), ("statement-cache-capacity", "0")];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_owned(), v.to_owned())));
    }
}
