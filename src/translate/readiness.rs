//! `/readyz`: whether the gateway can serve requests now.
//!
//! Ready means: the upstream circuit breaker is not open ([`crate::caldav::resilience`]), the
//! upstream answers HTTP, and — when a service account is configured — CalDAV discovery works
//! for it (RFC 6764 §6 / RFC 5397 current-user-principal, then one PROPFIND per check once its
//! principal is known). Without a service account the gateway holds no credentials of its own,
//! so the check is an unauthenticated `OPTIONS` on the base URL answered below 500.

use super::Gateway;
use crate::caldav::CircuitState;

impl Gateway {
    /// `Ok` when ready, else the reason (no secrets: it is shown to the prober).
    pub async fn readiness(&self) -> Result<(), String> {
        let client = self.discovery.client();
        if let CircuitState::Open { remaining } = client.circuit() {
            return Err(format!(
                "upstream circuit breaker open after repeated failures (next trial in {} s)",
                remaining.as_secs().max(1)
            ));
        }
        match &self.service {
            Some(service) => self
                .discovery
                .authenticate(service)
                .await
                .map(|_| ())
                .map_err(|e| format!("discovery with the service account failed: {e}")),
            None => {
                let base = client.base().clone();
                match client
                    .send(&reqwest::Method::OPTIONS, &base, None, &[], None)
                    .await
                {
                    Ok(r) if r.status < 500 => Ok(()),
                    Ok(r) => Err(format!("upstream answers HTTP {}", r.status)),
                    Err(e) => Err(format!("upstream unreachable: {e}")),
                }
            }
        }
    }
}
