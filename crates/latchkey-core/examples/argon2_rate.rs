//! Raw Argon2id throughput with latchkey's hasher and default (OWASP) parameters,
//! one hash per core at a time: the ceiling the login benchmark is compared to.
//!
//!     cargo run --release -p latchkey-core --example argon2_rate [seconds]

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use latchkey_core::password::{Argon2Params, PasswordHasher};

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let hasher = PasswordHasher::new(Argon2Params::default(), 0).expect("params");
    let stored = hasher
        .hash("correct horse battery staple")
        .await
        .expect("hash");
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get) * 2;
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let (hasher, stored, done) = (hasher.clone(), stored.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let v = hasher
                        .verify("wrong password here", &stored)
                        .await
                        .expect("verify");
                    assert!(!v.matches);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
    let n = done.load(Ordering::Relaxed);
    #[allow(clippy::cast_precision_loss)]
    let rate = n as f64 / seconds as f64;
    println!("argon2id m=19456 t=2 p=1: {n} verifications in {seconds} s = {rate:.1}/s");
}
