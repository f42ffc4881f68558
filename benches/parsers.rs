//! Parser throughput (issue #7, BENCHMARKS.md): `cargo bench --bench parsers`.
//!
//! Every bench reports bytes of input per second (decimal MB/s). Inputs are built here from
//! templates taken from the protocol transcripts (`protocols/*/transcripts`) and from what
//! Cyrus returns for a calendar-query REPORT. Each parser is checked once on its input, outside
//! the timed loop, so no bench can silently measure an error path.

use std::hint::black_box;

use bytes::BytesMut;
use calgate::caldav::multistatus::{CALDAV, DAV, parse_multistatus};
use calgate::framing::{DotCodec, Frame, Limits};
use calgate::ical::DateTime;
use calgate::ical::contentline::{ContentLine, fold, unfold};
use calgate::ical::vcal10::{NormaliseOptions, normalise};
use divan::Bencher;
use divan::counter::BytesCount;
use tokio_util::codec::{Decoder, Encoder};

fn main() {
    divan::main();
}

// ------------------------------------------------------------------ inputs --

/// The gateway's default limits (`[limits]` of gateway.toml), generous enough for the inputs.
fn limits() -> Limits {
    Limits {
        max_line: 1024,
        max_data_line: 8192,
        max_block: 4 * 1024 * 1024,
        bare_lf: true,
    }
}

/// CSTP command lines as the CAP transcripts send them (weighted roughly by how often they
/// occur there: SENDDATA, AUTHENTICATE and DISCONNECT dominate).
const CAP_LINES: &[&str] = &[
    "CAPABILITY",
    "AUTHENTICATE PLAIN AGFsaWNlAGFsaWNlcHc=",
    "IDENTIFY alice@example.com",
    "SENDDATA",
    "NOOP",
    "SENDDATA",
    "10 SENDDATA",
    "SENDDATA:10",
    "CONTINUE 10 ; xyz12346",
    "SENDDATA 1",
    "AUTHENTICATE PLAIN AGJvYgBib2Jwdw==",
    "UPNEXPAND alice@example.com",
    "CALIDEXPAND cap://example.com/alice",
    "SENDDATA",
    "ABORT ; xyz12346",
    "GENERATEUID 5",
    "noop",
    "AUTHENTICATE ANONYMOUS =",
    "DISCONNECT",
];

/// CIP command lines as the CIP transcripts send them.
const CIP_LINES: &[&str] = &[
    "AUTHENTICATE LOGIN alice alicepw",
    "SENDEVENT +",
    "NOOP",
    "SENDEVENT+",
    "RSVP +",
    "AUTHENTICATE LOGIN a.com PASSWORD_A",
    "FREEBUSY +",
    "HELP",
    "SENDEVENT +",
    "AUTHENTICATE LOGIN bob bobpw",
    "RESPOND +",
    "QUIT",
];

/// `lines` repeated, each with CRLF, to at least `size` bytes.
fn line_stream(lines: &[&str], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + 128);
    while out.len() < size {
        for l in lines {
            out.extend_from_slice(l.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// `lines` repeated to at least `size` bytes of line text.
fn line_list<'a>(lines: &[&'a str], size: usize) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut n = 0;
    while n < size {
        for l in lines {
            out.push(*l);
            n += l.len();
        }
    }
    out
}

/// Replies the gateway writes: CAP status lines and capability lines, CIP status lines.
fn reply_lines() -> Vec<String> {
    let one = [
        "2.0",
        ".",
        "CAPVERSION=1.0",
        "ITIPVERSION=1.0",
        "AUTH=ANONYMOUS",
        "AUTH=PLAIN",
        "CAR=CAR-MIN",
        "QUERYLEVEL=SQL-MIN",
        "MAXICALOBJECTSIZE=4096",
        "MINDATE=19700101T000000Z",
        "MAXDATE=20371231T235959Z",
        "AUTOLOGOUTTIME=900",
        "2.0 abcde",
        "Content-Type: text/calendar; method=RESPONSE; optinfo=\"CMDID:abcde\"",
        "Content-Transfer-Encoding: 8bit",
        "",
        "BEGIN:VCAP",
        "REQUEST-STATUS:2.0;Success;mailto:bob@example.com",
        "END:VCAP",
        "OK CIP 1.0 example.com",
        "OK 000 Logged in as alice@example.com",
        "* TENTATIVE bob@example.com",
        "* NOTFOUND zed@example.com",
        "OK 003 Not all attendees received the event",
    ];
    let mut out = Vec::new();
    let mut n = 0;
    while n < 64 * 1024 {
        for l in one {
            out.push(l.to_owned());
            n += l.len() + 2;
        }
    }
    out
}

