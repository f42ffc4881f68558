//! SCRAM-SHA-256 verifiers for gateway-local accounts (RFC 5802, RFC 7677), stored in the
//! RFC 5803 form `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 fields).
//!
//! The gateway keeps only the verifier, never the SCRAM password: `calgate scram-hash` derives
//! it ([`StoredKeys::generate`]); the SASL layer (`super::sasl`) hands it to rsasl, which runs the
//! exchange. The derivation uses ring: PBKDF2-HMAC-SHA-256 for the SaltedPassword, then
//! `ClientKey = HMAC(SaltedPassword, "Client Key")`, `StoredKey = SHA-256(ClientKey)`,
//! `ServerKey = HMAC(SaltedPassword, "Server Key")`.
//!
//! The password is used as given: SASLprep (RFC 4013) leaves ASCII passwords unchanged, and
//! clients normalise theirs the same way.

use ring::{digest, hmac, pbkdf2, rand::SecureRandom};
use std::fmt;
use std::num::NonZeroU32;

/// The fewest PBKDF2 iterations accepted (RFC 7677 §4: at least 4096).
pub const MIN_ITERATIONS: u32 = 4096;
/// The shortest salt accepted, in octets.
pub const MIN_SALT_LEN: usize = 16;
/// The salt length `calgate scram-hash` uses.
pub const SALT_LEN: usize = 16;
/// SHA-256 output length: StoredKey and ServerKey.
pub const KEY_LEN: usize = 32;

const PREFIX: &str = "SCRAM-SHA-256$";

/// One account's SCRAM-SHA-256 verifier.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKeys {
    /// PBKDF2 iterations.
    pub iterations: u32,
    /// The salt.
    pub salt: Vec<u8>,
    /// `SHA-256(ClientKey)`: checks the client's proof.
    pub stored_key: [u8; KEY_LEN],
    /// `HMAC(SaltedPassword, "Server Key")`: signs the server's final message.
    pub server_key: [u8; KEY_LEN],
}

impl fmt::Debug for StoredKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys allow an offline dictionary attack and server impersonation: never shown.
        f.debug_struct("StoredKeys")
            .field("iterations", &self.iterations)
            .field("salt_len", &self.salt.len())
            .finish_non_exhaustive()
    }
}

impl StoredKeys {
    /// Derives the verifier of `password` with `salt` and `iterations`.
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> StoredKeys {
        let salted = salted_password(password, salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        StoredKeys {
            iterations,
            salt: salt.to_vec(),
            stored_key: sha256(&client_key),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }

    /// Derives the verifier of `password` with a fresh random salt.
    pub fn generate(password: &[u8], iterations: u32) -> Result<StoredKeys, String> {
        if iterations < MIN_ITERATIONS {
            return Err(format!("iterations must be at least {MIN_ITERATIONS}"));
        }
        let mut salt = [0u8; SALT_LEN];
        ring::rand::SystemRandom::new()
            .fill(&mut salt)
            .map_err(|_| "no random numbers available".to_owned())?;
        Ok(StoredKeys::derive(password, &salt, iterations))
    }

    /// Parses the RFC 5803 form, checking the limits (iterations ≥ 4096, salt ≥ 16 octets, keys
    /// of 32 octets).
    pub fn parse(text: &str) -> Result<StoredKeys, String> {
        let rest = text.trim().strip_prefix(PREFIX).ok_or_else(|| {
            "must have the RFC 5803 form SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> \
             (see `calgate scram-hash`)"
                .to_owned()
        })?;
        let (params, keys) = rest
            .split_once('$')
            .ok_or("has no '$' between the salt and the keys")?;
        let (iterations, salt) = params
            .split_once(':')
            .ok_or("has no ':' between the iteration count and the salt")?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or("has no ':' between StoredKey and ServerKey")?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| format!("iteration count {iterations:?} is not a number"))?;
        if iterations < MIN_ITERATIONS {
            return Err(format!(
                "iteration count {iterations} is below the minimum of {MIN_ITERATIONS}"
            ));
        }
        let salt = base64_decode(salt).ok_or("the salt is not valid base64")?;
        if salt.len() < MIN_SALT_LEN {
            return Err(format!(
                "the salt has {} octets; at least {MIN_SALT_LEN} are required",
                salt.len()
            ));
        }
        let key = |what: &str, b64: &str| -> Result<[u8; KEY_LEN], String> {
            let bytes = base64_decode(b64).ok_or(format!("{what} is not valid base64"))?;
            bytes.try_into().map_err(|b: Vec<u8>| {
                format!("{what} has {} octets; SHA-256 needs {KEY_LEN}", b.len())
            })
        };
        Ok(StoredKeys {
            iterations,
            salt,
            stored_key: key("StoredKey", stored)?,
            server_key: key("ServerKey", server)?,
        })
    }

    /// The RFC 5803 form.
    pub fn encode(&self) -> String {
        format!(
            "{PREFIX}{}:{}${}:{}",
            self.iterations,
            base64_encode(&self.salt),
            base64_encode(&self.stored_key),
            base64_encode(&self.server_key)
        )
    }
}

/// `Hi(password, salt, iterations)` of RFC 5802 §2.2: PBKDF2-HMAC-SHA-256.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> [u8; KEY_LEN] {
    let mut out = [0u8; KEY_LEN];
    let n = NonZeroU32::new(iterations.max(1)).unwrap_or(NonZeroU32::MIN);
    pbkdf2::derive(pbkdf2::PBKDF2_HMAC_SHA256, n, salt, password, &mut out);
    out
}

