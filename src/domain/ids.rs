//! Identifiers: UUIDv7, time-ordered so that primary keys index well and sort by creation.

use uuid::Uuid;

/// A fresh UUIDv7.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// Parses an id read from storage or a path; `None` when it is not a UUID.
pub fn parse_id(text: &str) -> Option<Uuid> {
    Uuid::try_parse(text).ok()
}
