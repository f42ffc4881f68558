//! The task that owns one CIP connection: it reads frames, feeds the [`Session`], and carries
//! out its actions. It keeps reading while a command runs, so an early command or the client
//! closing is noticed; a command that reached the upstream is always allowed to finish (nothing
//! is left half-applied), and the connection then closes if the client has gone.

use super::session::{Action, DataVerb, Done, Input, Session, SessionConfig, Work};
use crate::framing::{DotCodec, Limits};
use crate::server::ConnectionContext;
use crate::translate::Gateway;
use futures_util::{SinkExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::Instant;
use tokio_util::codec::Framed;

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

fn start(gateway: Arc<Gateway>, work: Work, timeout: Duration) -> WorkFuture {
    let kind = match &work {
        Work::Login { .. } => None,
        Work::Data { verb, .. } => Some(*verb),
    };
    Box::pin(async move {
        let run = async {
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
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or_else(|_| timed_out(kind, timeout))
    })
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
        failure_delay: Duration::from_millis(cfg.auth.failure_delay_ms),
        max_line: cfg.limits.max_line_bytes,
    });
    let mut framed = Framed::new(stream, DotCodec::new(Limits::from_config(&cfg.limits)));
    if framed.send(session.greeting()).await.is_err() {
        return;
    }
    let idle = Duration::from_secs(cfg.limits.idle_timeout_secs);
    let preauth = Duration::from_secs(cfg.limits.preauth_timeout_secs);
    let command_timeout = Duration::from_secs(cfg.limits.command_timeout_secs);
    let mut work: Option<WorkFuture> = None;
    let mut client_gone = false;
    let mut deadline = Instant::now() + preauth;

    loop {
        let input = tokio::select! {
            done = async { work.as_mut().expect("guarded by the select condition").await }, if work.is_some() => {
                work = None;
                Input::Done(done)
            }
            frame = framed.next(), if !client_gone => match frame {
                Some(Ok(frame)) => Input::Frame(frame),
                end => {
                    if let Some(Err(e)) = end {
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
                Action::ExpectBlock => framed.codec_mut().expect_block(),
                Action::Run(w) => {
                    if let Work::Data { verb, identity, .. } = &w {
                        tracing::info!(verb = ?verb, identity = %identity.describe(), "CIP command");
                    }
                    work = Some(start(ctx.gateway.clone(), w, command_timeout));
                }
                Action::Pause(d) => {
                    let _ = framed.flush().await;
                    tokio::time::sleep(d).await;
                }
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
        deadline = Instant::now()
            + if session.is_authenticated() {
                idle
            } else {
                preauth
            };
    }
    tracing::debug!("CIP connection closed");
}
