//! Listeners, connection limits and shutdown.
//!
//! One accept loop per enabled listener. Each connection gets its own task (which owns the
//! socket) after two checks: the global connection cap and the per-client-IP cap; over either,
//! the client hears the protocol's "too many connections" line and the socket is closed. A
//! `CancellationToken` tells sessions to finish, and a `TaskTracker` lets shutdown wait for
//! them within a grace period.

use crate::config::{Config, PlaintextPolicy};
use crate::translate::Gateway;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration could not be turned into a running gateway.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The STARTTLS certificate or key could not be loaded.
    #[error("cap.tls_cert / cap.tls_key: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// A listener could not bind.
    #[error("cannot listen on {addr} ({protocol}): {source}")]
    Bind {
        protocol: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// What a connection task gets.
#[derive(Clone)]
pub struct ConnectionContext {
    /// The configuration.
    pub config: Arc<Config>,
    /// The translation layer.
    pub gateway: Arc<Gateway>,
    /// Cancelled when the gateway shuts down.
    pub shutdown: CancellationToken,
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether a password may be sent on this connection without TLS.
    pub passwords_allowed: bool,
    /// The listener's TLS acceptor, when STARTTLS is configured (CAP only).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// SASL with the SCRAM accounts, built once at start (CAP only).
    pub sasl: Option<crate::cap::sasl::Sasl>,
}

impl std::fmt::Debug for ConnectionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionContext")
            .field("peer", &self.peer)
            .field("passwords_allowed", &self.passwords_allowed)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// Counts connections per client IP; the guard gives its slot back when dropped.
#[derive(Debug, Default)]
struct PerIp {
    counts: Mutex<HashMap<IpAddr, usize>>,
}

#[derive(Debug)]
struct IpSlot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<IpSlot> {
        let mut counts = self.counts.lock().ok()?;
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            owner: self.clone(),
            ip,
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.owner.counts.lock()
            && let Some(n) = counts.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A running gateway.
#[derive(Debug)]
pub struct Running {
    /// Where the CAP listener is bound, when enabled.
    pub cap_addr: Option<SocketAddr>,
    /// Where the CIP listener is bound, when enabled.
    pub cip_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    /// Stops accepting, tells sessions to finish, and waits up to `grace` for them.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("sessions still running after the grace period; leaving them");
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Protocol {
    Cap,
    Cip,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Cap => "CAP",
            Protocol::Cip => "CIP",
        }
    }

    /// What a client over the connection limit hears before the close: CAP `8.1` "too busy"
    /// (cap-04 §7.1.1) in the listener's framing, CIP `NO 000`.
    fn too_many(self, config: &Config) -> Vec<u8> {
        let lines = match self {
            Protocol::Cap => crate::cap::reply::busy().render(None, config.cap.response_framing),
            Protocol::Cip => vec!["NO 000 Too many connections".to_owned()],
        };
        lines
            .iter()
            .flat_map(|l| [l.as_str(), "\r\n"])
            .collect::<String>()
            .into_bytes()
    }
}

/// Binds the enabled listeners and starts accepting.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let config = Arc::new(config);
    let gateway = Arc::new(Gateway::new(&config)?);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let slots = Arc::new(Semaphore::new(config.limits.max_connections));
    let per_ip = Arc::new(PerIp::default());
    let mut cip_addr = None;
    let mut cap_addr = None;

    if config.cap.enabled {
        let sasl = cap_sasl(&config)?;
        let tls = match (&config.cap.tls_cert, &config.cap.tls_key) {
            (Some(cert), Some(key)) => Some(tokio_rustls::TlsAcceptor::from(
                crate::tls::server_config(cert, key)?,
            )),
            _ => None,
        };
        let (listener, bound) = bind("CAP", config.cap.listen).await?;
        if tls.is_none() && !bound.ip().is_loopback() {
            tracing::warn!(
                listen = %bound,
                "CAP listens beyond loopback without STARTTLS; PLAIN is offered only as \
                 auth.plaintext_passwords allows"
            );
        }
        tracing::info!(listen = %bound, starttls = tls.is_some(), "CAP listener ready");
        cap_addr = Some(bound);
        tracker.spawn(accept_loop(
            Protocol::Cap,
            listener,
            tls,
            Some(sasl),
            config.clone(),
            gateway.clone(),
            shutdown.clone(),
            tracker.clone(),
            slots.clone(),
            per_ip.clone(),
        ));
    }
    if config.cip.enabled {
        let (listener, bound) = bind("CIP", config.cip.listen).await?;
        if !bound.ip().is_loopback() {
            tracing::warn!(
                listen = %bound,
                "CIP is plaintext and listens beyond loopback; passwords are accepted only as \
                 auth.plaintext_passwords allows"
            );
        }
        tracing::info!(listen = %bound, server_id = %config.gateway.server_id, "CIP listener ready");
        cip_addr = Some(bound);
        tracker.spawn(accept_loop(
            Protocol::Cip,
            listener,
            None,
            None,
            config.clone(),
            gateway.clone(),
            shutdown.clone(),
            tracker.clone(),
            slots.clone(),
            per_ip.clone(),
        ));
    }
    Ok(Running {
        cap_addr,
        cip_addr,
        shutdown,
        tracker,
    })
}

