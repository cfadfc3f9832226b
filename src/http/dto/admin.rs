//! The administration routes' JSON shapes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{RegisterRequest, UserView, present, profile_patch};
use crate::domain::audit::AuditEvent;
use crate::domain::listing::UserSort;
use crate::domain::time::Timestamp;
use crate::domain::user::{Role, UserStatus};
use crate::http::extract::Checked;
use crate::service::accounts::RegistrationInput;
use crate::service::profile::ProfilePatchInput;

/// `POST /v1/users`: a registration, plus what only administrators may set.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    #[schema(format = Password)]
    pub password: String,
    pub phone: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub display_name: Option<String>,
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// `user` (the default), `admin` or `owner`; only roles below the caller's own.
    #[schema(value_type = Option<String>, example = "user")]
    pub role: Option<Checked<Role>>,
    /// `active` (the default) or `disabled`.
    #[schema(value_type = Option<String>)]
    pub status: Option<Checked<UserStatus>>,
    pub email_verified: Option<bool>,
}

impl CreateUserRequest {
    /// Splits the request into the registration and the administrative fields.
    pub fn split(self) -> (RegistrationInput, AdminFields) {
        let registration = RegisterRequest {
            username: self.username,
            email: self.email,
            password: self.password,
            phone: self.phone,
            first_name: self.first_name,
            last_name: self.last_name,
            display_name: self.display_name,
            metadata: self.metadata,
        };
        let fields = AdminFields { role: self.role, status: self.status, email_verified: self.email_verified };
        (registration.into(), fields)
    }
}

/// What only administrators may set on a new account.
pub struct AdminFields {
    pub role: Option<Checked<Role>>,
    pub status: Option<Checked<UserStatus>>,
    pub email_verified: Option<bool>,
}

profile_patch! {
    /// `PATCH /v1/users/{ref}`: as `PATCH /v1/me`, plus `role`, `status` and `email_verified`.
    UpdateUserRequest {
        #[schema(value_type = Option<String>)]
        role: Option<Checked<Role>>,
        #[schema(value_type = Option<String>)]
        status: Option<Checked<UserStatus>>,
        email_verified: Option<bool>,
    }
}

/// `GET /v1/users` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserListQuery {
    /// 1 to 200 [default: 50].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page, listed in the same `sort`.
    pub cursor: Option<String>,
    /// A prefix of the username, e-mail address, first, last or display name, any case.
    pub q: Option<String>,
    /// `user`, `admin` or `owner`.
    #[param(value_type = Option<String>)]
    pub role: Option<Checked<Role>>,
    /// `active` or `disabled`.
    #[param(value_type = Option<String>)]
    pub status: Option<Checked<UserStatus>>,
    pub email_verified: Option<bool>,
    /// Only accounts created after this RFC 3339 instant.
    #[param(value_type = Option<String>)]
    pub created_after: Option<Checked<Timestamp>>,
    /// Only accounts created before this RFC 3339 instant.
    #[param(value_type = Option<String>)]
    pub created_before: Option<Checked<Timestamp>>,
    /// `created_at` (the default), `-created_at`, `username` or `-username`. Accounts without a
    /// username sort by their e-mail address.
    #[param(value_type = Option<String>)]
    pub sort: Option<Checked<UserSort>>,
    /// Adds `total`, the size of the filtered set; counting costs a pass over it.
    pub include_total: Option<bool>,
}

/// A page of accounts.
#[derive(Serialize, ToSchema)]
pub struct UserPageView {
    pub items: Vec<UserView>,
    pub next_cursor: Option<String>,
    /// With `include_total=true` only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

/// `GET /v1/audit-events` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only events about this account.
    pub user_id: Option<String>,
    /// Only events of this type, e.g. `login.failed`.
    pub r#type: Option<String>,
    /// 1 to 200 [default: 50].
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// An audit event.
#[derive(Serialize, ToSchema)]
pub struct AuditEventView {
    pub id: String,
    #[schema(example = "login.failed")]
    pub r#type: String,
    pub actor_id: Option<String>,
    pub user_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    #[schema(value_type = Object)]
    pub detail: Value,
    pub created_at: String,
}

impl From<AuditEvent> for AuditEventView {
    fn from(event: AuditEvent) -> Self {
        Self {
            id: event.id.to_string(),
            r#type: event.kind.as_str().to_owned(),
            actor_id: event.actor_id.map(|id| id.to_string()),
            user_id: event.user_id.map(|id| id.to_string()),
            ip: event.ip,
            user_agent: event.user_agent,
            detail: event.detail,
            created_at: event.created_at.to_rfc3339(),
        }
    }
}

/// A page of audit events.
#[derive(Serialize, ToSchema)]
pub struct AuditEventPage {
    pub items: Vec<AuditEventView>,
    pub next_cursor: Option<String>,
}