/// A realistic iCalendar object: VCALENDAR with a VTIMEZONE and `events` VEVENTs, each with
/// folded DESCRIPTION lines, an ORGANIZER and ATTENDEEs with (quoted) parameters, an RRULE and
/// a VALARM. Folded by the library's own `fold` (75 octets, CRLF).
fn icalendar(events: usize) -> String {
    let mut logical: Vec<String> = vec![
        "BEGIN:VCALENDAR".into(),
        "VERSION:2.0".into(),
        "PRODID:-//Example Corp.//CalDAV Client//EN".into(),
        "CALSCALE:GREGORIAN".into(),
        "BEGIN:VTIMEZONE".into(),
        "TZID:Europe/Paris".into(),
        "X-LIC-LOCATION:Europe/Paris".into(),
        "BEGIN:DAYLIGHT".into(),
        "TZOFFSETFROM:+0100".into(),
        "TZOFFSETTO:+0200".into(),
        "TZNAME:CEST".into(),
        "DTSTART:19700329T020000".into(),
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU".into(),
        "END:DAYLIGHT".into(),
        "BEGIN:STANDARD".into(),
        "TZOFFSETFROM:+0200".into(),
        "TZOFFSETTO:+0100".into(),
        "TZNAME:CET".into(),
        "DTSTART:19701025T030000".into(),
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU".into(),
        "END:STANDARD".into(),
        "END:VTIMEZONE".into(),
    ];
    let people = [
        ("Bob Example", "bob@example.com"),
        ("Doe, Jane", "jane.doe@example.com"),
        ("Carol Q. Public", "carol@example.com"),
        ("Pete O'Leary", "poleary@clearblue.com"),
    ];
    for i in 0..events {
        logical.extend([
            "BEGIN:VEVENT".to_string(),
            format!("UID:{i:08}-3f2a-4c1e-9b7d-calgate-bench@example.com"),
            "DTSTAMP:20350301T120000Z".to_string(),
            format!(
                "DTSTART;TZID=Europe/Paris:203503{:02}T{:02}3000",
                i % 28 + 1,
                8 + i % 9
            ),
            format!(
                "DTEND;TZID=Europe/Paris:203503{:02}T{:02}3000",
                i % 28 + 1,
                9 + i % 9
            ),
            format!("SUMMARY:Project X review \\, iteration {i}"),
            "LOCATION:Building 4\\, room 2.17 (video: https://meet.example.com/projx)".to_string(),
            format!(
                "DESCRIPTION:Agenda for iteration {i}:\\n1. Status of the gateway work\\, \
                 including the CAP and CIP listeners\\;\\n2. Upstream CalDAV compatibility \
                 (Cyrus\\, DAViCal)\\;\\n3. Open issues and next steps. Please read the \
                 design notes before the meeting and bring your questions.\\nCafé ☕ at 10."
            ),
            "CLASS:PUBLIC".to_string(),
            "TRANSP:OPAQUE".to_string(),
            format!("SEQUENCE:{}", i % 3),
            "STATUS:CONFIRMED".to_string(),
            "RRULE:FREQ=WEEKLY;COUNT=10;BYDAY=MO,WE".to_string(),
            "ORGANIZER;CN=\"Alice Example\";SCHEDULE-AGENT=SERVER:mailto:alice@example.com"
                .to_string(),
            "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=CHAIR;PARTSTAT=ACCEPTED;CN=\"Alice Example\":\
             mailto:alice@example.com"
                .to_string(),
        ]);
        for (cn, addr) in people.iter().take(2 + i % 3) {
            logical.push(format!(
                "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;\
                 RSVP=TRUE;CN=\"{cn}\";X-NUM-GUESTS=0:mailto:{addr}"
            ));
        }
        logical.extend([
            "X-MICROSOFT-CDO-BUSYSTATUS:BUSY".to_string(),
            "BEGIN:VALARM".to_string(),
            "ACTION:DISPLAY".to_string(),
            "DESCRIPTION:Reminder".to_string(),
            "TRIGGER;RELATED=START:-PT15M".to_string(),
            "END:VALARM".to_string(),
            "END:VEVENT".to_string(),
        ]);
    }
    logical.push("END:VCALENDAR".into());
    logical.iter().map(|l| fold(l)).collect()
}

