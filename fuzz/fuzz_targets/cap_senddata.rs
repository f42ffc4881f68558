//! A CAP SENDDATA block as the CAP session reads it (src/cap/session.rs): the MIME entity
//! (src/cap/mime.rs), then the VCAP/VCOMMAND payload (src/cap/payload.rs), then every VQUERY
//! in it (src/cap/vquery.rs `from_component`).
//!
//! Checks: no panic; an entity body is non-blank text ending in CRLF; a query read from a
//! VQUERY prints (`Display`) as SQL-MIN that parses back to the same query.
#![no_main]

use calgate::cap::{mime, payload, vquery};
use calgate::ical::Component;
use libfuzzer_sys::fuzz_target;

fn each_vquery(c: &Component, f: &mut impl FnMut(&Component)) {
    if c.name == "VQUERY" {
        f(c);
    }
    for sub in &c.components {
        each_vquery(sub, f);
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(entity) = mime::parse(input) else {
        return;
    };
    assert!(!entity.body.trim().is_empty());
    assert!(entity.body.ends_with("\r\n"), "{:?}", entity.body);
    let _ = entity.content_type.method();
    let _ = entity.content_type.component();
    let Ok(p) = payload::parse(&entity) else {
        return;
    };
    let _ = p.method.name();
    for c in &p.components {
        each_vquery(c, &mut |vq| {
            if let Ok(v) = vquery::from_component(vq) {
                let text = v.query.to_string();
                if text.len() <= vquery::MAX_QUERY_OCTETS {
                    assert_eq!(vquery::parse(&text).as_ref(), Ok(&v.query), "{text:?}");
                }
                let _ = v.query.pushdown();
            }
        });
    }
});
