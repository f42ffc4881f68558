//! TLS for the legacy listeners: the server configuration used after CSTP `STARTTLS`
//! (draft-ietf-calsch-cap-04 §7.1.10; the `2.0.12` proceed reply, then a TLS handshake on the
//! same connection) and self-signed certificates for `calgate gen-cert`.
//!
//! The crypto provider is always rustls' *ring* provider, passed explicitly: the gateway never
//! depends on a process-wide default and never pulls in aws-lc. TLS 1.3 (RFC 8446) and TLS 1.2
//! (RFC 5246) are offered; nothing older exists in rustls.
//!
//! Every error names the file it is about, so an operator can fix `[cap] tls_cert` /
//! `tls_key` in `gateway.toml` from the message alone.

use rustls::crypto::CryptoProvider;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The longest validity [`self_signed`] accepts: 100 years.
pub const MAX_DAYS: u32 = 36_500;

/// Why a certificate or key could not be loaded, generated or written.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate file could not be read (missing, permissions, a directory…).
    #[error("cannot read certificate file {}: {error}", path.display())]
    ReadCert {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The private key file could not be read.
    #[error("cannot read private key file {}: {error}", path.display())]
    ReadKey {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file has a broken PEM section (bad base64, missing END line…).
    #[error("{} is not valid PEM: {reason}", path.display())]
    BadPem { path: PathBuf, reason: String },
    /// No `CERTIFICATE` section in the file (empty, DER, or something else).
    #[error("no certificate found in {}{hint}", path.display())]
    NoCertificate { path: PathBuf, hint: &'static str },
    /// No `PRIVATE KEY` / `RSA PRIVATE KEY` / `EC PRIVATE KEY` section in the file.
    #[error("no private key found in {}{hint}", path.display())]
    NoKey { path: PathBuf, hint: &'static str },
    /// The key is PEM but the ring provider cannot use it (unsupported algorithm or curve,
    /// corrupt DER).
    #[error("cannot use the private key in {}: {reason}", path.display())]
    BadKey { path: PathBuf, reason: String },
    /// The first certificate's public key is not the private key's public key.
    #[error(
        "certificate and key do not match: the public key in {} is not the one of the private key in {}",
        cert.display(),
        key.display()
    )]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    /// rustls refused the pair for another reason (for instance an unparsable certificate).
    #[error("cannot use certificate {} with key {}: {reason}", cert.display(), key.display())]
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    /// Self-signed generation failed (bad name, bad validity, rcgen error).
    #[error("cannot generate certificate: {0}")]
    Generate(String),
    /// [`write_self_signed`] without `force` found a file in the way.
    #[error("refusing to overwrite {}: it already exists (use --force to replace it)", path.display())]
    Exists { path: PathBuf },
    /// Writing a generated file failed.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// The one crypto provider the gateway uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Describes a PEM syntax error without dumping raw byte vectors.
fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a section has no end line ({:?} expected)",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed BEGIN line {:?}", String::from_utf8_lossy(line))
        }
        pem::Error::Base64Decode(reason) => format!("bad base64 inside a section: {reason}"),
        other => other.to_string(),
    }
}

/// Reads the certificate chain (end-entity first) from PEM bytes.
fn parse_chain(path: &Path, pem_bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem_bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: path.to_owned(),
            reason: pem_reason(&e),
        })?;
    if chain.is_empty() {
        let hint = if pem_bytes.iter().all(u8::is_ascii_whitespace) {
            " (the file is empty)"
        } else if PrivateKeyDer::from_pem_slice(pem_bytes).is_ok() {
            " (it holds a private key: are tls_cert and tls_key swapped?)"
        } else {
            " (expected a PEM \"-----BEGIN CERTIFICATE-----\" section)"
        };
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            hint,
        });
    }
    Ok(chain)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) from PEM bytes.