/// One vCalendar 1.0 event in the CIP spelling of cip-00 §3.0 and the transcripts 020, 060
/// and 070: spaces after ':' and ';', SUBJECT, ROLE=OWNER, STATUS on attendees, `Name <addr>`
/// values, numeric offsets, an empty line, addresses broken by a word processor, a
/// QUOTED-PRINTABLE DESCRIPTION with a soft break whose continuation is dot-stuffed on the wire.
fn cip_event(i: usize) -> Vec<String> {
    vec![
        "BEGIN:VEVENT".to_string(),
        format!("UID: {i:08}-cip-bench@a.com"),
        "SEQUENCE: 1".to_string(),
        "CATEGORIES: Meeting;Project X".to_string(),
        format!("DTSTART: 2036{:02}{:02}T1530-0500", i % 12 + 1, i % 28 + 1),
        format!("DTEND:  2036{:02}{:02}T1630-0500", i % 12 + 1, i % 28 + 1),
        "SUBJECT: Important Meeting".to_string(),
        "DESCRIPTION;ENCODING=QUOTED-PRINTABLE;CHARSET=ISO-8859-1:We need to talk about =".into(),
        ".important stuff, caf=E9 included.=0D=0A=".to_string(),
        "Bring the Project X numbers.".to_string(),
        "CLASS: Private".to_string(),
        "TRANSP: 0".to_string(),
        String::new(),
        "ATTENDEE; ROLE=OWNER; STATUS=CONFIRMED: Pete O'Leary".to_string(),
        "<poleary@a.com>".to_string(),
        "ATTENDEE;ROLE=ATTENDEE;STATUS=TENTATIVE;RSVP=YES:bob@ex".to_string(),
        "ample.com".to_string(),
        "ATTENDEE: Alex SystemA <alex@a.com>".to_string(),
        "ATTENDEE; EXPECT=REQUIRE: Carol Example <carol@example.com>".to_string(),
        "ATTENDEE: Zed Nobody <zed@example.com>".to_string(),
        "END:VEVENT".to_string(),
    ]
}

/// A bare CIP SENDEVENT body (transcript 020: no BEGIN/END at all), CRLF line ends.
fn cip_sendevent_body() -> String {
    let ev = cip_event(0);
    let body = ev.get(1..ev.len() - 1).unwrap_or_default();
    body.iter().map(|l| format!("{l}\r\n")).collect()
}

/// A VCALENDAR VERSION:1.0 with `events` CIP-spelled VEVENTs, CRLF line ends.
fn vcalendar10(events: usize) -> String {
    let mut lines = vec![
        "BEGIN:VCALENDAR".to_string(),
        "VERSION: 1.0".to_string(),
        "PRODID: -//a.com//CIP server//EN".to_string(),
        "TZ: -05:00".to_string(),
    ];
    for i in 0..events {
        lines.extend(cip_event(i));
    }
    lines.push("END:VCALENDAR".to_string());
    lines.iter().map(|l| format!("{l}\r\n")).collect()
}

/// A data block as sent on the wire after `SENDEVENT +` / `SENDDATA`: `text` dot-stuffed,
/// then the lone `.` line.
fn dot_block(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 64);
    for line in text.split_terminator("\r\n") {
        if line.starts_with('.') {
            out.push(b'.');
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A CAP SENDDATA payload: MIME headers, then a VCAP CREATE of `events` VEVENTs. Some
/// DESCRIPTION continuation lines start with `.` (dot-stuffed on the wire).
fn cap_payload(events: usize) -> String {
    let ics = icalendar(events);
    let body = ics
        .strip_prefix("BEGIN:VCALENDAR\r\n")
        .and_then(|b| b.strip_suffix("END:VCALENDAR\r\n"))
        .unwrap_or(&ics);
    let mut out = String::from(
        "Content-Type: text/calendar; method=CREATE; component=VCOMMAND; charset=US-ASCII\r\n\
         Content-Transfer-Encoding: 7bit\r\n\r\n\
         BEGIN:VCAP\r\nVERSION:2.0\r\nCMDID:abcde\r\nBEGIN:VCOMMAND\r\nMETHOD:CREATE\r\n\
         TARGET:cap://example.com/alice\r\n",
    );
    out.push_str(body);
    out.push_str("BEGIN:VTODO\r\nUID:todo-1@example.com\r\n");
    out.push_str("DESCRIPTION;ENCODING=QUOTED-PRINTABLE:Release notes=0D=0A=\r\n");
    out.push_str(".1 CAP listener=0D=0A=\r\n.2 CIP listener\r\nEND:VTODO\r\n");
    out.push_str("END:VCOMMAND\r\nEND:VCAP\r\n");
    out
}

/// XML text escaping as libxml2 (Cyrus) writes it in element content: `&`, `<`, `>` and CR.
fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + s.len() / 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#13;"),
            _ => out.push(c),
        }
    }
    out
}

