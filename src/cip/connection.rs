//! The task that owns one CIP connection: it reads frames, feeds the [`Session`], and carries
//! out its actions. It keeps reading while a command runs, so an early command or the client
//! closing is noticed; a command that reached the upstream is always allowed to finish (nothing
//! is left half-applied), and the connection then closes if the client has gone.

use super::session::{Action, DataVerb, Done, Input, Session, SessionConfig, Work};
use crate::framing::{self, Frame, Limits};
use crate::metrics::{CommandResult, Limit, Protocol};
use crate::server::ConnectionContext;
use crate::translate::Gateway;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;

type WorkFuture = Pin<Box<dyn Future<Output = Done> + Send>>;

/// The result reported when work runs past the command timeout.
fn timed_out(kind: Option<DataVerb>, timeout: Duration) -> Done {
    let e = crate::caldav::CaldavError::command_timeout(timeout);
    match kind {
        None => Done::Login(Err(crate::translate::LoginError::Unavailable(e))),
        Some(DataVerb::SendEvent) => Done::SendEvent(Err(e.into())),
        Some(DataVerb::Rsvp) => Done::Rsvp(Err(e.into())),
        Some(DataVerb::FreeBusy) => Done::FreeBusy(Err(e.into())),
    }
}

/// The `verb` label of the work's command in `calgate_commands_total`.
fn verb_of(work: &Work) -> &'static str {
    match work {
        Work::Login { .. } => "AUTHENTICATE",
        Work::Data { verb, .. } => match verb {
            DataVerb::SendEvent => "SENDEVENT",
            DataVerb::Rsvp => "RSVP",
            DataVerb::FreeBusy => "FREEBUSY",
        },
    }
}

/// The `result` label of finished work.
fn result_of(done: &Done) -> CommandResult {
    let failed = match done {
        Done::Login(r) => r.as_ref().err().map(|e| e.command_result()),
        Done::SendEvent(r) => r.as_ref().err().map(|e| e.command_result()),
        Done::Rsvp(r) => r.as_ref().err().map(|e| e.command_result()),
        Done::FreeBusy(r) => r.as_ref().err().map(|e| e.command_result()),
    };
    failed.unwrap_or(CommandResult::Ok)
}

fn start(ctx: &ConnectionContext, work: Work) -> WorkFuture {
    let gateway: Arc<Gateway> = ctx.gateway.clone();
    let kind = match &work {
        Work::Login { .. } => None,
        Work::Data { verb, .. } => Some(*verb),
    };
    let on_timeout = timed_out(
        kind,
        Duration::from_secs(ctx.config.limits.command_timeout_secs),
    );
    ctx.within_command_timeout(
        async move {
            match work {
                Work::Login { identity, password } => {
                    Done::Login(gateway.login(&identity, &password).await)
                }
                Work::Data {
                    verb,
                    identity,
                    data,
                } => match verb {
                    DataVerb::SendEvent => {
                        Done::SendEvent(gateway.send_event(&identity, &data).await)
                    }
                    DataVerb::Rsvp => Done::Rsvp(gateway.rsvp(&identity, &data).await),
                    DataVerb::FreeBusy => Done::FreeBusy(gateway.free_busy(&identity, &data).await),
                },
            }
        },
        on_timeout,
    )
}

/// Serves one CIP connection until it ends.
pub async fn serve<S>(stream: S, ctx: ConnectionContext)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let cfg = &ctx.config;
    let mut session = Session::new(SessionConfig {
        server_id: cfg.gateway.server_id.clone(),
        passwords_allowed: ctx.passwords_allowed,
        max_auth_failures: cfg.limits.max_auth_failures,
        max_line: cfg.limits.max_line_bytes,
        max_preauth_commands: cfg.limits.max_preauth_commands,
    });
    let mut framed = framing::framed(stream, Limits::from_config(&cfg.limits));
    if framed.send(session.greeting()).await.is_err() {
        return;
    }
    let idle = Duration::from_secs(cfg.limits.idle_timeout_secs);
    let preauth = Duration::from_secs(cfg.limits.preauth_timeout_secs);
    let mut work: Option<WorkFuture> = None;
    let mut client_gone = false;
    // Logging in (or an anonymous command) must start within the pre-authentication limit of
    // the connection's start: trickled bytes or NOOPs do not extend it.
    let preauth_deadline = Instant::now() + preauth;
    let mut deadline = preauth_deadline;
    let mut login_key = None;
    let mut anonymous_work = false;
    let mut running_verb = "";
    let mut user_recorded = false;
    // The codec is in block mode (from ExpectBlock to the block's frame).
    let mut in_block = false;
    let metrics = ctx.metrics.clone();

    loop {
        let input = tokio::select! {
            done = async { work.as_mut().expect("guarded by the select condition").await }, if work.is_some() => {
                work = None;
                metrics.command(Protocol::Cip, running_verb, result_of(&done));
                Input::Done(done)
            }
            frame = framed.next(), if !client_gone => match frame {
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
                            tracing::info!("TLS handshake on the plaintext CIP port; closing");
                            let _ = framed
                                .send("NO 000 TLS handshake on a plaintext CIP port: use the TLS port".to_owned())
                                .await;
                            break;
                        }
                        tracing::debug!(error = %e, "CIP read error");
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
            _ = tokio::time::sleep_until(deadline), if work.is_none() => {
                metrics.limit_hit(if session.is_authenticated() {
                    Limit::IdleTimeout
                } else {
                    Limit::PreauthTimeout
                });
                let _ = framed.send("NO 000 Idle timeout; closing the connection".to_owned()).await;
                break;
            }
            _ = ctx.shutdown.cancelled(), if work.is_none() => {
                let _ = framed.send("NO 000 Server shutting down".to_owned()).await;
                break;
            }
        };
        let mut close = false;
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
                    match &w {
                        Work::Data { verb, identity, .. } => {
                            anonymous_work = true;
                            tracing::info!(verb = ?verb, identity = %identity.describe(), "CIP command");
                        }
                        Work::Login { identity, password } => {
                            login_key = Some(ctx.penalty.key(identity, password.expose()));
                        }
                    }
                    running_verb = verb_of(&w);
                    work = Some(start(&ctx, w));
                }
                Action::LoginFailed => {
                    let d = ctx.login_failed(Protocol::Cip, login_key.take());
                    let _ = framed.flush().await;
                    tokio::time::sleep(d).await;
                }
                Action::LimitHit(limit) => metrics.limit_hit(limit),
                Action::Close => close = true,
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
        if session.is_authenticated() && !user_recorded {
            user_recorded = true;
            let who = session.identity().describe();
            tracing::Span::current().record("user", tracing::field::display(who));
        }
        // An anonymous session that has used the gateway (anonymous RSVP / FREEBUSY as the
        // policy allows) is a working session; it gets the idle limit, not the login limit.
        deadline = if session.is_authenticated() || anonymous_work {
            Instant::now() + idle
        } else {
            preauth_deadline
        };
    }
    tracing::debug!("CIP connection closed");
}
