//! Readiness: whether this node can do its work now, which means its database answers.

use super::error::Error;
use crate::storage::Store;

#[derive(Clone)]
pub struct Health {
    store: Store,
}

impl Health {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// `Ok` when the database answers a trivial query.
    pub async fn ready(&self) -> Result<(), Error> {
        Ok(self.store.ping().await?)
    }
}