/// The 207 body Cyrus returns for a calendar-query REPORT asking for getetag and
/// calendar-data: one `D:response` per event, each a VCALENDAR with a VTIMEZONE and one VEVENT.
fn report_multistatus(responses: usize) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\" \
         xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:CS=\"http://calendarserver.org/ns/\">",
    );
    for i in 0..responses {
        let ics = icalendar(1).replace("00000000-3f2a", &format!("{i:08}-3f2a"));
        out.push_str(&format!(
            "<D:response><D:href>/dav/calendars/user/alice/Default/{i:08}-3f2a-4c1e-9b7d-\
             calgate-bench%40example.com.ics</D:href><D:propstat><D:prop><D:getetag>\
             \"{:016x}\"</D:getetag><C:calendar-data>{}</C:calendar-data></D:prop>\
             <D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>",
            (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            xml_escape(&ics)
        ));
    }
    out.push_str("</D:multistatus>");
    out
}

/// The 207 body of a Depth: 1 PROPFIND on a calendar home (what discovery asks for):
/// resourcetype, displayname, supported components, privileges, ctag and sync-token.
fn propfind_multistatus(collections: usize) -> String {
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<D:multistatus xmlns:D=\"DAV:\" \
         xmlns:C=\"urn:ietf:params:xml:ns:caldav\" xmlns:CS=\"http://calendarserver.org/ns/\" \
         xmlns:CY=\"http://cyrusimap.org/ns/\" xmlns:A=\"http://apple.com/ns/ical/\">\
         <D:response><D:href>/dav/calendars/user/alice/</D:href><D:propstat><D:prop>\
         <D:resourcetype><D:collection/></D:resourcetype><D:displayname>alice</D:displayname>\
         </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat><D:propstat><D:prop>\
         <C:supported-calendar-component-set/><CS:getctag/></D:prop>\
         <D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>",
    );
    let privileges = [
        "<D:read/>",
        "<D:write/>",
        "<D:write-properties/>",
        "<D:write-content/>",
        "<D:bind/>",
        "<D:unbind/>",
        "<D:read-acl/>",
        "<D:read-current-user-privilege-set/>",
        "<C:read-free-busy/>",
        "<CY:admin/>",
        "<CY:add-resource/>",
        "<CY:remove-resource/>",
    ];
    for i in 0..collections {
        let (kind, comps) = match i % 5 {
            0 => ("<C:schedule-inbox/>", "VEVENT VTODO VFREEBUSY"),
            1 => ("<C:schedule-outbox/>", "VEVENT VTODO VFREEBUSY"),
            _ => ("<C:calendar/>", "VEVENT VTODO"),
        };
        let comp_set: String = comps
            .split(' ')
            .map(|c| format!("<C:comp name=\"{c}\"/>"))
            .collect();
        let privs: String = privileges
            .iter()
            .map(|p| format!("<D:privilege>{p}</D:privilege>"))
            .collect();
        out.push_str(&format!(
            "<D:response><D:href>/dav/calendars/user/alice/Calendar-{i}/</D:href><D:propstat>\
             <D:prop><D:resourcetype><D:collection/>{kind}</D:resourcetype>\
             <D:displayname>Calendar {i} &amp; friends</D:displayname>\
             <A:calendar-color>#{:06X}FF</A:calendar-color>\
             <C:supported-calendar-component-set>{comp_set}</C:supported-calendar-component-set>\
             <D:current-user-privilege-set>{privs}</D:current-user-privilege-set>\
             <CS:getctag>\"{:x}-{i}\"</CS:getctag>\
             <D:sync-token>https://example.com/ns/sync/{:x}</D:sync-token>\
             <D:owner><D:href>/dav/principals/user/alice/</D:href></D:owner>\
             </D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>\
             <D:propstat><D:prop><C:calendar-timezone/><C:max-resource-size/></D:prop>\
             <D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>",
            (i * 0x2f4a1b) & 0xff_ffff,
            1_700_000_000 + i * 37,
            9_000 + i,
        ));
    }
    out.push_str("</D:multistatus>");
    out
}

