//! Listeners, connection limits and shutdown.
//!
//! One accept loop per listener: CAP and CIP each have a plaintext listener and, optionally, an
//! implicit-TLS one. Each connection gets its own task (which owns the socket). The global
//! connection cap is checked at accept; the task then reads the PROXY protocol header when the
//! listener expects one (so the per-IP cap and the logs see the real client), checks the
//! per-client-IP cap, runs the TLS handshake on an implicit-TLS listener, and hands the stream
//! to the protocol. Over either cap the client hears the protocol's "too many connections" line
//! and the socket is closed. A `CancellationToken` tells sessions to finish, and a
//! `TaskTracker` lets shutdown wait for them within the grace period.

use crate::auth_penalty::AuthPenalty;
use crate::config::{Config, PlaintextPolicy};
use crate::metrics::{Limit, Metrics, RefusedReason};
use crate::stream::{ClientStream, PlainStream};
use crate::translate::Gateway;
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::either::Either;
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
    /// The client's address (from the PROXY header when the listener expects one).
    pub peer: SocketAddr,
    /// Whether a password may be sent on this connection without STARTTLS.
    pub passwords_allowed: bool,
    /// Whether the connection is TLS from its first byte (an implicit-TLS listener).
    pub implicit_tls: bool,
    /// The listener's TLS acceptor, when STARTTLS is configured (CAP only).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// SASL with the SCRAM accounts, built once at start (CAP only).
    pub sasl: Option<crate::cap::sasl::Sasl>,
    /// Failed-login delays per client address, shared by all listeners.
    pub penalty: Arc<AuthPenalty>,
    /// The gateway's metrics.
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for ConnectionContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionContext")
            .field("peer", &self.peer)
            .field("passwords_allowed", &self.passwords_allowed)
            .field("implicit_tls", &self.implicit_tls)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ConnectionContext {
    /// Counts a frame that ran into the line or payload limit (`calgate_limit_hits_total`).
    pub fn count_frame(&self, frame: &crate::framing::Frame) {
        match frame {
            crate::framing::Frame::LineTooLong => self.metrics.limit_hit(Limit::LineLength),
            crate::framing::Frame::BlockTooLarge => self.metrics.limit_hit(Limit::PayloadSize),
            _ => {}
        }
    }

    /// A refused login: counts it and returns the pause before answering, kept per client
    /// address ([`AuthPenalty`]); `key` names the credentials tried, when they were seen.
    pub fn login_failed(
        &self,
        protocol: crate::metrics::Protocol,
        key: Option<crate::auth_penalty::CredentialKey>,
    ) -> Duration {
        self.metrics.auth_failure(protocol);
        let delay = self.penalty.failed(self.peer.ip(), key.as_ref());
        tracing::info!(delay_ms = delay.as_millis() as u64, "login failed");
        delay
    }

    /// One command's work bounded by `limits.command_timeout_secs`: past it the limit hit is
    /// counted and `on_timeout` is the result. The returned future owns everything it needs.
    pub fn within_command_timeout<T: Send + 'static>(
        &self,
        work: impl Future<Output = T> + Send + 'static,
        on_timeout: T,
    ) -> Pin<Box<dyn Future<Output = T> + Send>> {
        let timeout = Duration::from_secs(self.config.limits.command_timeout_secs);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            tokio::time::timeout(timeout, work)
                .await
                .unwrap_or_else(|_| {
                    tracing::info!(limit = "command_timeout", "command timed out");
                    metrics.limit_hit(Limit::CommandTimeout);
                    on_timeout
                })
        })
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
    /// Where the CAP implicit-TLS listener is bound, when configured.
    pub cap_tls_addr: Option<SocketAddr>,
    /// Where the CIP listener is bound, when enabled.
    pub cip_addr: Option<SocketAddr>,
    /// Where the CIP implicit-TLS listener is bound, when configured.
    pub cip_tls_addr: Option<SocketAddr>,
    /// Where the admin HTTP listener is bound, when enabled.
    pub admin_addr: Option<SocketAddr>,
    /// The gateway's metrics (also served on the admin listener).
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Running {
    /// Stops accepting, tells idle sessions (CAP `10.2`, CIP `NO 000 Server shutting down`),
    /// lets running commands finish and waits up to `grace` for every connection to end.
    /// Connections still running after it are left to the process's exit.
    pub async fn shutdown(self, grace: Duration) {
        self.shutdown.cancel();
        self.tracker.close();
        if tokio::time::timeout(grace, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "connections still running after the shutdown grace period; leaving them"
            );
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

    fn metric(self) -> crate::metrics::Protocol {
        match self {
            Protocol::Cap => crate::metrics::Protocol::Cap,
            Protocol::Cip => crate::metrics::Protocol::Cip,
        }
    }

    /// What a client over the connection limit hears before the close: CAP `8.1` "too busy"
    /// (cap-04 §7.1.1) in the listener's framing, CIP `NO 000`.
    fn too_many(self, config: &Config) -> Vec<u8> {
        let lines = match self {
            Protocol::Cap => crate::cap::reply::busy().render(None, config.cap.response_framing),
            Protocol::Cip => vec!["NO 000 Too many connections".to_owned()],
        };
        wire(&lines)
    }
}

fn wire(lines: &[String]) -> Vec<u8> {
    lines
        .iter()
        .flat_map(|l| [l.as_str(), "\r\n"])
        .collect::<String>()
        .into_bytes()
}

/// How long a PROXY protocol header may take to arrive.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a TLS handshake on an implicit-TLS listener may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// One listening socket and what its connections get.
#[derive(Clone)]
struct ListenerKind {
    protocol: Protocol,
    /// TLS from the first byte.
    implicit_tls: Option<tokio_rustls::TlsAcceptor>,
    /// STARTTLS offered (CAP plaintext listener).
    starttls: Option<tokio_rustls::TlsAcceptor>,
    /// A PROXY protocol header comes first.
    proxy_protocol: bool,
}

/// What every accept loop and connection task shares.
struct Shared {
    config: Arc<Config>,
    gateway: Arc<Gateway>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
    per_ip: Arc<PerIp>,
    penalty: Arc<AuthPenalty>,
    metrics: Arc<Metrics>,
    sasl: Option<crate::cap::sasl::Sasl>,
    next_id: AtomicU64,
}

/// Binds the enabled listeners and starts accepting.
pub async fn start(config: Config) -> Result<Running, StartError> {
    let config = Arc::new(config);
    let metrics = Arc::new(Metrics::new());
    let gateway = Arc::new(Gateway::with_metrics(&config, Some(metrics.clone()))?);
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let sasl = if config.cap.enabled {
        Some(cap_sasl(&config)?)
    } else {
        None
    };
    let shared = Arc::new(Shared {
        config: config.clone(),
        gateway,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        slots: Arc::new(Semaphore::new(config.limits.max_connections)),
        per_ip: Arc::new(PerIp::default()),
        penalty: Arc::new(AuthPenalty::from_config(&config.auth)),
        metrics: metrics.clone(),
        sasl,
        next_id: AtomicU64::new(1),
    });
    let acceptor = |cert: &Option<PathBuf>, key: &Option<PathBuf>| -> Result<_, StartError> {
        Ok(match (cert, key) {
            (Some(cert), Some(key)) => Some(tokio_rustls::TlsAcceptor::from(
                crate::tls::server_config(cert, key)?,
            )),
            _ => None,
        })
    };
    let mut running = Running {
        cap_addr: None,
        cap_tls_addr: None,
        cip_addr: None,
        cip_tls_addr: None,
        admin_addr: None,
        metrics,
        shutdown,
        tracker,
    };

    if config.cap.enabled {
        let tls = acceptor(&config.cap.tls_cert, &config.cap.tls_key)?;
        let kind = |implicit_tls, starttls| ListenerKind {
            protocol: Protocol::Cap,
            implicit_tls,
            starttls,
            proxy_protocol: config.cap.proxy_protocol,
        };
        let plain = kind(None, tls.clone());
        running.cap_addr = Some(open("CAP", config.cap.listen, plain, &shared).await?);
        if let Some(addr) = config.cap.tls_listen {
            running.cap_tls_addr = Some(open("CAP TLS", addr, kind(tls, None), &shared).await?);
        }
    }
    if config.admin.enabled {
        let (listener, bound) = bind("admin", config.admin.listen).await?;
        if !bound.ip().is_loopback() {
            tracing::warn!(listen = %bound, "the admin listener is reachable beyond loopback");
        }
        tracing::info!(listen = %bound, "admin listener ready (/healthz, /readyz, /metrics)");
        running.admin_addr = Some(bound);
        let gateway = shared.gateway.clone();
        let ready = crate::admin::Readiness::new(move || {
            let gateway = gateway.clone();
            async move { gateway.readiness().await }
        });
        running.tracker.spawn(crate::admin::serve(
            listener,
            running.metrics.clone(),
            ready,
            running.shutdown.clone(),
        ));
    }
    if config.cip.enabled {
        let kind = |implicit_tls| ListenerKind {
            protocol: Protocol::Cip,
            implicit_tls,
            starttls: None,
            proxy_protocol: config.cip.proxy_protocol,
        };
        running.cip_addr = Some(open("CIP", config.cip.listen, kind(None), &shared).await?);
        if let Some(addr) = config.cip.tls_listen {
            let tls = acceptor(&config.cip.tls_cert, &config.cip.tls_key)?;
            running.cip_tls_addr = Some(open("CIP TLS", addr, kind(tls), &shared).await?);
        }
    }
    Ok(running)
}

/// Binds one CAP or CIP listener, logs "<name> listener ready listen=<address>" (operators and
/// tests read the port from it when 0 was asked for), warns when a listener without any TLS is
/// reachable beyond loopback, and starts its accept loop.
async fn open(
    name: &'static str,
    addr: SocketAddr,
    kind: ListenerKind,
    shared: &Arc<Shared>,
) -> Result<SocketAddr, StartError> {
    let (listener, bound) = bind(name, addr).await?;
    if kind.implicit_tls.is_none() && kind.starttls.is_none() && !bound.ip().is_loopback() {
        match kind.protocol {
            Protocol::Cap => tracing::warn!(
                listen = %bound,
                "CAP listens beyond loopback without STARTTLS; PLAIN is offered only as \
                 auth.plaintext_passwords allows"
            ),
            Protocol::Cip => tracing::warn!(
                listen = %bound,
                "CIP is plaintext and listens beyond loopback; passwords are accepted only as \
                 auth.plaintext_passwords allows (cip.tls_listen offers CIP over TLS)"
            ),
        }
    }
    tracing::info!(
        listen = %bound,
        implicit_tls = kind.implicit_tls.is_some(),
        starttls = kind.starttls.is_some(),
        proxy_protocol = kind.proxy_protocol,
        "{name} listener ready"
    );
    shared
        .tracker
        .spawn(accept_loop(kind, listener, shared.clone()));
    Ok(bound)
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

async fn accept_loop(kind: ListenerKind, listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shared.shutdown.cancelled() => break,
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
        let Ok(permit) = shared.slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, protocol = kind.protocol.name(), "connection limit reached");
            shared
                .metrics
                .connection_refused(kind.protocol.metric(), RefusedReason::GlobalLimit);
            let answer = kind.protocol.too_many(&shared.config);
            shared
                .tracker
                .spawn(refuse(stream, kind.implicit_tls.clone(), answer));
            continue;
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        shared.tracker.spawn(connection(
            kind.clone(),
            stream,
            peer,
            id,
            shared.clone(),
            permit,
        ));
    }
}

