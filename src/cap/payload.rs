//! The object inside a SENDDATA entity: a VCAP (cap-04/-05) or VCALENDAR (cap-00..03) holding
//! a VCOMMAND with METHOD, TARGETs and an optional CMDID (spec §3.2).
//!
//! Every placement the drafts use is accepted (spec §1.5 #11): CMDID and METHOD at the top level
//! or inside VCOMMAND, and a bare iTIP VCALENDAR whose METHOD names the scheduling method. The
//! VCOMMAND's METHOD wins; without one the Content-Type `method` parameter decides (spec §3.1).
//! Any VERSION is accepted (spec Q9).

use super::mime::Entity;
use crate::ical::component::{Component, parse_components};

/// A method of cap-04 §7.2 (calendaring) or RFC 2446 (scheduling).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    /// CREATE (cap-04 §7.2.1.2).
    Create,
    /// DELETE (cap-04 §7.2.1.3).
    Delete,
    /// MODIFY (cap-04 §7.2.1.5).
    Modify,
    /// MOVE (cap-04 §7.2.1.6).
    Move,
    /// READ (cap-04 §7.2.1.8).
    Read,
    /// NOOP (cap-04 §7.2.1.7).
    Noop,
    /// GENERATEUID (cap-04 §7.2.1.4).
    GenerateUid,
    /// An iTIP method (RFC 2446 §3): PUBLISH, REQUEST, REPLY, ADD, CANCEL, REFRESH, COUNTER,
    /// DECLINECOUNTER.
    Itip(String),
    /// A METHOD calgate does not know; answered per TARGET with 3.14 (spec §3.6: the envelope
    /// was understood, so the transport status stays 2.0).
    Other(String),
}

impl Method {
    fn parse(name: &str) -> Method {
        // The pre-draft IMC form is "METHOD:CREATE;VCALENDAR;targets" (spec §3.2).
        let name = name
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_uppercase();
        match name.as_str() {
            "CREATE" => Method::Create,
            "DELETE" => Method::Delete,
            "MODIFY" => Method::Modify,
            "MOVE" => Method::Move,
            "READ" => Method::Read,
            "NOOP" => Method::Noop,
            "GENERATEUID" => Method::GenerateUid,
            "DECLINE-COUNTER" | "DECLINECOUNTER" => Method::Itip("DECLINECOUNTER".into()),
            "PUBLISH" | "REQUEST" | "REPLY" | "ADD" | "CANCEL" | "REFRESH" | "COUNTER" => {
                Method::Itip(name)
            }
            // RFC 4324 names (spec §3.8).
            "SEARCH" => Method::Read,
            "GENERATE-UID" => Method::GenerateUid,
            _ => Method::Other(name),
        }
    }

    /// The method's name.
    pub fn name(&self) -> &str {
        match self {
            Method::Create => "CREATE",
            Method::Delete => "DELETE",
            Method::Modify => "MODIFY",
            Method::Move => "MOVE",
            Method::Read => "READ",
            Method::Noop => "NOOP",
            Method::GenerateUid => "GENERATEUID",
            Method::Itip(m) | Method::Other(m) => m,
        }
    }
}

/// One command of a SENDDATA payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The method.
    pub method: Method,
    /// The client's command id, echoed in replies.
    pub cmdid: Option<String>,
    /// TARGET values, in order.
    pub targets: Vec<String>,
    /// MAXRESULTS (GENERATEUID's count, READ's limit).
    pub max_results: Option<u32>,
    /// The components the command carries (VEVENT, VQUERY, VCALENDAR, …), outside the
    /// VCAP/VCOMMAND wrappers.
    pub components: Vec<Component>,
}

/// Why a payload is unusable (wire `8.0` with this text, spec §2.8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Not iCalendar-shaped.
    #[error("the body is not a calendar object: {0}")]
    Syntax(String),
    /// No BEGIN:VCAP / VCALENDAR.
    #[error("the body holds no VCAP or VCALENDAR object")]
    NoObject,
    /// More than one command with PIPELINE=1.
    #[error("one command per SENDDATA (PIPELINE=1); send the others one at a time")]
    TooMany,
    /// No METHOD anywhere.
    #[error("no METHOD in the command nor in the Content-Type")]
    NoMethod,
}

