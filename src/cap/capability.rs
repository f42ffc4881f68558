//! The capability lines of CAPABILITY, the greeting and a successful AUTHENTICATE
//! (cap-04 §7.1.5 table, spec §4): `NAME=VALUE`, one per line, AUTH repeated per mechanism.
//!
//! They depend on the state: password mechanisms are offered only where a password may be
//! sent (TLS, or plaintext allowed by `auth.plaintext_passwords`), SCRAM-SHA-256 wherever
//! gateway-local accounts exist (it sends no password), STARTTLS is hinted while it is
//! available, and IDENTITY appears once a session has one.

/// What the capability list depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapabilityContext {
    /// Whether PLAIN may be used on this connection now.
    pub passwords_allowed: bool,
    /// Whether SCRAM-SHA-256 is offered (gateway-local accounts are configured). SCRAM sends
    /// no password, so it is offered with or without TLS.
    pub scram_available: bool,
    /// Whether STARTTLS can still be used (configured, not yet done).
    pub starttls_available: bool,
    /// The session identity (`alice@example.com`, `@` for anonymous), once authenticated.
    pub identity: Option<String>,
    /// MAXICALOBJECTSIZE: the SENDDATA size cap in octets.
    pub max_object_size: usize,
    /// AUTOLOGOUTTIME in seconds.
    pub autologout_secs: u64,
}

/// The most ids one CALIDEXPAND or UPNEXPAND lists (MAXCALIDEXPANDLIST, MAXUPNEXPANDLIST);
/// beyond it the reply is `2.3` (truncated, cap-05 §7.1.4).
pub const EXPAND_LIMIT: usize = 1000;

/// The earliest date the gateway accepts (cap-04 MINDATE; the Unix epoch).
pub const MINDATE: &str = "19700101T000000Z";
/// The latest date: some upstreams (Cyrus 3.6) compute free-busy wrongly after 2038.
pub const MAXDATE: &str = "20371231T235959Z";

/// The capability lines for `ctx`.
pub fn lines(ctx: &CapabilityContext) -> Vec<String> {
    let mut out = Vec::with_capacity(16);
    if let Some(id) = &ctx.identity {
        out.push(format!("IDENTITY={id}"));
    }
    out.push("CAPVERSION=1.0".into());
    out.push("ITIPVERSION=1.0".into());
    out.push("AUTH=ANONYMOUS".into());
    if ctx.scram_available {
        out.push("AUTH=SCRAM-SHA-256".into());
    }
    if ctx.passwords_allowed {
        out.push("AUTH=PLAIN".into());
    }
    // CAR and QUERYLEVEL default to the full levels, so the minimal ones are sent explicitly
    // (spec §4).
    out.push("CAR=CAR-MIN".into());
    out.push("QUERYLEVEL=SQL-MIN".into());
    out.push(format!("MAXICALOBJECTSIZE={}", ctx.max_object_size));
    out.push(format!("MINDATE={MINDATE}"));
    out.push(format!("MAXDATE={MAXDATE}"));
    out.push(format!("MAXCALIDEXPANDLIST={EXPAND_LIMIT}"));
    out.push(format!("MAXUPNEXPANDLIST={EXPAND_LIMIT}"));
    out.push("PIPELINE=1".into());
    out.push(format!("AUTOLOGOUTTIME={}", ctx.autologout_secs));
    if ctx.starttls_available {
        // Not a draft capability (the drafts have no way to announce STARTTLS); clients ignore
        // unknown X- names (cap-04 §7.1.5), people at a terminal learn they can upgrade.
        out.push("X-CALGATE-STARTTLS=1".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> CapabilityContext {
        CapabilityContext {
            passwords_allowed: false,
            scram_available: false,
            starttls_available: true,
            identity: None,
            max_object_size: 1024,
            autologout_secs: 900,
        }
    }

    #[test]
    fn plain_only_where_passwords_may_go() {
        assert!(!lines(&ctx()).contains(&"AUTH=PLAIN".to_owned()));
        let mut c = ctx();
        c.passwords_allowed = true;
        assert!(lines(&c).contains(&"AUTH=PLAIN".to_owned()));
    }

    #[test]
    fn scram_whenever_accounts_exist() {
        assert!(!lines(&ctx()).contains(&"AUTH=SCRAM-SHA-256".to_owned()));
        let mut c = ctx();
        c.scram_available = true;
        let l = lines(&c);
        assert!(l.contains(&"AUTH=SCRAM-SHA-256".to_owned()));
        assert!(!l.contains(&"AUTH=PLAIN".to_owned()));
    }

    #[test]
    fn identity_first_once_known() {
        let mut c = ctx();
        c.identity = Some("@".into());
        c.starttls_available = false;
        let l = lines(&c);
        assert_eq!(l[0], "IDENTITY=@");
        assert!(l.contains(&"CAR=CAR-MIN".to_owned()));
        assert!(l.contains(&"MAXICALOBJECTSIZE=1024".to_owned()));
        assert!(!l.iter().any(|x| x.starts_with("X-CALGATE-STARTTLS")));
    }
}
