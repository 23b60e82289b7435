//! The admin API under `/v1/admin` (API.md "Administration"): every handler
//! passes the caller to the admin service, which checks the caller's
//! **current** permissions before anything else.

pub mod audit;
pub mod dead_letters;
pub mod keys;
pub mod roles;
pub mod users;
pub mod webhooks;

use latchkey_core::access::{Permission, Role};
use latchkey_core::auth::AdminUser;
use serde::Serialize;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::routes::auth::UserBody;

/// The id in a resource's path: anything that is not a UUID names nothing
/// (`404`, as an unknown id).
pub(crate) fn path_id(id: &str) -> Result<uuid::Uuid, ApiError> {
    id.parse().map_err(|_| ApiError::NotFound)
}

/// A linked social-login identity (none exist until social login ships).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentityBody {
    /// The provider's name.
    pub provider: String,
    /// The account's id at the provider.
    pub subject: String,
    /// The address the provider gave, if any.
    pub email: Option<String>,
}

/// The `AdminUser` body of API.md: `User` plus what an administrator sees.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdminUserBody {
    /// The user as they see themselves.
    #[serde(flatten)]
    pub user: UserBody,
    /// Whether the account is disabled.
    pub disabled: bool,
    /// When it was disabled (RFC 3339).
    #[serde(with = "latchkey_core::time_fmt::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub disabled_at: Option<OffsetDateTime>,
    /// Sign-in locked until then (RFC 3339), while a lock is in force.
    #[serde(with = "latchkey_core::time_fmt::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub locked_until: Option<OffsetDateTime>,
    /// The last successful sign-in (RFC 3339).
    #[serde(with = "latchkey_core::time_fmt::rfc3339_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<OffsetDateTime>,
    /// Failed sign-ins since the last success.
    pub failed_logins: i32,
    /// Live sessions.
    pub session_count: u32,
    /// Linked social-login identities.
    pub identities: Vec<IdentityBody>,
}

impl From<&AdminUser> for AdminUserBody {
    fn from(a: &AdminUser) -> Self {
        Self {
            user: UserBody::from(&a.user),
            disabled: a.user.disabled_at.is_some(),
            disabled_at: a.user.disabled_at,
            locked_until: a.locked_until,
            last_login_at: a.user.last_login_at,
            failed_logins: a.user.failed_login_count,
            session_count: a.session_count,
            identities: Vec::new(),
        }
    }
}

/// The `Role` body of API.md.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RoleBody {
    /// `^[a-z][a-z0-9_-]{0,63}$`.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// The permissions it grants (every one for `admin`).
    pub permissions: Vec<&'static str>,
    /// Built in (cannot be deleted).
    pub builtin: bool,
    /// RFC 3339.
    #[serde(with = "latchkey_core::time_fmt::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<&Role> for RoleBody {
    fn from(r: &Role) -> Self {
        Self {
            name: r.name.clone(),
            description: r.description.clone(),
            permissions: r.grants().iter().map(Permission::as_str).collect(),
            builtin: r.builtin,
            created_at: r.created_at,
        }
    }
}
