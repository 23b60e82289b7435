//! Tells the tests whether PostgreSQL is configured: without
//! `LATCHKEY_TEST_POSTGRES_URL` at build time, `cfg(latchkey_postgres_unset)` is
//! set and every PostgreSQL-only test carries
//! `#[cfg_attr(latchkey_postgres_unset, ignore = "...")]`, so the test output
//! lists it as ignored with the reason instead of a pass that ran nothing.
//! CI sets the variable and fails on any ignored test.

fn main() {
    println!("cargo::rerun-if-env-changed=LATCHKEY_TEST_POSTGRES_URL");
    println!("cargo::rustc-check-cfg=cfg(latchkey_postgres_unset)");
    if std::env::var_os("LATCHKEY_TEST_POSTGRES_URL").is_none_or(|v| v.is_empty()) {
        println!("cargo::rustc-cfg=latchkey_postgres_unset");
    }
}
