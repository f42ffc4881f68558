//! How the CalDAV client talks HTTP to the upstream.
//!
//! HTTP/1.1 only, even when an https upstream offers HTTP/2 by ALPN: Cyrus 3.6 binds the login
//! to the HTTP/2 connection, so one user's request multiplexed beside another's would run as
//! the other user (BENCHMARKS.md, "HTTP/2"). A real Cyrus here serves plain http, where the
//! client never tries HTTP/2, so this test stands in a TLS server that offers both protocols and
//! records which one the client chose.

mod common;

use calgate::caldav::Credentials;
use calgate::caldav::client::CaldavClient;
use common::*;
use reqwest::Url;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn an_https_upstream_offering_h2_is_spoken_to_in_http_1_1() {
    let (cert, key) = tls::cert_files();
    let mut server = (*calgate::tls::server_config(cert, key).expect("server config")).clone();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.expect("TLS handshake");
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        // Read the request head and answer it, so the client sees a real HTTP/1.1 exchange.
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).await.unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = tls
            .write_all(b"HTTP/1.1 200 OK\r\nDAV: 1, calendar-access\r\nContent-Length: 0\r\n\r\n")
            .await;
        let _ = tls.shutdown().await;
        (alpn, String::from_utf8_lossy(&head).into_owned())
    });

    let url = format!("https://127.0.0.1:{port}/");
    let mut config = config_at(&url, "/dav/principals/user/{user}/", "");
    config.upstream.ca_file = Some(cert.clone());
    let client = CaldavClient::from_config(&config).expect("client");
    let classes = client
        .options(
            &Url::parse(&url).unwrap(),
            &Credentials::new("alice", "alicepw"),
        )
        .await
        .expect("OPTIONS over HTTP/1.1");
    assert_eq!(classes, ["1", "calendar-access"]);

    let (alpn, head) = served.await.unwrap();
    assert_eq!(
        alpn.as_deref(),
        Some(&b"http/1.1"[..]),
        "the client must not choose h2"
    );
    assert!(
        head.starts_with("OPTIONS / HTTP/1.1\r\n"),
        "request head: {head:?}"
    );
}

/// `upstream.max_idle_connections` reaches the HTTP client: three PROPFINDs in a row to the real
/// upstream (through a counting pass-through proxy) reuse one keep-alive connection by default,
/// and open three when no idle connection may be kept.
#[tokio::test]
async fn idle_connections_are_reused_up_to_max_idle_connections() {
    use std::sync::atomic::Ordering::SeqCst;
    for (max_idle, expected) in [(None, 1), (Some(0), 3)] {
        let proxy = Proxy::start(Rule::Pass).await;
        let up = upstream();
        let mut config = config_at(&proxy.url(), &up.principal_template, "");
        if let Some(n) = max_idle {
            config.upstream.max_idle_connections = n;
        }
        let client = CaldavClient::from_config(&config).expect("client");
        let principal = Url::parse(&proxy.url())
            .unwrap()
            .join(&up.principal_template.replace("{user}", "alice"))
            .unwrap();
        for _ in 0..3 {
            client
                .propfind(
                    &principal,
                    calgate::caldav::client::Depth::Zero,
                    &[calgate::caldav::request::DISPLAYNAME],
                    &creds("alice"),
                )
                .await
                .expect("PROPFIND of alice's principal");
        }
        assert_eq!(
            proxy.connections.load(SeqCst),
            expected,
            "max_idle_connections = {max_idle:?}"
        );
    }
}
