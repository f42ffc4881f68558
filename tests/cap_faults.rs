//! CAP SENDDATA when the upstream fails part of the way through a command: what was stored is
//! reported as stored, what was not is reported as failed, and nothing else is written
//! (issue #5, "Bad input and failure"). The real upstream sits behind a proxy that dies at a
//! chosen request.

mod common;

use common::cap_client::*;
use common::*;

/// A CREATE of two events: the first PUT reaches the upstream, the proxy dies at the second.
/// The first object answers 2.0 and is stored; the second answers 5.1 and is not; the
/// session stays usable.
#[tokio::test]
async fn upstream_failing_half_way_is_reported_per_object() {
    let proxy = CuttableProxy::start_cutting_at(Some(("PUT", 2))).await;
    let mut cfg = config();
    cfg.cip.enabled = false;
    cfg.upstream.url = proxy.url();
    cfg.upstream.connect_timeout_secs = 2;
    let gw = start_gateway(cfg).await;
    let (first, second) = (unique_uid("half-1"), unique_uid("half-2"));
    let mut s = logged_in(gw.cap_addr.unwrap(), ALICE).await;
    let entity = format!(
        "Content-Type: text/calendar\n\nBEGIN:VCAP\nVERSION:2.0\nCMDID:h1\nBEGIN:VCOMMAND\n\
         METHOD:CREATE\nTARGET:alice\n\
         BEGIN:VEVENT\nUID:{first}\nDTSTART:20310505T100000Z\nDTEND:20310505T110000Z\nSUMMARY:one\nEND:VEVENT\n\
         BEGIN:VEVENT\nUID:{second}\nDTSTART:20310505T120000Z\nDTEND:20310505T130000Z\nSUMMARY:two\nEND:VEVENT\n\
         END:VCOMMAND\nEND:VCAP\n"
    );
    let r = senddata(&mut s, &entity).await;
    assert_eq!(r[0], "2.0 h1", "{r:?}");
    assert!(proxy.is_cut(), "the second PUT killed the upstream");
    let text = unfolded(&r);
    assert_eq!(
        status_of(&r, &first),
        "REQUEST-STATUS:2.0;Success",
        "{text}"
    );
    // The upstream went away as the second PUT was sent: the gateway cannot know whether it
    // was carried out and says so (5.1, no claim that nothing was done).
    assert!(
        status_of(&r, &second).starts_with(
            "REQUEST-STATUS:5.1;No answer from the calendar server (the change may or may not \
             have been made)"
        ),
        "{text}"
    );
    // The upstream holds exactly what was reported as stored.
    assert_eq!(count("alice", &first).await, 1);
    assert_eq!(count("alice", &second).await, 0);
    // The session is still usable.
    noop(&mut s).await;
}
