//! Statistical check that an unknown email and a wrong password cost the same:
//! interleaved samples, medians compared within a deliberately loose bound (the
//! precise figures live in bench/). Production Argon2 parameters, so hashing
//! dominates as it does in real use.

use std::time::{Duration, Instant};

use latchkey_testkit::app::TestApp;

const SAMPLES: usize = 15;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_and_wrong_password_take_the_same_time() {
    let app = TestApp::builder()
        .configure(|c| {
            let defaults = latchkey_server::config::PasswordConfig::default();
            c.password.argon2_memory_kib = defaults.argon2_memory_kib;
            c.password.argon2_iterations = defaults.argon2_iterations;
            // Many failures for one account must not be throttled by anything here.
            c.sessions.max_per_user = 1000;
            c.rate_limit.enabled = false;
            c.lockout.threshold = 0;
        })
        .spawn()
        .await;
    app.create_user("timing@example.com", "correct horse battery staple", true)
        .await;
    // Warm up both paths (the dummy hash is computed lazily once).
    for email in ["nobody@example.com", "timing@example.com"] {
        assert_eq!(app.login(email, "wrong password here").await.status(), 401);
    }
    let (mut unknown, mut wrong) = (Vec::new(), Vec::new());
    for _ in 0..SAMPLES {
        for (email, bucket) in [
            ("nobody@example.com", &mut unknown),
            ("timing@example.com", &mut wrong),
        ] {
            let started = Instant::now();
            let r = app.login(email, "wrong password here").await;
            bucket.push(started.elapsed());
            assert_eq!(r.status(), 401);
        }
    }
    let (u, w) = (median(unknown), median(wrong));
    let (lo, hi) = if u < w { (u, w) } else { (w, u) };
    assert!(
        hi.as_secs_f64() <= lo.as_secs_f64() * 1.5 + 0.005,
        "median unknown-email {u:?} vs wrong-password {w:?}: more than 50 % apart"
    );
}
