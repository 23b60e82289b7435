//! Roles and permissions: what an administrator may do.
//!
//! Guarantees: the permission list is closed (an unknown name is refused,
//! never stored); role names are short lower-case words, so they are safe in
//! token claims, logs and the CLI; the built-in [`ADMIN_ROLE`] holds every
//! permission whatever is stored for it, and cannot be deleted.

use time::OffsetDateTime;

/// The built-in role holding every permission.
pub const ADMIN_ROLE: &str = "admin";

/// Longest role name (`^[a-z][a-z0-9_-]{0,63}$`).
pub const MAX_ROLE_NAME: usize = 64;

/// Longest role description, in characters.
pub const MAX_ROLE_DESCRIPTION: usize = 500;

/// Most roles one user may hold (bounds the token's `roles` claim).
pub const MAX_ROLES_PER_USER: usize = 32;

/// Most roles that may exist.
pub const MAX_ROLES: usize = 200;

/// What an administrator may do (API.md "Administration").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Permission {
    /// List, search and read accounts.
    UsersRead,
    /// Create, change, disable, enable, unlock, sign out and delete accounts.
    UsersWrite,
    /// Set the roles of an account.
    RolesAssign,
    /// List, create and delete roles.
    RolesWrite,
    /// Read every account's security events.
    AuditRead,
    /// List and rotate the signing keys.
    KeysRotate,
    /// Manage event delivery (dead letters).
    EventsManage,
    /// Manage webhooks.
    WebhooksWrite,
    /// Change credit balances.
    CreditsWrite,
}

impl Permission {
    /// Every permission, in API.md's order.
    pub const ALL: [Self; 9] = [
        Self::UsersRead,
        Self::UsersWrite,
        Self::RolesAssign,
        Self::RolesWrite,
        Self::AuditRead,
        Self::KeysRotate,
        Self::EventsManage,
        Self::WebhooksWrite,
        Self::CreditsWrite,
    ];

    /// The stable name (`users:read`, ...), stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UsersRead => "users:read",
            Self::UsersWrite => "users:write",
            Self::RolesAssign => "roles:assign",
            Self::RolesWrite => "roles:write",
            Self::AuditRead => "audit:read",
            Self::KeysRotate => "keys:rotate",
            Self::EventsManage => "events:manage",
            Self::WebhooksWrite => "webhooks:write",
            Self::CreditsWrite => "credits:write",
        }
    }

    /// The permission named `text`, if it is one.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }
}

/// A set of permissions (at most nine: a bit each).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Permissions(u16);

impl Permissions {
    /// Every permission.
    pub fn all() -> Self {
        Self::ALL_BITS
    }

    const ALL_BITS: Self = Self((1 << Permission::ALL.len()) - 1);

    fn bit(p: Permission) -> u16 {
        1 << (p as u16)
    }

    /// Adds `p`.
    pub fn insert(&mut self, p: Permission) {
        self.0 |= Self::bit(p);
    }

    /// Whether `p` is in the set.
    pub fn contains(self, p: Permission) -> bool {
        self.0 & Self::bit(p) != 0
    }

    /// The union of both sets.
    #[must_use]
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// The permissions in the set, in API.md's order.
    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL
            .into_iter()
            .filter(move |p| self.contains(*p))
    }

    /// The set named by `names`; the first unknown name is the error.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Self, &'a str> {
        let mut set = Self::default();
        for name in names {
            set.insert(Permission::parse(name).ok_or(name)?);
        }
        Ok(set)
    }

    /// The names, space-separated (the stored form).
    pub fn encode(self) -> String {
        self.iter()
            .map(Permission::as_str)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The set a stored text names; names no longer known are skipped (a
    /// stored row never grants more than the permissions this build knows).
    pub fn decode(text: &str) -> Self {
        let mut set = Self::default();
        for p in text.split_whitespace().filter_map(Permission::parse) {
            set.insert(p);
        }
        set
    }
}

/// A stored role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Its name (see [`check_role_name`]).
    pub name: String,
    /// What it is for (may be empty).
    pub description: String,
    /// What it grants; [`ADMIN_ROLE`] grants every permission.
    pub permissions: Permissions,
    /// Built in: cannot be deleted.
    pub builtin: bool,
    /// When it was created.
    pub created_at: OffsetDateTime,
}

impl Role {
    /// What the role grants: everything for [`ADMIN_ROLE`], whatever its row says.
    pub fn grants(&self) -> Permissions {
        if self.name == ADMIN_ROLE {
            Permissions::all()
        } else {
            self.permissions
        }
    }
}

/// Whether `name` is a valid role name: `^[a-z][a-z0-9_-]{0,63}$`.
pub fn check_role_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= MAX_ROLE_NAME
        && bytes[0].is_ascii_lowercase()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'_' || *b == b'-')
}

/// The role names of a stored space-separated list, sorted as stored.
pub fn decode_role_names(text: Option<&str>) -> Vec<String> {
    text.map(|t| t.split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_round_trip_and_unknown_names_are_refused() {
        for p in Permission::ALL {
            assert_eq!(Permission::parse(p.as_str()), Some(p));
        }
        assert_eq!(Permission::parse("users:READ"), None);
        assert_eq!(Permission::parse("users:*"), None);
        let set = Permissions::parse(["users:read", "keys:rotate"]).unwrap();
        assert_eq!(set.encode(), "users:read keys:rotate");
        assert_eq!(Permissions::decode(&set.encode()), set);
        assert_eq!(Permissions::parse(["users:read", "root"]), Err("root"));
        assert_eq!(Permissions::all().iter().count(), 9);
        assert_eq!(
            Permissions::decode("users:read gone:later"),
            Permissions::parse(["users:read"]).unwrap(),
            "a name this build does not know grants nothing"
        );
    }

    #[test]
    fn role_names_follow_the_pattern() {
        for good in ["admin", "a", "support-tier_2", &"a".repeat(64)] {
            assert!(check_role_name(good), "{good}");
        }
        for bad in [
            "",
            "Admin",
            "1admin",
            "-x",
            "a b",
            "a:b",
            "é",
            "a\0",
            &"a".repeat(65),
        ] {
            assert!(!check_role_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_admin_role_grants_everything_whatever_is_stored() {
        let role = Role {
            name: ADMIN_ROLE.into(),
            description: String::new(),
            permissions: Permissions::default(),
            builtin: true,
            created_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert_eq!(role.grants(), Permissions::all());
    }
}
