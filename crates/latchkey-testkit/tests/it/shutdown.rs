//! Graceful shutdown: in-flight requests finish, new connections are refused.

use std::time::Duration;

use latchkey_testkit::app::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_new_ones_are_refused() {
    let mut app = TestApp::builder()
        .routes(crate::probes::routes())
        .spawn()
        .await;
    let client = app.client.clone();
    let slow_url = app.url("/test/slow");
    let in_flight = tokio::spawn(async move { client.get(slow_url).send().await });
    tokio::time::sleep(Duration::from_millis(150)).await;

    let server = app.begin_shutdown().expect("server task");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let fresh = reqwest::Client::new().get(app.url("/healthz")).send().await;
    assert!(
        fresh.is_err(),
        "a new connection after shutdown began must be refused"
    );

    let r = in_flight
        .await
        .unwrap()
        .expect("the in-flight request completes");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "done");
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap();
    assert!(
        app.state.store.ping().await.is_err(),
        "pools are closed after shutdown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_bounds_the_wait() {
    let mut app = TestApp::builder()
        .routes(crate::probes::routes())
        .configure(|c| c.http.shutdown_grace_ms = 100)
        .spawn()
        .await;
    let client = app.client.clone();
    let slow_url = app.url("/test/slow");
    let in_flight = tokio::spawn(async move { client.get(slow_url).send().await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let server = app.begin_shutdown().unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("server stops")
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "did not wait for the 800 ms handler"
    );
    assert!(
        in_flight.await.unwrap().is_err(),
        "the cut-off request fails"
    );
}