/// Reads the command out of a decoded entity.
pub fn parse(entity: &Entity) -> Result<Payload, PayloadError> {
    let top = parse_components(&entity.body).map_err(|e| PayloadError::Syntax(e.to_string()))?;
    let objects: Vec<&Component> = top
        .iter()
        .filter(|c| c.name == "VCAP" || c.name == "VCALENDAR")
        .collect();
    let object = match objects.as_slice() {
        [] => return Err(PayloadError::NoObject),
        [one] => *one,
        _ => return Err(PayloadError::TooMany),
    };
    let commands: Vec<&Component> = object
        .components
        .iter()
        .filter(|c| c.name == "VCOMMAND")
        .collect();
    if commands.len() > 1 {
        return Err(PayloadError::TooMany);
    }
    let command = commands.first().copied();
    let lookup = |name: &str| -> Option<String> {
        command
            .and_then(|c| c.value(name))
            .or_else(|| object.value(name))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    // CMD is RFC 4324's name for METHOD (spec §3.8).
    let method_name = lookup("METHOD")
        .or_else(|| lookup("CMD"))
        .or_else(|| entity.content_type.method().map(str::to_owned))
        .ok_or(PayloadError::NoMethod)?;
    let method = Method::parse(&method_name);
    let properties = command
        .into_iter()
        .chain(std::iter::once(object))
        .flat_map(|holder| holder.properties("TARGET").map(|t| t.value.as_str()));
    // The pre-draft IMC form `METHOD:CREATE;VCALENDAR;cap://host/,relcal4` names its targets
    // in the third field (spec §3.2).
    let listed = method_name
        .splitn(3, ';')
        .nth(2)
        .into_iter()
        .flat_map(|l| l.split(','));
    let mut targets: Vec<String> = Vec::new();
    for t in properties.chain(listed).map(str::trim) {
        if !t.is_empty() && !targets.iter().any(|x| x == t) {
            targets.push(t.to_owned());
        }
    }
    let max_results = lookup("MAXRESULTS").and_then(|v| v.parse().ok());
    let components = match command {
        Some(c) => c.components.clone(),
        // A bare iTIP VCALENDAR: its components are the scheduling objects.
        None => object
            .components
            .iter()
            .filter(|c| c.name != "VCOMMAND")
            .cloned()
            .collect(),
    };
    Ok(Payload {
        method,
        cmdid: lookup("CMDID"),
        targets,
        max_results,
        components,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entity(text: &str) -> Entity {
        let block = text.replace('\n', "\r\n");
        crate::cap::mime::parse(block.as_bytes()).expect("entity")
    }

    #[test]
    fn vcap_with_vcommand() {
        let p = parse(&entity(
            "Content-Type: text/calendar; method=CREATE; component=VCOMMAND\n\nBEGIN:VCAP\nVERSION:2.1\nCMDID:abcde\nBEGIN:VCOMMAND\nMETHOD:CREATE\nTARGET:cap://cal.example.com/relcal1\nTARGET:relcal2\nBEGIN:VEVENT\nUID:abcd12345\nDTSTART:20010307T180000Z\nEND:VEVENT\nEND:VCOMMAND\nEND:VCAP\n",
        ))
        .unwrap();
        assert_eq!(p.method, Method::Create);
        assert_eq!(p.cmdid.as_deref(), Some("abcde"));
        assert_eq!(p.targets, ["cap://cal.example.com/relcal1", "relcal2"]);
        assert_eq!(p.components.len(), 1);
        assert_eq!(p.components[0].name, "VEVENT");
    }

    #[test]
    fn cmdid_inside_vcommand_and_method_from_content_type() {
        let p = parse(&entity(
            "Content-Type: text/calendar; method=NOOP\n\nBEGIN:VCAP\nBEGIN:VCOMMAND\nCMDID:n1\nEND:VCOMMAND\nEND:VCAP\n",
        ))
        .unwrap();
        assert_eq!(p.method, Method::Noop);
        assert_eq!(p.cmdid.as_deref(), Some("n1"));
    }

    #[test]
    fn older_vcalendar_wrapper_and_imc_method_form() {
        let p = parse(&entity(
            "BEGIN:VCALENDAR\nMETHOD:GENERATEUID;VCALENDAR;cap://x/\nMAXRESULTS:3\nEND:VCALENDAR\n",
        ))
        .unwrap();
        assert_eq!(p.method, Method::GenerateUid);
        assert_eq!(p.max_results, Some(3));
        assert_eq!(p.targets, ["cap://x/"]);
        let p = parse(&entity(
            "BEGIN:VCALENDAR\nMETHOD:CREATE;VEVENT;cap://x/alice,bob\nBEGIN:VEVENT\nUID:u\nEND:VEVENT\nEND:VCALENDAR\n",
        ))
        .unwrap();
        assert_eq!(p.method, Method::Create);
        assert_eq!(p.targets, ["cap://x/alice", "bob"]);
    }

    #[test]
    fn rfc4324_cmd_and_names() {
        let p = parse(&entity(
            "BEGIN:VCAP\nBEGIN:VCOMMAND\nCMD:SEARCH\nTARGET:alice\nEND:VCOMMAND\nEND:VCAP\n",
        ))
        .unwrap();
        assert_eq!(p.method, Method::Read);
        let p = parse(&entity("BEGIN:VCAP\nCMD:GENERATE-UID\nEND:VCAP\n")).unwrap();
        assert_eq!(p.method, Method::GenerateUid);
    }

    #[test]
    fn itip_calendar() {
        let p = parse(&entity(
            "BEGIN:VCALENDAR\nVERSION:2.0\nMETHOD:REQUEST\nBEGIN:VEVENT\nUID:u1\nEND:VEVENT\nEND:VCALENDAR\n",
        ))
        .unwrap();
        assert_eq!(p.method, Method::Itip("REQUEST".into()));
        assert_eq!(p.components[0].name, "VEVENT");
    }

    #[test]
    fn errors() {
        assert_eq!(
            parse(&entity("BEGIN:VEVENT\nUID:x\nEND:VEVENT\n")),
            Err(PayloadError::NoObject)
        );
        assert_eq!(
            parse(&entity("BEGIN:VCAP\nVERSION:2.0\nEND:VCAP\n")),
            Err(PayloadError::NoMethod)
        );
        assert_eq!(
            parse(&entity("BEGIN:VCAP\nMETHOD:FROB\nEND:VCAP\n")).map(|p| p.method),
            Ok(Method::Other("FROB".into()))
        );
        assert_eq!(
            parse(&entity(
                "BEGIN:VCAP\nMETHOD:NOOP\nEND:VCAP\nBEGIN:VCAP\nMETHOD:NOOP\nEND:VCAP\n"
            )),
            Err(PayloadError::TooMany)
        );
        assert!(matches!(
            parse(&entity("BEGIN:VCAP\nMETHOD:NOOP\n")),
            Err(PayloadError::Syntax(_))
        ));
    }
}
