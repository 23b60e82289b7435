use super::*;

#[test]
fn debug_hides_passwords_in_database_and_redis_urls() {
    let db = DatabaseConfig {
        url: Some("postgres://latchkey:s3cr3t-pa55@db.internal:5432/auth".into()),
        ..DatabaseConfig::default()
    };
    let shown = format!("{db:?}");
    assert!(!shown.contains("s3cr3t-pa55"), "{shown}");
    assert!(
        shown.contains("postgres://latchkey:***@db.internal:5432/auth"),
        "{shown}"
    );
    let redis = RedisConfig {
        url: Some("redis://:hunter2-redis@cache:6379/0".into()),
        ..RedisConfig::default()
    };
    let shown = format!("{redis:?}");
    assert!(!shown.contains("hunter2-redis"), "{shown}");
    assert!(shown.contains("redis://:***@cache:6379/0"), "{shown}");
    assert_eq!(
        without_password("sqlite:/var/lib/l.db"),
        "sqlite:/var/lib/l.db"
    );
    assert_eq!(without_password("redis://cache:6379"), "redis://cache:6379");
    assert_eq!(without_password("postgres://u@h/d"), "postgres://u@h/d");
    assert_eq!(
        without_password("postgres://u:p@ss@h/d?x=a@b"),
        "postgres://u:***@h/d?x=a@b"
    );
    assert_eq!(
        without_password("postgres://u@h/d?sslmode=require&password=s3cr3t&PASS=x"),
        "postgres://u@h/d?sslmode=require&password=***&PASS=***"
    );
    assert_eq!(
        without_password("redis+unix:///run/redis.sock?pass=hunter2&db=1"),
        "redis+unix:///run/redis.sock?pass=***&db=1"
    );
    let target = DatabaseTarget::Postgres("postgres://u:topsecret@h/d".into());
    assert!(!format!("{target:?}").contains("topsecret"));
}