/// HMAC-SHA-256.
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(tag.as_ref());
    out
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; KEY_LEN] {
    let d = digest::digest(&digest::SHA256, data);
    let mut out = [0u8; KEY_LEN];
    out.copy_from_slice(d.as_ref());
    out
}

/// Standard base64 with padding (RFC 4648 §4).
pub fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Strict standard base64 with padding (no whitespace, canonical trailing bits); `None` for
/// anything else, so every text has one decoding.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

/// A SCRAM-SHA-256 client for unit tests (RFC 5802 §3), without SASLprep.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct TestClient {
    gs2: String,
    first_bare: String,
    password: String,
    nonce: String,
    server_signature: Option<[u8; KEY_LEN]>,
}

#[cfg(test)]
impl TestClient {
    /// A client for `user` with GS2 header `gs2` (`n,,`, `y,,`, `n,a=bob,`).
    pub(crate) fn new(gs2: &str, user: &str, password: &str) -> TestClient {
        let nonce = "fyko+d2lbbFgONRv9qkxdawL".to_owned();
        TestClient {
            gs2: gs2.to_owned(),
            first_bare: format!("n={user},r={nonce}"),
            password: password.to_owned(),
            nonce,
            server_signature: None,
        }
    }

    /// client-first, base64.
    pub(crate) fn first(&self) -> String {
        base64_encode(format!("{}{}", self.gs2, self.first_bare).as_bytes())
    }

