//! Checking a login: CIP `AUTHENTICATE LOGIN <id> <password>` (cip-00 §2.1) and, later, CAP's
//! SASL PLAIN (cap-04 §7.1.3) end here.
//!
//! - A configured peer server id is checked against its shared secret (constant time).
//! - Anything else is a local user: `alice` or `alice@<domain>`; the password is checked by the
//!   upstream itself (pass-through), so the gateway stores no user passwords.
//!
//! The caller learns only "refused" or "upstream unavailable", never which part was wrong.

use super::{Gateway, Identity};
use crate::caldav::{CaldavError, Credentials};
use crate::ical::scheduling::strip_mailto;
use crate::secret::Secret;

/// Why a login did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// Unknown identity or wrong password (deliberately not told apart).
    #[error("login refused")]
    Refused,
    /// The upstream could not check the credentials.
    #[error("upstream unavailable: {0}")]
    Unavailable(CaldavError),
}

/// The address a login id stands for: `alice@example.com` as given (a `mailto:` in any case
/// taken off), a bare `alice` at the calendar `domain`.
pub(crate) fn login_address(id: &str, domain: &str) -> String {
    let id = id.trim();
    let id = strip_mailto(id).map_or(id, str::trim);
    if id.contains('@') {
        id.to_owned()
    } else {
        format!("{id}@{domain}")
    }
}

/// Compares two byte strings in time that depends only on their lengths.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Gateway {
    /// Checks `id` and `password` and returns the identity to act as.
    pub async fn login(&self, id: &str, password: &Secret<String>) -> Result<Identity, LoginError> {
        let id = id.trim();
        if id.is_empty() || password.expose().is_empty() {
            return Err(LoginError::Refused);
        }
        if let Some(peer) = self.peers.iter().find(|p| p.id.eq_ignore_ascii_case(id)) {
            return if constant_time_eq(
                peer.password.expose().as_bytes(),
                password.expose().as_bytes(),
            ) {
                Ok(Identity::Peer {
                    id: peer.id.to_ascii_lowercase(),
                })
            } else {
                Err(LoginError::Refused)
            };
        }
        let address = login_address(id, self.domain());
        let Some(user) = self.discovery.login_for(&address) else {
            // Not at our domain and not a configured peer.
            return Err(LoginError::Refused);
        };
        let creds = Credentials::new(user, password.expose().clone());
        match self.discovery.authenticate(&creds).await {
            Ok(principal) => {
                let address = principal
                    .mail_addresses()
                    .into_iter()
                    .find(|a| a.eq_ignore_ascii_case(&address))
                    .unwrap_or_else(|| address.to_ascii_lowercase());
                Ok(Identity::User { creds, address })
            }
            Err(e) if e.is_unauthorized() || e.is_not_found() => Err(LoginError::Refused),
            Err(e) => Err(LoginError::Unavailable(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, login_address};

    #[test]
    fn login_ids_become_addresses() {
        let d = "example.com";
        assert_eq!(login_address("alice", d), "alice@example.com");
        assert_eq!(login_address("alice@example.com", d), "alice@example.com");
        assert_eq!(
            login_address("MAILTO:alice@example.com", d),
            "alice@example.com"
        );
        assert_eq!(
            login_address("mailto:alice@example.com", d),
            "alice@example.com"
        );
        assert_eq!(
            login_address("MailTo: alice@example.com ", d),
            "alice@example.com"
        );
        assert_eq!(login_address("mailto:alice", d), "alice@example.com");
        assert_eq!(login_address("bob@other.example", d), "bob@other.example");
    }

    #[test]
    fn comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(constant_time_eq(b"", b""));
    }
}
