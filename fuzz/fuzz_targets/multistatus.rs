//! The WebDAV/CalDAV XML readers (src/caldav/multistatus.rs) on an untrusted upstream body:
//! `parse_multistatus`, `parse_schedule_response`, `parse_error_condition`,
//! `parse_status_line`, and the accessors the discovery and translation code use.
//!
//! Checks: no panic, no hang on deep or wide documents; statuses are in 100..600; a
//! propstat-level property is only found through `prop` when its status is 2xx.
#![no_main]

use calgate::caldav::multistatus::{
    CALDAV, CALSERVER, DAV, parse_error_condition, parse_multistatus, parse_schedule_response,
    parse_status_line,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let body = String::from_utf8_lossy(input);
    if let Ok(ms) = parse_multistatus(&body) {
        for r in &ms.responses {
            if let Some(s) = r.status {
                assert!((100..600).contains(&s));
            }
            for ps in &r.propstats {
                assert!((100..600).contains(&ps.status));
                for p in &ps.props {
                    let found = r.prop(&p.namespace, &p.name).is_some();
                    if (200..300).contains(&ps.status) {
                        assert!(found);
                    }
                    let _ = p.href();
                    let _ = p.has_child(DAV, "collection");
                }
            }
            let _ = r.is_resource_type(CALDAV, "calendar");
            let _ = r.prop(CALSERVER, "getctag");
            if let Some(privileges) = r.current_user_privileges() {
                for p in privileges {
                    let _ = p.is(DAV, "write");
                }
            }
        }
    }
    if let Ok(recipients) = parse_schedule_response(&body) {
        for r in &recipients {
            let _ = r.status_class();
            let _ = r.status_code();
        }
    }
    let _ = parse_error_condition(&body);
    for line in body.lines().take(64) {
        if let Some(s) = parse_status_line(line) {
            assert!((100..600).contains(&s));
        }
    }
});
