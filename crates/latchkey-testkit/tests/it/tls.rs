//! Native TLS: rustls with TLS 1.2 and 1.3 only.

use latchkey_testkit::app::TestApp;

fn certificate(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, reqwest::Certificate) {
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert_pem = cert.cert.pem();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (
        cert_path,
        key_path,
        reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap(),
    )
}

fn client(
    root: &reqwest::Certificate,
    version: reqwest::tls::Version,
    addr: std::net::SocketAddr,
) -> reqwest::Client {
    reqwest::Client::builder()
        .resolve("localhost", addr)
        .add_root_certificate(root.clone())
        .min_tls_version(version)
        .max_tls_version(version)
        .build()
        .unwrap()
}

#[tokio::test]
async fn serves_tls_1_2_and_1_3_and_refuses_plain_http() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, root) = certificate(dir.path());
    let builder = TestApp::builder();
    let app = builder
        .configure(|c| {
            c.tls.cert = Some(cert);
            c.tls.key = Some(key);
            c.public_url = Some("https://localhost".into());
        })
        .spawn()
        .await;
    assert!(app.base_url.starts_with("https://"));
    let port = app.addr.port();
    for version in [
        reqwest::tls::Version::TLS_1_2,
        reqwest::tls::Version::TLS_1_3,
    ] {
        let r = client(&root, version, app.addr)
            .get(format!("https://localhost:{port}/healthz"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{version:?}: {e}"));
        assert_eq!(r.status(), 200);
        assert!(r.headers().contains_key("strict-transport-security"));
    }
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
    // The server keeps serving TLS after the garbage.
    let r = client(&root, reqwest::tls::Version::TLS_1_3, app.addr)
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_key_that_does_not_fit_the_certificate_refuses_start() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, _, _) = certificate(dir.path());
    let other = tempfile::tempdir().unwrap();
    let (_, wrong_key, _) = certificate(other.path());
    let result = TestApp::builder()
        .configure(|c| {
            c.tls.cert = Some(cert);
            c.tls.key = Some(wrong_key);
        })
        .try_spawn()
        .await;
    assert!(
        matches!(result, Err(latchkey_server::StartupError::Tls(_))),
        "{:?}",
        result.err()
    );
}
