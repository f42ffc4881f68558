//! The task that owns one CAP connection: it reads frames, feeds the [`Session`], and carries
//! out its actions, including the STARTTLS upgrade (cap-04 §7.1.10).
//!
//! STARTTLS follows the CVE-2011-0411 rule: bytes that arrived in plaintext after the STARTTLS
//! line are never executed. If any are buffered when the upgrade starts, the connection is
//! dropped; after the handshake the codec starts afresh on the TLS stream, with empty buffers.
//! One task owns the socket, so nothing reads it while the upgrade is pending.

use super::session::{Action, Done, EXPAND_LIMIT, Input, Session, SessionConfig, Work};
use crate::framing::{self, DotCodec, Frame, Limits};
use crate::metrics::{CommandResult, Limit, Protocol};
use crate::server::ConnectionContext;
use crate::stream::ClientStream;
use crate::translate::Gateway;
use futures_util::{SinkExt, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::codec::Framed;
use tokio_util::either::Either;

type WorkFuture = Pin<Box<dyn Future<Output = Done> + Send>>;
type Conn = Framed<ClientStream, DotCodec>;

/// The one line a TLS client on the plaintext port hears before the close.
const TLS_ON_PLAINTEXT: &str =
    "9.0 ; TLS handshake on a plaintext CSTP port: use STARTTLS here, or the implicit-TLS port";

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn timed_out(work: &Work, timeout: Duration) -> Done {
    let e = crate::caldav::CaldavError::command_timeout(timeout);
    match work {
        Work::Login { .. } => Done::Login(Err(crate::translate::LoginError::Unavailable(e))),
        Work::Identify { .. } => Done::Identify(Err(e.into())),
        Work::CalidExpand { .. } | Work::UpnExpand { .. } => Done::Expand(Err(e.into())),
        Work::Command { .. } => Done::Command(Err(e.into())),
    }
}

/// The `verb` label of the work's command in `calgate_commands_total`.
fn verb_of(work: &Work) -> String {
    match work {
        Work::Login { .. } => "AUTHENTICATE".into(),
        Work::Identify { .. } => "IDENTIFY".into(),
        Work::CalidExpand { .. } => "CALIDEXPAND".into(),
        Work::UpnExpand { .. } => "UPNEXPAND".into(),
        Work::Command { payload, .. } => payload.method.name().to_owned(),
    }
}

/// The `result` label of finished work.
fn result_of(done: &Done) -> CommandResult {
    let failed = match done {
        Done::Login(r) => r.as_ref().err().map(|e| e.command_result()),
        Done::Identify(r) => r.as_ref().err().map(|e| e.command_result()),
        Done::Expand(r) => r.as_ref().err().map(|e| e.command_result()),
        Done::Command(r) => r.as_ref().err().map(|e| e.command_result()),
    };
    failed.unwrap_or(CommandResult::Ok)
}

fn start(ctx: &ConnectionContext, work: Work) -> WorkFuture {
    let gateway: Arc<Gateway> = ctx.gateway.clone();
    let on_timeout = timed_out(
        &work,
        Duration::from_secs(ctx.config.limits.command_timeout_secs),
    );
    ctx.within_command_timeout(
        async move {
            match work {
                Work::Login { user, password } => {
                    Done::Login(gateway.login(&user, &password).await)
                }
                Work::Identify { identity, upn } => {
                    Done::Identify(gateway.identify(&identity, &upn).await)
                }
                Work::CalidExpand { identity, calid } => {
                    Done::Expand(gateway.calid_expand(&identity, &calid, EXPAND_LIMIT).await)
                }
                Work::UpnExpand { identity, upn } => {
                    Done::Expand(gateway.upn_expand(&identity, &upn, EXPAND_LIMIT).await)
                }
                Work::Command { identity, payload } => {
                    Done::Command(super::senddata::execute(&gateway, &identity, &payload).await)
                }
            }
        },
        on_timeout,
    )
}

/// Serves one CAP connection until it ends.
pub async fn serve(stream: ClientStream, ctx: ConnectionContext) {
    let cfg = &ctx.config;
    let Some(sasl) = ctx.sasl.clone() else {
        tracing::error!("CAP connection without SASL configuration; closing");
        return;
    };
    let mut session = Session::new(
        SessionConfig {
            plaintext_allowed: ctx.passwords_allowed,
            tls_available: ctx.tls.is_some(),
            implicit_tls: ctx.implicit_tls,
            auth_retries: cfg.cap.auth_retries,
            max_sasl_steps: cfg.limits.max_sasl_steps,
            max_preauth_commands: cfg.limits.max_preauth_commands,
            max_object_size: cfg.limits.max_payload_bytes,
            autologout_secs: cfg.limits.idle_timeout_secs,
            framing: cfg.cap.response_framing,
            senddata_goahead: cfg.cap.senddata_goahead,
            pending_code: cfg.cap.pending_code,
            leading_dot_on_pending: cfg.cap.leading_dot_on_pending,
            abort_code: cfg.cap.abort_code,
            max_line: cfg.limits.max_line_bytes,
            server_id: cfg.gateway.server_id.clone(),
        },
        sasl,
    );
    let limits = Limits::from_config(&cfg.limits);
    let mut framed = framing::framed(stream, limits);
    for line in session.greeting() {
        if framed.feed(line).await.is_err() {
            return;
        }
    }
    if framed.flush().await.is_err() {
        return;
    }
    let idle = Duration::from_secs(cfg.limits.idle_timeout_secs);
    let preauth = Duration::from_secs(cfg.limits.preauth_timeout_secs);
    let mut work: Option<WorkFuture> = None;
    let mut latency: Option<Instant> = None;
    let mut client_gone = false;
    // Logging in must finish within the pre-authentication limit of the connection's start:
    // a client trickling bytes or sending NOOPs does not extend it.
    let preauth_deadline = Instant::now() + preauth;
    let mut idle_deadline = preauth_deadline;
    // The keyed hash of the credentials of the login being checked (auth_penalty).
    let mut login_key = None;
    // The verb of the running work, for calgate_commands_total.
    let mut running_verb = String::new();
    let mut user_recorded = false;
    // The codec is in block mode (from ExpectBlock to the block's frame).
    let mut in_block = false;
    let metrics = ctx.metrics.clone();

    'session: loop {
        let input = tokio::select! {
            done = async { work.as_mut().expect("guarded by the select condition").await }, if work.is_some() => {
                work = None;
                metrics.command(Protocol::Cap, &running_verb, result_of(&done));
                Input::Done(done)
            }
            _ = async { tokio::time::sleep_until(latency.expect("guarded")).await }, if latency.is_some() => {
                latency = None;
                Input::LatencyExpired
            }
            frame = framed.next(), if session.wants_input() && !client_gone => match frame {
                Some(Ok(frame)) => {
                    ctx.count_frame(&frame);
                    if matches!(frame, Frame::Block(_) | Frame::BlockTooLarge) {
                        in_block = false;
                    }
                    Input::Frame(frame)
                }
                end => {
                    if let Some(Err(e)) = end {
                        if crate::stream::is_tls_on_plaintext(&e) {
                            tracing::info!("TLS handshake on the plaintext CAP port; closing");
                            let _ = framed.send(TLS_ON_PLAINTEXT.to_owned()).await;
                            break;
                        }
                        tracing::debug!(error = %e, "CAP read error");
                    }
                    // The client is gone. A running command still finishes (nothing is left
                    // half-applied upstream); with none running the connection ends now.
                    if work.is_none() {
                        break;
                    }
                    client_gone = true;
                    continue;
                }
            },
            _ = tokio::time::sleep_until(idle_deadline), if work.is_none() => {
                // cap-04 §4.7 (AUTOLOGOUTTIME): the server simply drops the connection.
                tracing::info!(authenticated = session.is_authenticated(), "CAP idle timeout");
                metrics.limit_hit(if session.is_authenticated() {
                    Limit::IdleTimeout
                } else {
                    Limit::PreauthTimeout
                });
                break;
            }
            _ = ctx.shutdown.cancelled(), if work.is_none() => {
                for line in session.shutdown_reply() {
                    let _ = framed.feed(line).await;
                }
                let _ = framed.flush().await;
                break;
            }
        };
        let from_client = matches!(input, Input::Frame(_));
        let mut inputs = VecDeque::from([input]);
        let mut close = false;
        while let Some(input) = inputs.pop_front() {
            for action in session.handle(input) {
                match action {
                    Action::Send(line) => {
                        if framed.feed(line).await.is_err() {
                            close = true;
                        }
                    }
                    Action::ExpectBlock => {
                        framed.codec_mut().expect_block();
                        in_block = true;
                    }
                    Action::Run(w) => {
                        if let Work::Login { user, password } = &w {
                            login_key = Some(ctx.penalty.key(user, password.expose()));
                        }
                        running_verb = verb_of(&w);
                        work = Some(start(&ctx, w));
                    }
                    Action::CancelWork => {
                        if work.take().is_some() {
                            tracing::info!("CAP command aborted; its upstream request was dropped");
                        }
                    }
                    Action::Latency(d) => latency = d.map(|d| Instant::now() + d),
                    Action::LoginFailed => {
                        let d = ctx.login_failed(Protocol::Cap, login_key.take());
                        let _ = framed.flush().await;
                        tokio::time::sleep(d).await;
                    }
                    Action::LimitHit(limit) => metrics.limit_hit(limit),
                    Action::Close => close = true,
                    Action::StartTls(proceed) => {
                        let Some(acceptor) = ctx.tls.clone() else {
                            break 'session;
                        };
                        // Boxed: the handshake's state is large and rare, and a future is as
                        // big as its largest await point, so inline it would enlarge every
                        // idle session's task.
                        match Box::pin(upgrade(framed, &proceed, acceptor, limits)).await {
                            Some(f) => {
                                framed = f;
                                in_block = false;
                                inputs.push_back(Input::TlsEstablished);
                            }
                            None => break 'session,
                        }
                    }
                }
            }
        }
        if framed.flush().await.is_err() {
            close = true;
        }
        if close || session.is_closed() {
            break;
        }
        if client_gone && work.is_none() {
            break;
        }
        framing::tend_buffers(&mut framed, in_block, work.is_none());
        if let Some(who) = session.identity()
            && !user_recorded
        {
            user_recorded = true;
            tracing::Span::current().record("user", tracing::field::display(who.describe()));
        }
        if !session.is_authenticated() {
            idle_deadline = preauth_deadline;
        } else if from_client || work.is_none() {
            idle_deadline = Instant::now() + idle;
        }
    }
    tracing::debug!("CAP connection closed");
}

/// STARTTLS: refuse pipelined plaintext, send the proceed line, hand the socket to rustls, and
/// start a fresh codec on the TLS stream. `None` means the connection must be dropped.
async fn upgrade(
    mut framed: Conn,
    proceed: &str,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: Limits,
) -> Option<Conn> {
    if !framed.read_buffer().is_empty() {
        // CVE-2011-0411: these bytes came in plaintext after STARTTLS; executing them as if
        // they were protected is the bug. Drop the connection instead.
        tracing::warn!(
            buffered = framed.read_buffer().len(),
            "CAP client sent data after STARTTLS before the handshake; connection dropped"
        );
        return None;
    }
    if framed.send(proceed.to_owned()).await.is_err() {
        return None;
    }
    // Nothing reads between the check above and here, so the parts' buffers are empty.
    let Either::Left(plain) = framed.into_parts().io else {
        return None;
    };
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(plain.into_inner())).await {
        Ok(Ok(tls)) => {
            tracing::info!("CAP STARTTLS complete");
            Some(framing::framed(Either::Right(Box::new(tls)), limits))
        }
        Ok(Err(e)) => {
            tracing::info!(error = %e, "CAP TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::info!("CAP TLS handshake timed out");
            None
        }
    }
}