fn now() -> DateTime {
    DateTime::parse_strict("20350301T120000Z", None).expect("a valid date-time")
}

// ------------------------------------------------------------------ helpers --

/// Decodes every frame in `buf` (line mode, or block mode after one `expect_block`).
fn decode_all(codec: &mut DotCodec, buf: &mut BytesMut) -> usize {
    let mut n = 0;
    while let Some(frame) = codec.decode(buf).expect("decode never fails") {
        black_box(&frame);
        n += 1;
    }
    n
}

/// Decodes one block from `buf`.
fn decode_block(buf: &mut BytesMut) -> Frame {
    let mut codec = DotCodec::new(limits());
    codec.expect_block();
    codec
        .decode(buf)
        .expect("decode never fails")
        .expect("a complete block")
}

/// Decodes one block fed in `chunk`-byte reads, as a socket delivers it.
fn decode_block_chunked(input: &[u8], chunk: usize) -> Frame {
    let mut codec = DotCodec::new(limits());
    codec.expect_block();
    let mut buf = BytesMut::with_capacity(input.len());
    for piece in input.chunks(chunk) {
        buf.extend_from_slice(piece);
        if let Some(f) = codec.decode(&mut buf).expect("decode never fails") {
            return f;
        }
    }
    panic!("block never completed");
}

fn check_lines(input: &[u8], lines: &[&str]) {
    let mut codec = DotCodec::new(limits());
    let mut buf = BytesMut::from(input);
    let mut i = 0;
    while let Some(f) = codec.decode(&mut buf).unwrap() {
        let want = lines[i % lines.len()];
        assert_eq!(f, Frame::Line(want.as_bytes().to_vec()));
        i += 1;
    }
    assert!(buf.is_empty() && i > 0);
}

fn check_block(wire: &[u8], text: &str) {
    let want = Frame::Block(text.as_bytes().to_vec());
    assert_eq!(decode_block(&mut BytesMut::from(wire)), want);
    assert_eq!(decode_block_chunked(wire, 1448), want);
}

// ------------------------------------------------------------------ codecs --

#[divan::bench]
fn cap_codec_lines(bencher: Bencher) {
    let input = line_stream(CAP_LINES, 64 * 1024);
    check_lines(&input, CAP_LINES);
    bencher
        .counter(BytesCount::of_slice(&input))
        .with_inputs(|| BytesMut::from(&input[..]))
        .bench_local_refs(|buf| decode_all(&mut DotCodec::new(limits()), buf));
}

#[divan::bench]
fn cip_codec_lines(bencher: Bencher) {
    let input = line_stream(CIP_LINES, 64 * 1024);
    check_lines(&input, CIP_LINES);
    bencher
        .counter(BytesCount::of_slice(&input))
        .with_inputs(|| BytesMut::from(&input[..]))
        .bench_local_refs(|buf| decode_all(&mut DotCodec::new(limits()), buf));
}

/// A 24 KB SENDDATA payload (VCAP CREATE of 12 events).
#[divan::bench]
fn cap_codec_block(bencher: Bencher) {
    bench_block(bencher, &cap_payload(12));
}

/// A 5 KB SENDEVENT block (VCALENDAR 1.0 with 6 CIP-spelled events).
#[divan::bench]
fn cip_codec_block(bencher: Bencher) {
    bench_block(bencher, &vcalendar10(6));
}

/// Decoding `text` sent as one dot-terminated block, in one read.
fn bench_block(bencher: Bencher, text: &str) {
    let wire = dot_block(text);
    check_block(&wire, text);
    bencher
        .counter(BytesCount::of_slice(&wire))
        .with_inputs(|| BytesMut::from(&wire[..]))
        .bench_local_refs(decode_block);
}