    /// client-final for a base64 server-first, base64.
    pub(crate) fn final_message(&mut self, server_first: &str) -> String {
        let server_first = String::from_utf8(base64_decode(server_first).unwrap()).unwrap();
        let attr = |k: &str| {
            server_first
                .split(',')
                .find_map(|p| p.strip_prefix(k))
                .unwrap()
                .to_owned()
        };
        let nonce = attr("r=");
        assert!(nonce.starts_with(&self.nonce), "{server_first}");
        let salt = base64_decode(&attr("s=")).unwrap();
        let iterations: u32 = attr("i=").parse().unwrap();
        let without_proof = format!("c={},r={nonce}", base64_encode(self.gs2.as_bytes()));
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        // RFC 5802 §3 from the password, as a client computes it (not via `StoredKeys`).
        let salted = salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = hmac_sha256(&salted, b"Client Key");
        let signature = hmac_sha256(&sha256(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = hmac_sha256(&salted, b"Server Key");
        self.server_signature = Some(hmac_sha256(&server_key, auth_message.as_bytes()));
        base64_encode(format!("{without_proof},p={}", base64_encode(&proof)).as_bytes())
    }

    /// Whether a base64 server-final carries the expected signature.
    pub(crate) fn server_final_ok(&self, server_final: &str) -> bool {
        let text = String::from_utf8(base64_decode(server_final).unwrap()).unwrap();
        text.strip_prefix("v=").and_then(base64_decode).as_deref()
            == self.server_signature.as_ref().map(|s| &s[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: user "user", password "pencil".
    const RFC7677_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
    const CLIENT_FIRST_BARE: &str = "n=user,r=rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL_NO_PROOF: &str =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
    const PROOF: &str = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_SIGNATURE: &str = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    fn rfc7677_keys() -> StoredKeys {
        StoredKeys::derive(b"pencil", &base64_decode(RFC7677_SALT).unwrap(), 4096)
    }

    #[test]
    fn rfc7677_exchange_checks_out() {
        let keys = rfc7677_keys();
        let auth_message = format!("{CLIENT_FIRST_BARE},{SERVER_FIRST},{CLIENT_FINAL_NO_PROOF}");
        // The server signature of the RFC's server-final message.
        let server_signature = hmac_sha256(&keys.server_key, auth_message.as_bytes());
        assert_eq!(base64_encode(&server_signature), SERVER_SIGNATURE);
        // The client proof: ClientKey XOR ClientSignature, and SHA-256(ClientKey) = StoredKey.
        let client_signature = hmac_sha256(&keys.stored_key, auth_message.as_bytes());
        let proof = base64_decode(PROOF).unwrap();
        let client_key: Vec<u8> = proof
            .iter()
            .zip(client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(sha256(&client_key), keys.stored_key);
        // Pinned so a change in the derivation shows.
        assert_eq!(
            keys.encode(),
            "SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY=:wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
    }

    #[test]
    fn rfc5803_round_trip_and_limits() {
        let keys = rfc7677_keys();
        assert_eq!(StoredKeys::parse(&keys.encode()).unwrap(), keys);
        let generated = StoredKeys::generate(b"s3cret", 4096).unwrap();
        assert_eq!(generated.salt.len(), SALT_LEN);
        assert_eq!(StoredKeys::parse(&generated.encode()).unwrap(), generated);
        assert_ne!(StoredKeys::generate(b"s3cret", 4096).unwrap(), generated);
        assert!(StoredKeys::generate(b"s3cret", 1000).is_err());

        let good = keys.encode();
        let bad = [
            good.replace("SCRAM-SHA-256$", "SCRAM-SHA-1$"),
            good.replace("$4096:", "$1000:"),
            good.replace("$4096:", "$many:"),
            good.replace(RFC7677_SALT, "c2hvcnQ="),
            good.replace(RFC7677_SALT, "!!"),
            good.replacen(":W", "W", 1),
            good.replace("qY=:", "qY=;"),
            format!("{}AAAA", good),
            good.replace("=:", "=$"),
        ];
        for b in bad {
            assert!(StoredKeys::parse(&b).is_err(), "{b}");
        }
    }

    #[test]
    fn debug_hides_the_keys() {
        let keys = rfc7677_keys();
        let shown = format!("{keys:?}");
        assert!(shown.contains("4096"));
        assert!(!shown.contains(&base64_encode(&keys.stored_key)));
        assert!(!shown.contains("stored_key"));
    }

    #[test]
    fn base64() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(plain.as_bytes()), enc);
            assert_eq!(base64_decode(enc).unwrap(), plain.as_bytes());
        }
        for bad in ["Zg", "Zg=", "Z===", "Zh==", "Zg==Zg==", "Zm9v!A==", "=Zm9"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }
}