/// Answers one line (after the TLS handshake on an implicit-TLS listener) and closes.
async fn refuse(stream: TcpStream, tls: Option<tokio_rustls::TlsAcceptor>, answer: Vec<u8>) {
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        match tls {
            Some(acceptor) => {
                if let Ok(mut s) = acceptor.accept(stream).await {
                    let _ = s.write_all(&answer).await;
                    let _ = s.shutdown().await;
                }
            }
            None => {
                let mut s = stream;
                let _ = s.write_all(&answer).await;
                let _ = s.shutdown().await;
            }
        }
    })
    .await;
}

/// One connection: the PROXY header (when expected), the per-IP cap, the TLS handshake (on
/// an implicit-TLS listener), then the protocol's session, all inside the connection's span.
async fn connection(
    kind: ListenerKind,
    mut stream: TcpStream,
    socket_peer: SocketAddr,
    id: u64,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let span = tracing::info_span!(
        "conn",
        id,
        proto = kind.protocol.name(),
        peer = %socket_peer,
        tls = kind.implicit_tls.is_some(),
        user = tracing::field::Empty,
    );
    let run = async move {
        let peer = if kind.proxy_protocol {
            match tokio::time::timeout(
                PROXY_HEADER_TIMEOUT,
                crate::proxy_protocol::read_header(&mut stream),
            )
            .await
            {
                Ok(Ok(header)) => {
                    let peer = header.source.unwrap_or(socket_peer);
                    tracing::Span::current().record("peer", tracing::field::display(peer));
                    tracing::debug!(balancer = %socket_peer, "PROXY header read");
                    peer
                }
                Ok(Err(e)) => {
                    tracing::info!(error = %e, "bad PROXY protocol header; connection closed");
                    return;
                }
                Err(_) => {
                    tracing::info!("no PROXY protocol header in time; connection closed");
                    return;
                }
            }
        } else {
            socket_peer
        };
        let Some(_ip_slot) = shared
            .per_ip
            .take(peer.ip(), shared.config.limits.max_connections_per_ip)
        else {
            tracing::warn!("per-address connection limit reached");
            shared
                .metrics
                .connection_refused(kind.protocol.metric(), RefusedReason::PerIpLimit);
            // Boxed, like the handshake below: a future is as large as its largest await, and
            // every idle session's task would otherwise carry room for these rare ones
            // (BENCHMARKS.md, idle sessions: 5.7 → 3.2 KiB per session).
            Box::pin(refuse(
                stream,
                kind.implicit_tls.clone(),
                kind.protocol.too_many(&shared.config),
            ))
            .await;
            return;
        };
        let client: ClientStream = match &kind.implicit_tls {
            Some(acceptor) => {
                match Box::pin(tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    acceptor.accept(stream),
                ))
                .await
                {
                    Ok(Ok(tls)) => Either::Right(Box::new(tls)),
                    Ok(Err(e)) => {
                        tracing::info!(error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::info!("TLS handshake timed out");
                        return;
                    }
                }
            }
            None => Either::Left(PlainStream::new(stream)),
        };
        let _open = shared.metrics.connection_opened(kind.protocol.metric());
        let passwords_allowed = kind.implicit_tls.is_some()
            || match shared.config.auth.plaintext_passwords {
                PlaintextPolicy::Always => true,
                PlaintextPolicy::Loopback => peer.ip().is_loopback(),
                PlaintextPolicy::Never => false,
            };
        let ctx = ConnectionContext {
            config: shared.config.clone(),
            gateway: shared.gateway.clone(),
            shutdown: shared.shutdown.child_token(),
            peer,
            passwords_allowed,
            implicit_tls: kind.implicit_tls.is_some(),
            tls: kind.starttls.clone(),
            sasl: shared.sasl.clone(),
            penalty: shared.penalty.clone(),
            metrics: shared.metrics.clone(),
        };
        tracing::debug!("connection accepted");
        match kind.protocol {
            Protocol::Cap => crate::cap::connection::serve(client, ctx).await,
            Protocol::Cip => crate::cip::connection::serve(client, ctx).await,
        }
    };
    tracing::Instrument::instrument(run, span).await;
}

/// Runs the gateway until SIGINT or SIGTERM, then shuts down gracefully. The signal handlers
/// are installed before the listeners open, so a signal that arrives as soon as the gateway is
/// listening is a graceful shutdown too.
pub async fn run(config: Config) -> Result<(), StartError> {
    let grace = Duration::from_secs(config.limits.shutdown_grace_secs);
    let signals = Signals::install();
    let running = start(config).await?;
    signals.wait().await;
    tracing::info!(grace_secs = grace.as_secs(), "shutting down");
    running.shutdown(grace).await;
    Ok(())
}

/// SIGINT and SIGTERM, registered at once.
struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                term: signal(SignalKind::terminate()).ok(),
                int: signal(SignalKind::interrupt()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn wait(self) {
        #[cfg(unix)]
        {
            let (mut term, mut int) = (self.term, self.int);
            let term = async {
                match term.as_mut() {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match int.as_mut() {
                    Some(i) => {
                        i.recv().await;
                    }
                    None => {
                        let _ = tokio::signal::ctrl_c().await;
                    }
                }
            };
            tokio::select! {
                _ = term => {}
                _ = int => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
