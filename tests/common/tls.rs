//! A self-signed certificate for the gateway's TLS listeners, and a client that trusts it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

/// The certificate and key (for `localhost` and `127.0.0.1`), written once per test binary.
pub fn cert_files() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("calgate-tls-tests-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        calgate::tls::write_self_signed(
            &["localhost".to_owned(), "127.0.0.1".to_owned()],
            2,
            &cert,
            &key,
            true,
        )
        .expect("certificate");
        (cert, key)
    })
}

/// A TLS client that trusts [`cert_files`]' certificate only.
pub fn connector() -> tokio_rustls::TlsConnector {
    use rustls_pki_types::pem::PemObject;
    let (cert, _) = cert_files();
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// Connects with TLS from the first byte (an implicit-TLS listener).
pub async fn connect(
    addr: std::net::SocketAddr,
) -> tokio::io::BufReader<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = connector()
        .connect(
            rustls_pki_types::ServerName::try_from("localhost").unwrap(),
            tcp,
        )
        .await
        .expect("TLS handshake");
    tokio::io::BufReader::new(tls)
}