/// The SENDDATA payload of `cap_codec_block`, arriving in 1448-byte reads (one TCP segment).
#[divan::bench]
fn cap_codec_block_chunked(bencher: Bencher) {
    let text = cap_payload(12);
    let wire = dot_block(&text);
    check_block(&wire, &text);
    bencher
        .counter(BytesCount::of_slice(&wire))
        .bench_local(|| decode_block_chunked(black_box(&wire), 1448));
}

/// Reply lines (CAP and CIP) through the encoder, 64 KB per iteration.
#[divan::bench]
fn codec_encode(bencher: Bencher) {
    let replies = reply_lines();
    let bytes: usize = replies.iter().map(|r| r.len() + 2).sum();
    let mut check = BytesMut::new();
    let mut codec = DotCodec::new(limits());
    for r in &replies {
        codec.encode(r.clone(), &mut check).unwrap();
    }
    assert_eq!(check.len(), bytes);
    bencher
        .counter(BytesCount::new(bytes))
        .with_inputs(|| (replies.clone(), BytesMut::with_capacity(bytes)))
        .bench_local_values(|(replies, mut dst)| {
            let mut codec = DotCodec::new(limits());
            for r in replies {
                codec.encode(r, &mut dst).expect("encode never fails");
            }
            dst
        });
}

// -------------------------------------------------------- command grammars --

#[divan::bench]
fn cap_command_parse(bencher: Bencher) {
    let lines = line_list(CAP_LINES, 16 * 1024);
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    for l in CAP_LINES {
        calgate::cap::command::parse(l.as_bytes()).unwrap_or_else(|e| panic!("{l:?}: {e}"));
    }
    bencher.counter(BytesCount::new(bytes)).bench_local(|| {
        for l in &lines {
            let _ = black_box(calgate::cap::command::parse(black_box(l.as_bytes())));
        }
    });
}