fn parse_key(path: &Path, pem_bytes: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem_bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) => {
            let text = String::from_utf8_lossy(pem_bytes);
            let hint = if text.trim().is_empty() {
                " (the file is empty)"
            } else if text.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
                " (it is encrypted; store it unencrypted, readable only by the gateway)"
            } else if text.contains("-----BEGIN CERTIFICATE-----") {
                " (it holds a certificate: are tls_cert and tls_key swapped?)"
            } else {
                " (expected a PEM \"PRIVATE KEY\", \"RSA PRIVATE KEY\" or \"EC PRIVATE KEY\" section)"
            };
            Err(TlsError::NoKey {
                path: path.to_owned(),
                hint,
            })
        }
        Err(e) => Err(TlsError::BadPem {
            path: path.to_owned(),
            reason: pem_reason(&e),
        }),
    }
}

/// Loads a PEM certificate chain and a PEM private key (PKCS#8, PKCS#1 or SEC1) and builds the
/// server configuration for CSTP `STARTTLS` (draft-ietf-calsch-cap-04 §7.1.10).
///
/// - TLS 1.3 (RFC 8446) and TLS 1.2, the *ring* provider passed explicitly
///   (`builder_with_provider` + `with_safe_default_protocol_versions`);
/// - no client authentication, no ALPN (CSTP has no registered ALPN identifier);
/// - `cert` may hold the chain (end-entity first) and may be the same file as `key`;
/// - checked here, each with its own [`TlsError`]: unreadable or empty files, broken PEM, a key
///   ring cannot use, and a key that does not belong to the first certificate.
///
/// Certificate expiry is not checked here: clients judge that, and a test deployment with an
/// expired self-signed certificate should still start.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let cert_bytes = std::fs::read(cert).map_err(|error| TlsError::ReadCert {
        path: cert.to_owned(),
        error,
    })?;
    let key_bytes = std::fs::read(key).map_err(|error| TlsError::ReadKey {
        path: key.to_owned(),
        error,
    })?;
    let chain = parse_chain(cert, &cert_bytes)?;
    let key_der = parse_key(key, &key_bytes)?;

    let provider = provider();
    // Load and compare here, not in `with_single_cert`, so each failure gets its own message;
    // the checked pair is then handed to rustls as it is.
    let signing_key = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::BadKey {
            path: key.to_owned(),
            reason: match e {
                // Drop rustls' "unexpected error: " prefix; the failure is expected here.
                rustls::Error::General(reason) => reason,
                e => e.to_string(),
            },
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    let config_error = |e: rustls::Error| TlsError::Config {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    };
    match certified.keys_match() {
        // rustls' own rule (`CertifiedKey::from_der`): an unknown consistency is no error.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(_)) => {
            return Err(TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            });
        }
        Err(e) => return Err(config_error(e)),
    }
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(config_error)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    Ok(Arc::new(config))
}

/// Checks one name for a certificate: an IP address (IPv4 or IPv6), a DNS name, or a wildcard
/// `*.example.com`.
fn san(name: &str) -> Result<rcgen::SanType, TlsError> {
    if let Ok(ip) = name.parse::<IpAddr>() {
        return Ok(rcgen::SanType::IpAddress(ip));
    }
    let dns_part = name.strip_prefix("*.").unwrap_or(name);
    let valid = DnsName::try_from(dns_part).is_ok() && (dns_part.contains('.') || dns_part == name);
    if !valid {
        return Err(TlsError::Generate(format!(
            "{name:?} is neither a DNS name nor an IP address"
        )));
    }
    let ia5 = name
        .to_owned()
        .try_into()
        .map_err(|e| TlsError::Generate(format!("{name:?}: {e}")))?;
    Ok(rcgen::SanType::DnsName(ia5))
}

