//! Conformance cases for roles, their holders, the one-administrator guard
//! and the admin listing of accounts.

// A test suite living in a library: failing loudly is its job.
#![allow(
    clippy::missing_panics_doc,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use latchkey_core::access::{Permission, Permissions, Role, ADMIN_ROLE, MAX_ROLES_PER_USER};
use latchkey_core::account::{normalize_email, NewUser};
use latchkey_core::audit::{EventKind, SecurityEvent};
use latchkey_core::ports::{
    AdminGuarded, ImportedAccount, NewAccount, RoleChange, Store, UserSearch,
};
use time::macros::datetime;
use time::OffsetDateTime;
use uuid::Uuid;

const T0: OffsetDateTime = datetime!(2026-07-01 09:00:00 UTC);

async fn user(store: &dyn Store, email: &str, name: Option<&str>) -> Uuid {
    let new = NewUser {
        id: Uuid::now_v7(),
        email: email.to_owned(),
        email_normalized: normalize_email(email),
        name: name.map(str::to_owned),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        created_at: T0,
    };
    store.create_user(&new).await.unwrap().id
}

fn role(name: &str, permissions: &[Permission]) -> Role {
    let mut set = Permissions::default();
    for p in permissions {
        set.insert(*p);
    }
    Role {
        name: name.to_owned(),
        description: format!("{name} role"),
        permissions: set,
        builtin: false,
        created_at: T0,
    }
}

fn event(user_id: Uuid, kind: EventKind) -> SecurityEvent {
    SecurityEvent {
        id: Uuid::now_v7(),
        user_id: Some(user_id),
        kind,
        created_at: T0,
        session_id: None,
        ip: None,
        user_agent: None,
        actor_id: Some(user_id),
        details: Some("{}".into()),
    }
}

async fn set(store: &dyn Store, id: Uuid, roles: &[&str]) -> AdminGuarded<Vec<String>> {
    let roles: Vec<String> = roles.iter().map(|r| (*r).to_owned()).collect();
    store
        .set_user_roles(id, RoleChange::Replace(&roles), T0, &|_, _| None)
        .await
        .unwrap()
}

/// The built-in role exists after migration; names are unique; only
/// non-built-in roles can be deleted, with their holdings.
pub async fn roles_round_trip_and_names_are_unique(store: &dyn Store) {
    let roles = store.roles().await.unwrap();
    assert_eq!(roles.len(), 1);
    assert_eq!(roles[0].name, ADMIN_ROLE);
    assert!(roles[0].builtin);
    assert_eq!(roles[0].grants(), Permissions::all());

    let ops = role("ops", &[Permission::UsersRead, Permission::KeysRotate]);
    let by = user(store, "by@example.com", None).await;
    let created = event(by, EventKind::RoleCreated);
    assert!(store.create_role(&ops, Some(&created)).await.unwrap());
    assert!(!store.create_role(&role("ops", &[]), None).await.unwrap());
    let roles = store.roles().await.unwrap();
    assert_eq!(roles[1], ops, "round trip, exactly");
    let events = store.user_events(by, 10).await.unwrap();
    assert_eq!(events, vec![created], "the event is written with the role");

    // Two creations of one name at once: exactly one wins.
    let a = role("race", &[]);
    let (x, y) = tokio::join!(store.create_role(&a, None), store.create_role(&a, None));
    assert_eq!([x.unwrap(), y.unwrap()].iter().filter(|c| **c).count(), 1);

    let holder = user(store, "holder@example.com", None).await;
    assert_eq!(
        set(store, holder, &["ops"]).await,
        AdminGuarded::Done(vec![])
    );
    assert_eq!(store.delete_role(ADMIN_ROLE, None).await.unwrap(), None);
    assert_eq!(store.delete_role("nope", None).await.unwrap(), None);
    assert_eq!(
        store.delete_role("ops", None).await.unwrap(),
        Some(vec![holder])
    );
    assert!(store
        .user_by_id(holder)
        .await
        .unwrap()
        .unwrap()
        .roles
        .is_empty());
    assert_eq!(store.roles().await.unwrap().len(), 2, "admin and race");
}