#[divan::bench]
fn cip_command_parse(bencher: Bencher) {
    let lines = line_list(CIP_LINES, 16 * 1024);
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    for l in CIP_LINES {
        calgate::cip::command::parse(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
    }
    bencher.counter(BytesCount::new(bytes)).bench_local(|| {
        for l in &lines {
            let _ = black_box(calgate::cip::command::parse(black_box(l)));
        }
    });
}

// ---------------------------------------------------------- content lines --

/// 40 events: about 60 KB of folded iCalendar.
const ICAL_EVENTS: usize = 40;

#[divan::bench]
fn ical_unfold(bencher: Bencher) {
    let ics = icalendar(ICAL_EVENTS);
    assert!(unfold(&ics).len() > 20 * ICAL_EVENTS);
    bencher
        .counter(BytesCount::of_str(&ics))
        .bench_local(|| unfold(black_box(&ics)));
}

/// `unfold` then `ContentLine::parse` of every logical line.
#[divan::bench]
fn ical_contentline_parse(bencher: Bencher) {
    let ics = icalendar(ICAL_EVENTS);
    let parse = |text: &str| -> Vec<ContentLine> {
        unfold(text)
            .iter()
            .map(|l| ContentLine::parse(l).expect("valid content line"))
            .collect()
    };
    let lines = parse(&ics);
    assert!(
        lines
            .iter()
            .any(|l| l.name == "ATTENDEE" && l.param("CN") == Some("Doe, Jane"))
    );
    bencher
        .counter(BytesCount::of_str(&ics))
        .bench_local(|| parse(black_box(&ics)));
}

/// `parse_components` (unfold, parse, BEGIN/END nesting), what the CalDAV client uses.
#[divan::bench]
fn ical_parse_components(bencher: Bencher) {
    let ics = icalendar(ICAL_EVENTS);
    let comps = calgate::ical::parse_components(&ics).expect("valid iCalendar");
    assert_eq!(comps[0].components.len(), ICAL_EVENTS + 1);
    bencher
        .counter(BytesCount::of_str(&ics))
        .bench_local(|| calgate::ical::parse_components(black_box(&ics)));
}

// ------------------------------------------------------------- normaliser --

/// One bare CIP SENDEVENT body (transcripts 020/060/070 spelling), about 700 bytes.
#[divan::bench]
fn vcal_normalise_cip_event(bencher: Bencher) {
    let text = cip_sendevent_body();
    let opts = NormaliseOptions::new(now());
    let n = normalise(&text, &opts).expect("normalises");
    let ev = &n.calendar.components[0];
    assert!(ev.property("ORGANIZER").is_some() && ev.value("SUMMARY").is_some());
    assert!(n.applied.contains(&"broken_line_rejoin") && n.applied.contains(&"quoted_printable"));
    bencher
        .counter(BytesCount::of_str(&text))
        .bench_local(|| normalise(black_box(&text), &opts));
}

/// A VCALENDAR VERSION:1.0 with 40 CIP-spelled events, about 30 KB.
#[divan::bench]
fn vcal_normalise_vcal10(bencher: Bencher) {
    let text = vcalendar10(40);
    let opts = NormaliseOptions::new(now());
    let n = normalise(&text, &opts).expect("normalises");
    assert_eq!(n.calendar.components.len(), 40);
    assert!(n.applied.contains(&"owner_to_organizer"));
    bencher
        .counter(BytesCount::of_str(&text))
        .bench_local(|| normalise(black_box(&text), &opts));
}

/// Plain iCalendar 2.0 (the `ical_*` input, 40 events) through the normaliser.
#[divan::bench]
fn vcal_normalise_ical(bencher: Bencher) {
    let text = icalendar(ICAL_EVENTS);
    let opts = NormaliseOptions::new(now());
    let n = normalise(&text, &opts).expect("normalises");
    assert_eq!(n.calendar.components.len(), ICAL_EVENTS + 1);
    bencher
        .counter(BytesCount::of_str(&text))
        .bench_local(|| normalise(black_box(&text), &opts));
}

// ------------------------------------------------------------ multistatus --

/// 150 responses with calendar-data: about 250 KB, as Cyrus answers a calendar-query.
const REPORT_RESPONSES: usize = 150;

#[divan::bench]
fn multistatus_report(bencher: Bencher) {
    let body = report_multistatus(REPORT_RESPONSES);
    let ms = parse_multistatus(&body).expect("valid multistatus");
    assert_eq!(ms.responses.len(), REPORT_RESPONSES);
    let data = &ms.responses[7].prop(CALDAV, "calendar-data").unwrap().text;
    assert!(data.starts_with("BEGIN:VCALENDAR\r\n") && data.contains("00000007-3f2a"));
    bencher
        .counter(BytesCount::of_str(&body))
        .bench_local(|| parse_multistatus(black_box(&body)));
}

/// 40 calendar collections of a Depth: 1 PROPFIND, about 60 KB.
#[divan::bench]
fn multistatus_propfind(bencher: Bencher) {
    let body = propfind_multistatus(40);
    let ms = parse_multistatus(&body).expect("valid multistatus");
    assert_eq!(ms.responses.len(), 41);
    assert!(ms.responses[3].is_resource_type(CALDAV, "calendar"));
    assert_eq!(ms.responses[3].current_user_privileges().unwrap().len(), 12);
    assert!(ms.responses[3].prop(DAV, "owner").unwrap().href().is_some());
    bencher
        .counter(BytesCount::of_str(&body))
        .bench_local(|| parse_multistatus(black_box(&body)));
}

/// The options `parse_multistatus` gives roxmltree (DTDs off, a node limit).
fn xml_options<'a>() -> roxmltree::ParsingOptions<'a> {
    roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: 1_000_000,
        ..roxmltree::ParsingOptions::default()
    }
}

/// The bound of `multistatus_report`: roxmltree alone (same options) on the same body.
#[divan::bench]
fn multistatus_report_roxmltree_only(bencher: Bencher) {
    let body = report_multistatus(REPORT_RESPONSES);
    roxmltree::Document::parse_with_options(&body, xml_options()).expect("valid XML");
    bencher.counter(BytesCount::of_str(&body)).bench_local(|| {
        roxmltree::Document::parse_with_options(black_box(&body), xml_options()).is_ok()
    });
}

/// The bound of `multistatus_propfind`: roxmltree alone on the same body.
#[divan::bench]
fn multistatus_propfind_roxmltree_only(bencher: Bencher) {
    let body = propfind_multistatus(40);
    roxmltree::Document::parse_with_options(&body, xml_options()).expect("valid XML");
    bencher.counter(BytesCount::of_str(&body)).bench_local(|| {
        roxmltree::Document::parse_with_options(black_box(&body), xml_options()).is_ok()
    });
}
