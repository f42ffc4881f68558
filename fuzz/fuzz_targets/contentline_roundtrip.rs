//! Content-line round trips (src/ical/contentline.rs).
//!
//! 1. parse → `to_line` → parse gives the same `ContentLine`, for every logical line of the
//!    input that parses.
//! 2. Lines built from untrusted pieces (`ContentLine::new(..).with_param(..)`, the pieces are
//!    the input split at NUL) serialise to exactly one line that parses back with the same
//!    name, one parameter, the value and the parameter value as the documented escaping
//!    makes them: `to_line` can never inject a line break or break out of a quoted string.
#![no_main]

use calgate::ical::contentline::is_name_char;
use calgate::ical::{ContentLine, unfold};
use calgate_fuzz::{encoded_param, escaped_value};
use libfuzzer_sys::fuzz_target;

fn legal(name: &str) -> String {
    name.to_ascii_uppercase()
        .chars()
        .filter(|c| is_name_char(*c))
        .collect()
}

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);

    for line in unfold(&text) {
        let Ok(cl) = ContentLine::parse(&line) else {
            continue;
        };
        let out = cl.to_line();
        assert!(!out.contains(['\r', '\n']), "{out:?}");
        assert_eq!(
            ContentLine::parse(&out).as_ref(),
            Ok(&cl),
            "{line:?} -> {out:?}"
        );
    }

    let parts: Vec<&str> = text.split('\0').collect();
    let [name, pname, pvalue, value] = parts[..] else {
        return;
    };
    let (name, pname) = (legal(name), legal(pname));
    if name.is_empty() || pname.is_empty() {
        return;
    }
    let built = ContentLine::new(&name, value).with_param(&pname, pvalue);
    let out = built.to_line();
    assert!(!out.contains(['\r', '\n']), "{out:?}");
    let back = ContentLine::parse(&out).unwrap_or_else(|e| panic!("{out:?}: {e}"));
    assert_eq!(back.name, name);
    assert_eq!(back.params.len(), 1, "{out:?}");
    assert_eq!(back.params[0].name, pname);
    assert_eq!(
        back.params[0].values,
        vec![encoded_param(pvalue)],
        "{out:?}"
    );
    assert_eq!(back.value, escaped_value(value), "{out:?}");
});