/// Roles are read with the account, sorted; what they grant is their union;
/// an unknown role or account writes nothing.
pub async fn user_roles_come_with_the_account(store: &dyn Store) {
    let id = user(store, "u@example.com", None).await;
    store
        .create_role(&role("reader", &[Permission::UsersRead]), None)
        .await
        .unwrap();
    store
        .create_role(&role("keys", &[Permission::KeysRotate]), None)
        .await
        .unwrap();
    assert_eq!(
        set(store, id, &["reader", "keys"]).await,
        AdminGuarded::Done(vec![])
    );
    let u = store.user_by_id(id).await.unwrap().unwrap();
    assert_eq!(u.roles, ["keys", "reader"]);
    let by_email = store.user_by_email("u@example.com").await.unwrap().unwrap();
    assert_eq!(by_email.roles, u.roles);
    let access = store.access(id).await.unwrap().unwrap();
    assert!(!access.disabled);
    assert!(access.permissions.contains(Permission::UsersRead));
    assert!(access.permissions.contains(Permission::KeysRotate));
    assert!(!access.permissions.contains(Permission::UsersWrite));

    assert_eq!(
        set(store, id, &["reader", "nope"]).await,
        AdminGuarded::UnknownRole("nope".into())
    );
    assert_eq!(
        store.user_by_id(id).await.unwrap().unwrap().roles,
        ["keys", "reader"],
        "nothing written"
    );
    assert_eq!(
        set(store, Uuid::now_v7(), &["reader"]).await,
        AdminGuarded::NoUser
    );
    assert_eq!(store.access(Uuid::now_v7()).await.unwrap(), None);
    assert_eq!(
        set(store, id, &[]).await,
        AdminGuarded::Done(vec!["keys".into(), "reader".into()])
    );
    assert_eq!(
        store.access(id).await.unwrap().unwrap().permissions,
        Permissions::default()
    );
}

