//! Mail: the templates, and the worker that delivers the outbox over SMTP.

pub mod delivery;
pub mod templates;
