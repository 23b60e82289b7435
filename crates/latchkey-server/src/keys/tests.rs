use time::macros::datetime;

use super::*;

#[test]
fn rotating_files_deletes_the_keys_that_left_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = datetime!(2026-06-01 00:00:00 UTC);
    let retire = Duration::hours(1);
    for day in 0..3 {
        let at = t0 + Duration::days(day);
        rotate_file(dir.path(), Algorithm::EdDSA, at, at, retire).unwrap();
    }
    // At day 2: the day-0 key's successor is a day old (retired, deleted);
    // the day-1 key's successor is brand new (still verifies old tokens).
    let left: Vec<i64> = list(dir.path(), Algorithm::EdDSA)
        .unwrap()
        .into_iter()
        .map(|(created, _, _)| created)
        .collect();
    let day = |d: i64| (t0 + Duration::days(d)).unix_timestamp();
    assert_eq!(left, vec![day(1), day(2)]);
    // Another algorithm's files are not touched.
    rotate_file(dir.path(), Algorithm::ES256, t0, t0, retire).unwrap();
    let at = t0 + Duration::days(3);
    rotate_file(dir.path(), Algorithm::EdDSA, at, at, retire).unwrap();
    assert_eq!(list(dir.path(), Algorithm::ES256).unwrap().len(), 1);
    assert_eq!(list(dir.path(), Algorithm::EdDSA).unwrap().len(), 2);
}

#[test]
fn a_key_is_published_before_it_signs_and_retired_after_its_tokens_expire() {
    let t0 = datetime!(2026-06-01 00:00:00 UTC);
    let (ahead, retire) = (Duration::seconds(360), Duration::seconds(960));
    let old = (t0, t0);
    let new = (t0 + Duration::hours(1), t0 + Duration::hours(1) + ahead);
    let keys = [old, new];
    // Published, not signing, until its activation.
    assert_eq!(ring_plan(&keys, new.0, retire), Some((vec![0, 1], 0)));
    assert_eq!(
        ring_plan(&keys, new.1 - Duration::seconds(1), retire),
        Some((vec![0, 1], 0))
    );
    assert_eq!(ring_plan(&keys, new.1, retire), Some((vec![0, 1], 1)));
    // The old key verifies until its last tokens expired.
    assert_eq!(
        ring_plan(&keys, new.1 + retire, retire),
        Some((vec![0, 1], 1))
    );
    assert_eq!(
        ring_plan(&keys, new.1 + retire + Duration::seconds(1), retire),
        Some((vec![1], 0))
    );
    // An emergency key (active at once) supersedes a key still pending,
    // which never signs.
    let emergency = (new.0 + Duration::seconds(10), new.0 + Duration::seconds(10));
    let keys = [old, new, emergency];
    assert_eq!(
        ring_plan(&keys, emergency.0, retire),
        Some((vec![0, 1, 2], 2))
    );
    assert_eq!(ring_plan(&keys, new.1, retire), Some((vec![0, 1, 2], 2)));
    assert_eq!(
        ring_plan(&keys, emergency.1 + retire + Duration::seconds(1), retire),
        Some((vec![2], 0))
    );
    // Only a pending key (a first key rotated in by the CLI): it signs.
    assert_eq!(ring_plan(&[new], t0, retire), Some((vec![0], 0)));
    assert_eq!(ring_plan(&[], t0, retire), None);
}

#[test]
fn files_of_earlier_releases_were_active_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::generate(Algorithm::EdDSA).unwrap();
    fs::write(dir.path().join("1700000000.eddsa.der"), key.pkcs8_der()).unwrap();
    let found = list(dir.path(), Algorithm::EdDSA).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].0, found[0].1), (1_700_000_000, 1_700_000_000));
}

#[test]
fn listed_states_follow_the_ring() {
    let t0 = datetime!(2026-06-01 00:00:00 UTC);
    let (ahead, retire) = (Duration::seconds(360), Duration::seconds(960));
    let old = (t0, t0);
    let new = (t0 + Duration::hours(1), t0 + Duration::hours(1) + ahead);
    let keys = [old, new];
    assert_eq!(
        key_states(&keys, new.0, retire),
        vec![(0, KeyState::Active, None), (1, KeyState::Published, None)]
    );
    assert_eq!(
        key_states(&keys, new.1, retire),
        vec![
            (0, KeyState::Retired, Some(new.1 + retire)),
            (1, KeyState::Active, None)
        ]
    );
    assert_eq!(
        key_states(&keys, new.1 + retire + Duration::seconds(1), retire),
        vec![(1, KeyState::Active, None)]
    );
    assert_eq!(key_states(&[], t0, retire), vec![]);
}
