//! Webhooks to an https receiver: a real TLS server on a port the test
//! picks, with a certificate signed by a CA made for the test, which the
//! node trusts only through `webhooks.extra_ca_file`.

use crate::helpers::spawn_app_with;
use crate::webhooks::{check, nine_changes, quick, subscribe, until_received, Received};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::{crypto::ring, ServerConfig};

/// A CA, and an https receiver on port 0 for `localhost` signed by it:
/// its URL, the CA's PEM and what it got.
async fn https_receiver() -> (String, String, Received) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap().signed_by(&key, &ca).unwrap();
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from(cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://localhost:{}/hook", listener.local_addr().unwrap().port());
    let got: Received = Arc::default();
    let into = got.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, into) = (acceptor.clone(), into.clone());
            tokio::spawn(async move {
                // A failed handshake (a client that does not trust us) is
                // just a closed connection.
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    while let Some((signature, body)) = read_post(&mut tls).await {
                        into.lock().unwrap().push((signature, serde_json::from_slice(&body).unwrap()));
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if tls.write_all(ok).await.is_err() {
                            break;
                        }
                    }
                }
            });
        }
    });
    (url, ca.pem(), got)
}

/// One HTTP/1.1 POST off `stream`: its `Fulfil-Signature` and its body.
async fn read_post(stream: &mut (impl AsyncReadExt + Unpin)) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let header = |name: &str| {
        head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_owned())).unwrap_or_default()
    };
    let length: usize = header("content-length:").parse().ok()?;
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    Some((header("fulfil-signature:"), body))
}

#[tokio::test]
async fn an_https_receiver_signed_by_an_extra_ca_gets_everything_signed_and_in_order() {
    let (url, ca_pem, got) = https_receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let app = spawn_app_with(|s| {
        quick(s);
        s.webhooks.extra_ca_file = ca.display().to_string();
    })
    .await;
    app.add_product("MUG", 1500, 10).await;
    subscribe(&app, &url).await;
    nine_changes(&app).await;
    until_received(&got, 9, Duration::from_secs(5)).await;
    check(&got);
}

/// Without the CA, the receiver is not trusted: nothing signed is sent to
/// it, and the deliveries are set aside once they have failed for long
/// enough.
#[tokio::test]
async fn an_https_receiver_nobody_vouches_for_gets_nothing() {
    let (url, _, got) = https_receiver().await;
    let app = spawn_app_with(|s| {
        quick(s);
        s.webhooks.give_up_after_ms = 200;
    })
    .await;
    app.add_product("MUG", 1500, 10).await;
    subscribe(&app, &url).await;
    let id = app.place(&crate::helpers::order_body("kim", "MUG", 1, "bank_transfer")).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.node.failed_deliveries().await.unwrap().len() < 2 {
        assert!(std::time::Instant::now() < deadline, "set aside within 10 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed = app.node.failed_deliveries().await.unwrap();
    assert!(failed.iter().all(|d| d.notification.order_id.as_str() == id));
    assert!(got.lock().unwrap().is_empty(), "nothing reached an untrusted receiver");
}

#[tokio::test]
async fn a_node_refuses_to_start_with_an_extra_ca_file_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    for (file, says) in [(dir.path().join("missing.pem"), "No such file"), (not_pem, "no PEM certificate")] {
        let mut settings = crate::helpers::test_settings(&dir.path().join("store"));
        settings.webhooks.extra_ca_file = file.display().to_string();
        let refused = fulfil::Node::start(settings).await.err().expect("refused");
        let message = refused.to_string();
        assert!(message.contains("webhooks.extra_ca_file") && message.contains(says), "{message}");
    }
}