/// A self-signed certificate and its private key for `names` (DNS names and/or IP addresses,
/// e.g. `localhost`, `127.0.0.1`, `::1`, `gateway.example.com`, `*.example.com`), valid for
/// `days` days (1 to [`MAX_DAYS`]) from now. Returns `(cert_pem, key_pem)`.
///
/// - Names that parse as an IP address become an `iPAddress` subjectAltName, others a
///   `dNSName` (clients match those, not the subject; RFC 6125). Duplicates are dropped, order
///   is kept, and the first name is also the subject's common name.
/// - The key is ECDSA P-256, written as PKCS#8 (`BEGIN PRIVATE KEY`); the signature is
///   ECDSA-SHA256. ring cannot generate RSA keys, and every TLS 1.2/1.3 client supports P-256.
/// - `notBefore` is one hour in the past so clients with a slightly slow clock accept it.
/// - Not a CA (`basicConstraints` absent), extended key usage `serverAuth`: clients trust it by
///   pinning the certificate itself.
pub fn self_signed(names: &[String], days: u32) -> Result<(String, String), TlsError> {
    if names.is_empty() {
        return Err(TlsError::Generate(
            "at least one DNS name or IP address is needed".to_owned(),
        ));
    }
    if days == 0 || days > MAX_DAYS {
        return Err(TlsError::Generate(format!(
            "the validity must be 1 to {MAX_DAYS} days, not {days}"
        )));
    }
    let mut unique: Vec<&String> = Vec::new();
    for name in names {
        if !unique.contains(&name) {
            unique.push(name);
        }
    }
    let mut params = rcgen::CertificateParams::default();
    params.subject_alt_names = unique
        .iter()
        .map(|n| san(n))
        .collect::<Result<Vec<_>, _>>()?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, unique[0].as_str());
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "calgate self-signed");
    params.is_ca = rcgen::IsCa::NoCa;
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];

    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| TlsError::Generate("the system clock is before 1970".to_owned()))?;
    let now =
        rcgen::date_time_ymd(1970, 1, 1) + std::time::Duration::from_secs(since_epoch.as_secs());
    params.not_before = now - std::time::Duration::from_secs(3600);
    params.not_after = now + std::time::Duration::from_secs(u64::from(days) * 86_400);

    let key = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The SHA-256 fingerprint of the first certificate in `cert_pem`, as colon-separated upper-case
/// hex (`AB:CD:…`), the form most clients show when asked to trust a certificate. `None` when
/// there is no certificate.
pub fn fingerprint(cert_pem: &str) -> Option<String> {
    let der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, der.as_ref());
    let mut out = String::with_capacity(95);
    for (i, b) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02X}");
    }
    Some(out)
}