/// CAP's SASL configuration with the SCRAM accounts of `[[auth.local_accounts]]`, built once.
fn cap_sasl(config: &Config) -> Result<crate::cap::sasl::Sasl, StartError> {
    let accounts = config
        .auth
        .local_accounts
        .iter()
        .map(crate::cap::sasl::ScramAccount::from_config)
        .collect::<Result<Vec<_>, String>>()
        .and_then(|a| crate::cap::sasl::Sasl::new(Arc::from(a), &config.upstream.domain));
    accounts.map_err(|reason| {
        StartError::Config(crate::config::ConfigError::Invalid {
            key: "auth.local_accounts".into(),
            reason,
        })
    })
}

/// Binds a listener; returns it with the address it really got (port 0 → an ephemeral port).
async fn bind(
    protocol: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind {
            protocol,
            addr,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(addr);
    Ok((listener, bound))
}

#[allow(clippy::too_many_arguments)]
async fn accept_loop(
    protocol: Protocol,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    sasl: Option<crate::cap::sasl::Sasl>,
    config: Arc<Config>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let permit = slots.clone().try_acquire_owned().ok();
        let ip_slot = per_ip.take(peer.ip(), config.limits.max_connections_per_ip);
        let (Some(permit), Some(ip_slot)) = (permit, ip_slot) else {
            tracing::warn!(peer = %peer, protocol = protocol.name(), "connection limit reached");
            tracker.spawn(refuse(stream, protocol.too_many(&config)));
            continue;
        };
        let passwords_allowed = match config.auth.plaintext_passwords {
            PlaintextPolicy::Always => true,
            PlaintextPolicy::Loopback => peer.ip().is_loopback(),
            PlaintextPolicy::Never => false,
        };
        let ctx = ConnectionContext {
            config: config.clone(),
            gateway: gateway.clone(),
            shutdown: shutdown.child_token(),
            peer,
            passwords_allowed,
            tls: tls.clone(),
            sasl: sasl.clone(),
        };
        tracker.spawn(connection(protocol, stream, ctx, permit, ip_slot));
    }
}

async fn refuse(mut stream: TcpStream, answer: Vec<u8>) {
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        let _ = stream.write_all(&answer).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

async fn connection(
    protocol: Protocol,
    stream: TcpStream,
    ctx: ConnectionContext,
    _permit: OwnedSemaphorePermit,
    _ip_slot: IpSlot,
) {
    let span = tracing::info_span!("conn", proto = protocol.name(), peer = %ctx.peer);
    let _ = tracing::Instrument::instrument(
        async move {
            tracing::debug!("connection accepted");
            match protocol {
                Protocol::Cap => crate::cap::connection::serve(stream, ctx).await,
                Protocol::Cip => crate::cip::connection::serve(stream, ctx).await,
            }
        },
        span,
    )
    .await;
}

/// Runs the gateway until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn run(config: Config) -> Result<(), StartError> {
    let grace = Duration::from_secs(config.limits.command_timeout_secs.min(30));
    let running = start(config).await?;
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown(grace).await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