/// Grants and revokes racing on one account are each applied to the roles
/// held at that moment: none is lost (no read-modify-write), and a grant
/// past [`MAX_ROLES_PER_USER`] is refused with nothing written.
pub async fn racing_grants_and_revokes_lose_nothing(store: &dyn Store) {
    let names: Vec<String> = (0..8).map(|i| format!("r{i}")).collect();
    for name in &names {
        assert!(store.create_role(&role(name, &[]), None).await.unwrap());
    }
    let u = user(store, "u@example.com", None).await;
    set(store, u, &["r0", "r1", "r2", "r3"]).await;
    let grants = names[4..]
        .iter()
        .map(|r| store.set_user_roles(u, RoleChange::Grant(r), T0, &|_, _| None));
    let revokes = names[..2]
        .iter()
        .map(|r| store.set_user_roles(u, RoleChange::Revoke(r), T0, &|_, _| None));
    let outcomes = futures::future::join_all(grants.chain(revokes)).await;
    for outcome in &outcomes {
        assert!(matches!(outcome, Ok(AdminGuarded::Done(_))), "{outcome:?}");
    }
    let held = store.user_by_id(u).await.unwrap().unwrap().roles;
    assert_eq!(held, names[2..].to_vec());

    let many: Vec<String> = (0..MAX_ROLES_PER_USER)
        .map(|i| format!("m{i:02}"))
        .collect();
    for name in &many {
        assert!(store.create_role(&role(name, &[]), None).await.unwrap());
    }
    set(
        store,
        u,
        &many.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(
        store
            .set_user_roles(u, RoleChange::Grant("r0"), T0, &|_, _| None)
            .await
            .unwrap(),
        AdminGuarded::TooManyRoles
    );
    assert_eq!(store.user_by_id(u).await.unwrap().unwrap().roles, many);
}

/// No change leaves no enabled administrator, however changes race.
pub async fn the_last_admin_is_kept_under_races(store: &dyn Store) {
    let a = user(store, "a@example.com", None).await;
    let b = user(store, "b@example.com", None).await;
    let plain = user(store, "p@example.com", None).await;
    for _ in 0..10 {
        set(store, a, &[ADMIN_ROLE]).await;
        set(store, b, &[ADMIN_ROLE]).await;
        let (x, y) = tokio::join!(set(store, a, &[]), set(store, b, &[]));
        let done = [&x, &y]
            .iter()
            .filter(|o| matches!(o, AdminGuarded::Done(_)))
            .count();
        assert_eq!(done, 1, "{x:?} {y:?}");
        assert!([&x, &y].iter().any(|o| **o == AdminGuarded::LastAdmin));
    }
    // Now one of them is the last admin.
    let last = if store.user_by_id(a).await.unwrap().unwrap().roles.is_empty() {
        b
    } else {
        a
    };
    let other = if last == a { b } else { a };
    let disabled = event(last, EventKind::AccountDisabled);
    assert_eq!(
        store.disable_user(last, T0, &disabled).await.unwrap(),
        AdminGuarded::LastAdmin
    );
    assert!(store
        .user_by_id(last)
        .await
        .unwrap()
        .unwrap()
        .disabled_at
        .is_none());
    assert!(
        store.user_events(last, 10).await.unwrap().is_empty(),
        "nothing written"
    );
    // A disabled holder does not count.
    set(store, other, &[ADMIN_ROLE]).await;
    let e = event(other, EventKind::AccountDisabled);
    assert_eq!(
        store.disable_user(other, T0, &e).await.unwrap(),
        AdminGuarded::Done(())
    );
    assert_eq!(set(store, last, &[]).await, AdminGuarded::LastAdmin);
    assert!(store.access(other).await.unwrap().unwrap().disabled);
    // Plain accounts are never guarded.
    let e = event(plain, EventKind::AccountDisabled);
    assert_eq!(
        store.disable_user(plain, T0, &e).await.unwrap(),
        AdminGuarded::Done(())
    );
    let stamp = store
        .user_by_id(plain)
        .await
        .unwrap()
        .unwrap()
        .security_stamp;
    let again = event(plain, EventKind::AccountDisabled);
    store
        .disable_user(plain, T0 + time::Duration::hours(1), &again)
        .await
        .unwrap();
    let u = store.user_by_id(plain).await.unwrap().unwrap();
    assert_eq!(u.disabled_at, Some(T0), "the first disable time stays");
    assert!(u.security_stamp > stamp, "every disable moves the stamp");
    let enabled = event(plain, EventKind::AccountEnabled);
    assert!(store.enable_user(plain, T0, &enabled).await.unwrap());
    assert!(store
        .user_by_id(plain)
        .await
        .unwrap()
        .unwrap()
        .disabled_at
        .is_none());
    assert!(!store
        .enable_user(Uuid::now_v7(), T0, &enabled)
        .await
        .unwrap());
    assert_eq!(
        store
            .disable_user(Uuid::now_v7(), T0, &disabled)
            .await
            .unwrap(),
        AdminGuarded::NoUser
    );
}

/// Listing: id order, after a position, and each search alike on every
/// engine (a name prefix by characters, case-sensitive, no wildcards).
pub async fn account_search_is_the_same_everywhere(store: &dyn Store) {
    let zoe = user(store, "Zoe@Example.com", Some("Zoë Ämber")).await;
    let zed = user(store, "zed@example.com", Some("Zed_%")).await;
    let none = user(store, "none@example.com", None).await;
    let ids = |rows: Vec<latchkey_core::ports::AdminUserRow>| {
        rows.into_iter().map(|r| r.user.id).collect::<Vec<_>>()
    };
    let all = store
        .search_users(&UserSearch::All, None, 10, T0)
        .await
        .unwrap();
    assert_eq!(ids(all), [zoe, zed, none]);
    let page = store
        .search_users(&UserSearch::All, Some(zoe), 1, T0)
        .await
        .unwrap();
    assert_eq!(ids(page), [zed]);
    let email = UserSearch::Email(normalize_email("ZOE@example.com"));
    assert_eq!(
        ids(store.search_users(&email, None, 10, T0).await.unwrap()),
        [zoe]
    );
    let id = UserSearch::Id(none);
    let row = store.search_users(&id, None, 10, T0).await.unwrap();
    assert_eq!(row[0].session_count, 0);
    assert_eq!(ids(row), [none]);
    for (prefix, expect) in [
        ("Zoë", vec![zoe]),
        ("Zoë Ä", vec![zoe]),
        ("Z", vec![zoe, zed]),
        ("zoë", vec![]),
        ("Zed_%", vec![zed]),
        ("Ze%", vec![]),
        ("Z_", vec![]),
        ("Zoë Ämber", vec![zoe]),
        ("Zoë Ämberx", vec![]),
        ("Zo", vec![zoe]),
        ("Zf", vec![]),
        ("\u{10FFFF}", vec![]),
    ] {
        let search = UserSearch::NamePrefix(prefix.to_owned());
        assert_eq!(
            ids(store.search_users(&search, None, 10, T0).await.unwrap()),
            expect,
            "{prefix}"
        );
    }
    let after = UserSearch::NamePrefix("Z".to_owned());
    assert_eq!(
        ids(store.search_users(&after, Some(zoe), 10, T0).await.unwrap()),
        [zed],
        "a search goes on after a position"
    );
}

fn imported(email: &str, roles: &[&str]) -> ImportedAccount {
    let id = Uuid::now_v7();
    ImportedAccount {
        user: NewUser {
            id,
            email: email.to_owned(),
            email_normalized: normalize_email(email),
            name: None,
            password_hash: "$2b$04$abcdefghijklmnopqrstuu5Ahz1NEJ0Xbd4Rt4L1jBc3sKlHaEpPi".into(),
            created_at: T0,
        },
        email_verified: true,
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        event: event(id, EventKind::AccountCreated),
    }
}

/// Import: one transaction per batch, idempotent on the address.
pub async fn imports_skip_taken_addresses_and_a_bad_role_writes_nothing(store: &dyn Store) {
    user(store, "taken@example.com", None).await;
    let batch = [
        imported("new@example.com", &[ADMIN_ROLE]),
        imported("TAKEN@example.com", &[]),
    ];
    assert_eq!(
        store.import_accounts(&batch).await.unwrap(),
        AdminGuarded::Done(1)
    );
    let new = store
        .user_by_email("new@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(new.roles, vec![ADMIN_ROLE.to_owned()]);
    assert_eq!(new.email_verified_at, Some(T0));
    assert!(new.password_hash.starts_with("$2b$04$"));
    assert_eq!(store.user_events(new.id, 5).await.unwrap().len(), 1);
    // Again: nothing new.
    assert_eq!(
        store.import_accounts(&batch).await.unwrap(),
        AdminGuarded::Done(0)
    );
    // A role that does not exist: the whole batch is refused.
    let bad = [
        imported("one@example.com", &[]),
        imported("two@example.com", &["ghost"]),
    ];
    assert_eq!(
        store.import_accounts(&bad).await.unwrap(),
        AdminGuarded::UnknownRole("ghost".into())
    );
    assert!(store
        .user_by_email("one@example.com")
        .await
        .unwrap()
        .is_none());
}

/// Creation writes the account, roles and event together (a taken address
/// is the unique constraint's conflict); deletion takes what the account
/// holds and keeps the one administrator.
pub async fn accounts_are_created_whole_and_deleted_with_what_they_hold(store: &dyn Store) {
    let root = user(store, "root@example.com", None).await;
    let outcome = store
        .set_user_roles(
            root,
            RoleChange::Replace(&[ADMIN_ROLE.to_owned()]),
            T0,
            &|_, _| None,
        )
        .await
        .unwrap();
    assert!(matches!(outcome, AdminGuarded::Done(_)));
    let new = imported("made@example.com", &[]).user;
    let made_event = event(new.id, EventKind::AccountCreated);
    let ghost = ["ghost".to_owned()];
    let account = NewAccount {
        user: &new,
        email_verified: false,
        roles: &ghost,
        invite: None,
        event: &made_event,
    };
    assert_eq!(
        store.create_account(&account).await.unwrap(),
        AdminGuarded::UnknownRole("ghost".into())
    );
    assert!(store.user_by_id(new.id).await.unwrap().is_none());
    let account = NewAccount {
        roles: &[],
        ..account
    };
    assert_eq!(
        store.create_account(&account).await.unwrap(),
        AdminGuarded::Done(())
    );
    let twin = NewUser {
        id: Uuid::now_v7(),
        email: "MADE@example.com".into(),
        ..new.clone()
    };
    let err = store
        .create_account(&NewAccount {
            user: &twin,
            ..account
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, latchkey_core::ports::StoreError::Conflict { .. }),
        "{err:?}"
    );

    let by_root = event(root, EventKind::AccountDeleted);
    assert_eq!(
        store.delete_user(root, Some(&by_root)).await.unwrap(),
        AdminGuarded::LastAdmin
    );
    assert_eq!(
        store.delete_user(new.id, Some(&by_root)).await.unwrap(),
        AdminGuarded::Done(())
    );
    assert!(store.user_by_id(new.id).await.unwrap().is_none());
    assert!(store.user_events(new.id, 5).await.unwrap().is_empty());
    let kept = store.user_events(root, 5).await.unwrap();
    assert!(kept.iter().any(|e| e.kind == EventKind::AccountDeleted));
    assert_eq!(
        store.delete_user(new.id, None).await.unwrap(),
        AdminGuarded::NoUser
    );
}