/// Creates `path` (which must not exist) with `mode` and writes `contents`. The mode is set on
/// the new, still empty file before anything is written, so a key is never readable by others,
/// whatever the umask.
fn create_with_mode(path: &Path, contents: &str, mode: u32) -> Result<(), TlsError> {
    let write_error = |error| TlsError::Write {
        path: path.to_owned(),
        error,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let mut file = options.open(path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            TlsError::Exists {
                path: path.to_owned(),
            }
        } else {
            write_error(error)
        }
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(write_error)?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(contents.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(write_error)
}

/// Generates a pair with [`self_signed`] and writes it: the certificate with mode 0644, the key
/// with mode 0600 (unix; the modes are set explicitly, not left to the umask).
///
/// Existing files are refused unless `force`; with `force` they are removed first and created
/// anew (so a symlink is replaced, not followed, and an old file's wider mode is not kept).
/// Both paths are checked before either is written; if the key cannot be written, the
/// certificate just written is removed again.
pub fn write_self_signed(
    names: &[String],
    days: u32,
    cert_path: &Path,
    key_path: &Path,
    force: bool,
) -> Result<(), TlsError> {
    if cert_path == key_path {
        return Err(TlsError::Generate(format!(
            "the certificate and the key need two different files, not both {}",
            cert_path.display()
        )));
    }
    let (cert_pem, key_pem) = self_signed(names, days)?;
    for path in [cert_path, key_path] {
        let exists = std::fs::symlink_metadata(path).is_ok();
        if exists && !force {
            return Err(TlsError::Exists {
                path: path.to_owned(),
            });
        }
        if exists {
            std::fs::remove_file(path).map_err(|error| TlsError::Write {
                path: path.to_owned(),
                error,
            })?;
        }
    }
    create_with_mode(cert_path, &cert_pem, 0o644)?;
    if let Err(e) = create_with_mode(key_path, &key_pem, 0o600) {
        let _ = std::fs::remove_file(cert_path);
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A fresh directory under the system temp dir, unique per test and process.
    fn temp_dir(test: &str) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "calgate-tls-{test}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Writes a fresh pair for `localhost` and `127.0.0.1` into `dir`.
    fn pair_in(dir: &Path) -> (PathBuf, PathBuf, String) {
        let (cert_pem, key_pem) = self_signed(&names(&["localhost", "127.0.0.1"]), 30).unwrap();
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, &cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        (cert, key, cert_pem)
    }

    #[test]
    fn self_signed_round_trips_through_server_config() {
        let dir = temp_dir("roundtrip");
        let (cert, key, cert_pem) = pair_in(&dir);
        assert!(cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let key_pem = std::fs::read_to_string(&key).unwrap();
        assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let config = server_config(&cert, &key).unwrap();
        assert!(config.alpn_protocols.is_empty());
        // The same file may hold both.
        let both = dir.join("both.pem");
        std::fs::write(&both, format!("{key_pem}{cert_pem}")).unwrap();
        server_config(&both, &both).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn self_signed_rejects_bad_input() {
        let err = self_signed(&[], 30).unwrap_err().to_string();
        assert!(err.starts_with("cannot generate certificate:"), "{err}");
        let err = self_signed(&names(&["localhost"]), 0)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1 to 36500 days"), "{err}");
        for bad in ["two words", "", "-x.example.com", "a..b", "*"] {
            let err = self_signed(&names(&[bad]), 30).unwrap_err().to_string();
            assert!(
                err.contains("neither a DNS name nor an IP address"),
                "{bad}: {err}"
            );
        }
        for good in ["::1", "*.example.com", "gateway.example.com", "localhost"] {
            self_signed(&names(&[good]), 30).unwrap();
        }
    }

    #[test]
    fn fingerprint_is_sha256_hex() {
        let (cert_pem, _) = self_signed(&names(&["localhost"]), 1).unwrap();
        let fp = fingerprint(&cert_pem).unwrap();
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        assert!(fp.split(':').all(|b| b.len() == 2));
        assert_eq!(fingerprint("no pem here"), None);
    }

    #[test]
    fn missing_files_are_named() {
        let dir = temp_dir("missing");
        let (cert, key, _) = pair_in(&dir);
        let nope = dir.join("nope.pem");
        let err = server_config(&nope, &key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot read certificate file {}:", nope.display())),
            "{err}"
        );
        let err = server_config(&cert, &nope).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot read private key file {}:", nope.display())),
            "{err}"
        );
        // A directory is unreadable as a file, too.
        let err = server_config(&dir, &key).unwrap_err().to_string();
        assert!(err.starts_with("cannot read certificate file"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn empty_and_garbage_files_are_rejected() {
        let dir = temp_dir("garbage");
        let (cert, key, _) = pair_in(&dir);
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let garbage = dir.join("garbage.pem");
        std::fs::write(&garbage, b"\x00\x01not pem at all\xff\n").unwrap();
        let broken = dir.join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();

        let err = server_config(&empty, &key).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no certificate found in {} (the file is empty)",
                empty.display()
            )
        );
        let err = server_config(&garbage, &key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("no certificate found in {}", garbage.display())),
            "{err}"
        );
        let err = server_config(&broken, &key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{} is not valid PEM:", broken.display())),
            "{err}"
        );
        let err = server_config(&cert, &empty).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no private key found in {} (the file is empty)",
                empty.display()
            )
        );
        let err = server_config(&cert, &garbage).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("no private key found in {}", garbage.display())),
            "{err}"
        );
        // Swapped paths get a hint.
        let err = server_config(&key, &cert).unwrap_err().to_string();
        assert!(err.contains("swapped"), "{err}");
        // A PEM key section whose DER is nonsense.
        let bad_key = dir.join("badkey.pem");
        std::fs::write(
            &bad_key,
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let err = server_config(&cert, &bad_key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "cannot use the private key in {}:",
                bad_key.display()
            )),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mismatched_key_is_reported() {
        let dir_a = temp_dir("mismatch-a");
        let dir_b = temp_dir("mismatch-b");
        let (cert_a, _, _) = pair_in(&dir_a);
        let (_, key_b, _) = pair_in(&dir_b);
        let err = server_config(&cert_a, &key_b).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("certificate and key do not match:"),
            "{text}"
        );
        assert!(text.contains(&cert_a.display().to_string()), "{text}");
        assert!(text.contains(&key_b.display().to_string()), "{text}");
        std::fs::remove_dir_all(&dir_a).unwrap();
        std::fs::remove_dir_all(&dir_b).unwrap();
    }

    #[test]
    fn write_self_signed_sets_modes_and_refuses_to_overwrite() {
        let dir = temp_dir("write");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let localhost = names(&["localhost"]);
        write_self_signed(&localhost, 10, &cert, &key, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&cert), 0o644);
            assert_eq!(mode(&key), 0o600);
        }
        let first = std::fs::read_to_string(&cert).unwrap();
        let err = write_self_signed(&localhost, 10, &cert, &key, false).unwrap_err();
        assert!(matches!(err, TlsError::Exists { .. }), "{err:?}");
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), first);
        // Only the key in the way: nothing is written.
        let cert2 = dir.join("cert2.pem");
        let err = write_self_signed(&localhost, 10, &cert2, &key, false).unwrap_err();
        assert!(err.to_string().contains("key.pem"), "{err}");
        assert!(!cert2.exists());
        write_self_signed(&localhost, 10, &cert, &key, true).unwrap();
        assert_ne!(std::fs::read_to_string(&cert).unwrap(), first);
        server_config(&cert, &key).unwrap();
        let err = write_self_signed(&localhost, 10, &cert, &cert, true).unwrap_err();
        assert!(err.to_string().contains("two different files"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A client that trusts exactly the generated certificate, limited to `versions`.
    fn client_config(
        cert_pem: &str,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(cert_pem.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Arc::new(config)
    }

    /// A full handshake over an in-memory pipe, then bytes both ways.
    async fn handshake(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        name: &'static str,
    ) -> rustls::ProtocolVersion {
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(client);
        let server_side = async move {
            let mut tls = acceptor.accept(server_io).await.unwrap();
            let mut buf = [0u8; 12];
            tls.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf, b"CAPABILITY\r\n");
            tls.write_all(b"2.0 . .\r\n").await.unwrap();
            tls.flush().await.unwrap();
            tls.shutdown().await.unwrap();
        };
        let client_side = async move {
            let server_name = rustls_pki_types::ServerName::try_from(name).unwrap();
            let mut tls = connector.connect(server_name, client_io).await.unwrap();
            let version = tls.get_ref().1.protocol_version().unwrap();
            tls.write_all(b"CAPABI").await.unwrap();
            tls.write_all(b"LITY\r\n").await.unwrap();
            tls.flush().await.unwrap();
            let mut reply = Vec::new();
            tls.read_to_end(&mut reply).await.unwrap();
            assert_eq!(reply, b"2.0 . .\r\n");
            version
        };
        let ((), version) = tokio::join!(server_side, client_side);
        version
    }

    #[tokio::test]
    async fn handshake_with_generated_certificate() {
        let dir = temp_dir("handshake");
        let (cert, key, cert_pem) = pair_in(&dir);
        let server = server_config(&cert, &key).unwrap();
        let v13 = handshake(
            server.clone(),
            client_config(&cert_pem, &[&rustls::version::TLS13]),
            "localhost",
        )
        .await;
        assert_eq!(v13, rustls::ProtocolVersion::TLSv1_3);
        let v12 = handshake(
            server.clone(),
            client_config(&cert_pem, &[&rustls::version::TLS12]),
            "127.0.0.1",
        )
        .await;
        assert_eq!(v12, rustls::ProtocolVersion::TLSv1_2);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn handshake_fails_for_a_name_not_in_the_certificate() {
        let dir = temp_dir("wrongname");
        let (cert, key, cert_pem) = pair_in(&dir);
        let server = server_config(&cert, &key).unwrap();
        let (client_io, server_io) = tokio::io::duplex(16 * 1024);
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let connector = tokio_rustls::TlsConnector::from(client_config(
            &cert_pem,
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        ));
        let name = rustls_pki_types::ServerName::try_from("other.example.com").unwrap();
        let (server_result, client_result) = tokio::join!(
            acceptor.accept(server_io),
            connector.connect(name, client_io)
        );
        let err = client_result.unwrap_err().to_string();
        assert!(err.contains("not valid for name"), "{err}");
        assert!(server_result.is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
