//! VQUERY and SQL-MIN (cap-04 §5.1, QUERYLEVEL=SQL-MIN; spec `cap-cstp.md` §3.4).
//!
//! The query language of CAP READ, DELETE and MODIFY (spec §3.3), pure and sans-I/O:
//!
//! - [`from_component`] reads a `BEGIN:VQUERY` block into a [`VQuery`];
//! - [`parse`] reads the SQL-MIN text of its `QUERY` property into a [`Query`];
//! - [`Query::pushdown`] says what can be handed to a CalDAV `calendar-query` (a safe superset);
//! - [`Query::matches`] evaluates the query exactly on one component;
//! - [`Query::project`] and [`Query::sort`] shape the READ reply.
//!
//! ```text
//! query     = "SELECT" columns "FROM" comps [ "WHERE" or-expr ] *";"     ; cap-04 §5.1
//! columns   = "*" / col *( "," col ) / "(" col *( "," col ) ")"
//! col       = name *( "." name ) ; name = 1*(ALPHA / DIGIT / "-" / "_")
//! comps     = comp *( "," comp ) / "(" comp *( "," comp ) ")"
//! or-expr   = and-expr *( "OR" and-expr )
//! and-expr  = primary *( "AND" primary )                                ; AND binds tighter
//! primary   = "(" or-expr ")" / col op value
//! op        = "=" / "==" / "!=" / "<>" / "<" / ">" / "<=" / ">="
//! value     = "'" *( not-quote / "''" ) "'" / DQUOTE *( not-dquote / 2DQUOTE ) DQUOTE
//!           / bare          ; up to white space or one of ( ) , ; = < > ! ' " *
//! ```
//!
//! The keywords SELECT, FROM, WHERE, AND, OR are not column names (3.0).
//!
//! Leniency (spec §3.4 "GW parsing notes"): keywords in any case; any amount of white space
//! (including none) around operators, commas and parentheses; `==` for `=` and `<>` for `!=`;
//! parentheses around the column and component lists (-02 style); `;` after any clause;
//! single-quoted, double-quoted or bare values.
//!
//! **Folding.** [`crate::ical::contentline::unfold`] deletes the fold character, so a QUERY
//! folded as `UID` CRLF SP `FROM` arrives as `UIDFROM`. The parser repairs exactly these
//! glued forms, and only when the remainder is a *known* name (the RFC 5545 properties,
//! `METHOD`, or a known component) and the word cannot be read otherwise:
//! `<column>FROM`, `FROM<component>`, `<component>WHERE`, `WHERE<column>`, `AND<column>`,
//! `OR<column>`, `SELECT<column>`. One repair per word: `UIDFROMVEVENT` (two folds without
//! separators) is not repaired, nor is a bare (unquoted) value glued to the next keyword
//! (`abcAND`), nor an X- name glued to a keyword.
//!
//! **Limits.** At most [`MAX_QUERY_OCTETS`] of text, [`MAX_CONDITIONS`] comparisons and
//! [`MAX_NESTING`] levels of parentheses (beyond: [`QueryError`] 3.14). The parser recurses
//! only through parentheses, so the depth limit bounds the stack; no input panics.
//!
//! **Time zones.** `src/ical/datetime.rs` has no time-zone database. Date-time values are
//! compared as instants with floating and `TZID` times taken as if they were UTC wall-clock
//! times, and DATE values as midnight UTC. For a zoned event the exact evaluation can thus be
//! off by the zone's UTC offset (the CalDAV server, which knows the zone, applies the pushed
//! down range correctly; the error is only in [`Query::matches`]).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;

use nom::branch::alt;
use nom::bytes::complete::{tag, take_while1};
use nom::combinator::value;
use nom::{IResult, Parser};

use crate::ical::component::Component;
use crate::ical::contentline::{ContentLine, shorten, unescape_text};
use crate::ical::datetime::{DateOrDateTime, DateTime, Duration};
use crate::ical::property::{ValueKind, is_multi_valued, kind_of, known_property};
use crate::ical::scheduling::address_key;

/// Longest QUERY text accepted, in octets (spec §3.4 GW limit; beyond: 3.14).
pub const MAX_QUERY_OCTETS: usize = 8 * 1024;
/// Most comparisons in one WHERE clause (spec §3.4 GW limit; beyond: 3.14).
pub const MAX_CONDITIONS: usize = 64;
/// Deepest nesting of parentheses in a WHERE clause (spec §3.4 GW limit; beyond: 3.14).
pub const MAX_NESTING: usize = 16;

/// Components a FROM clause may name besides X- names (cap-04 §5.1, spec §3.4).
const KNOWN_COMPONENTS: [&str; 7] = [
    "VEVENT",
    "VTODO",
    "VJOURNAL",
    "VFREEBUSY",
    "VALARM",
    "VTIMEZONE",
    "VCAR",
];

/// Words that belong to full SQL but not to SQL-MIN: reported as 3.14, not as a syntax error.
const UNSUPPORTED_SQL: [&str; 11] = [
    "LIKE", "NOT", "IN", "IS", "BETWEEN", "ORDER", "GROUP", "HAVING", "LIMIT", "UNION", "JOIN",
];

// ------------------------------------------------------------------ public types --

/// A VQUERY component (cap-04 §5.1, spec §3.4): QUERY, optional QUERYNAME, MAXRESULTS,
/// MAXSIZE (also the -02 spelling MAXRESULTSSIZE), EXPAND (TRUE/FALSE, default FALSE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VQuery {
    /// The parsed `QUERY` (cap-04 §5.1 `querycomp`).
    pub query: Query,
    /// `QUERYNAME`, if given (a name for the query; stored queries are not supported).
    pub name: Option<String>,
    /// `MAXRESULTS`: the most components to return, as sent (the caller decides what 0 means).
    pub max_results: Option<usize>,
    /// `MAXSIZE` (or -02 `MAXRESULTSSIZE`): the largest reply in octets, as sent.
    pub max_size: Option<usize>,
}

/// An SQL-MIN query (cap-04 §5.1): `SELECT <cols|*> FROM <COMP>[,<COMP>...] [WHERE <cond>]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The SELECT list.
    pub columns: Columns,
    /// The FROM list, upper-cased (VEVENT, VTODO, …, X- names).
    pub from: Vec<String>,
    /// The WHERE condition; `None` selects every component named in FROM.
    pub condition: Option<Condition>,
}

/// The SELECT list of a [`Query`] (cap-04 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Columns {
    /// `*`: whole components.
    All,
    /// Column names, upper-cased; dotted names are kept as written, upper-cased
    /// (`VALARM.TRIGGER`, `VEVENT.DTSTART`). `METHOD` is the pseudo-column of spec §3.3.
    Named(Vec<String>),
}

/// A WHERE condition (cap-04 §5.1; AND binds tighter than OR, spec §3.4).
///
/// Trees built by [`parse`] hold at most [`MAX_CONDITIONS`] comparisons; evaluation recurses
/// over the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// Both hold.
    And(Box<Condition>, Box<Condition>),
    /// Either holds.
    Or(Box<Condition>, Box<Condition>),
    /// `column op value`.
    Compare {
        /// Upper-cased column name (possibly dotted, or `METHOD`).
        column: String,
        /// The operator.
        op: Op,
        /// The value with its quotes removed and `''` turned into `'`.
        value: String,
    },
}

/// A comparison operator of SQL-MIN (cap-04 §5.1; `==` and `<>` accepted, spec §3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `=` (also `==`).
    Eq,
    /// `!=` (also `<>`).
    Ne,
    /// `<`.
    Lt,
    /// `>`.
    Gt,
    /// `<=`.
    Le,
    /// `>=`.
    Ge,
}

/// Why a query is unusable (cap-04 §5.1, spec §3.4): an RFC 2446 REQUEST-STATUS code and a
/// readable reason naming the offending token and its octet offset in the query text.
///
/// Codes used: 3.0 invalid column name; 3.1 invalid QUERY text or VQUERY value; 3.11 QUERY
/// missing or empty; 3.12 unknown component in FROM; 3.14 unsupported (EXPAND:TRUE, a stored
/// QUERYNAME without QUERY, full-SQL words such as LIKE or ORDER BY, a limit exceeded).
pub use super::status::Refusal as QueryError;

/// What of a [`Query`] can be pushed down to a CalDAV `calendar-query` (RFC 4791 §7.8), for
/// calgate to evaluate [`Query::matches`] exactly afterwards (spec §3.3 READ, §3.4).
///
/// A SAFE SUPERSET: every component the query matches satisfies the UID filter and overlaps
/// the time range in the sense of RFC 4791 §9.9 (`start < effective end` and
/// `end > DTSTART`). Only comparisons reachable through the top-level AND chain contribute.
/// A contradictory query may give `start >= end` (it matches nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushdown {
    /// `UID = 'x'`: only this UID can match.
    pub uid: Option<String>,
    /// Lower bound of the RFC 4791 time-range (UTC); only for `FROM VEVENT`.
    pub start: Option<DateTime>,
    /// Upper bound (exclusive) of the RFC 4791 time-range (UTC); only for `FROM VEVENT`.
    pub end: Option<DateTime>,
    /// Which entries to look at (the METHOD pseudo-column, spec §3.3).
    pub entries: MethodFilter,
}

/// Which entries a query can match (spec §3.3 READ: `METHOD = 'CREATE'` selects booked
/// entries, `METHOD != 'CREATE'` scheduled ones waiting in the VSCHEDULE queue).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MethodFilter {
    /// Booked entries only (METHOD = CREATE).
    Booked,
    /// Scheduled (iTIP) entries only (METHOD other than CREATE).
    Scheduled,
    /// Both.
    Both,
}

impl MethodFilter {
    /// Whether an entry with this METHOD pseudo-column value (spec §3.3) is admitted.
    #[cfg(test)]
    fn admits(self, method: &str) -> bool {
        let booked = method.trim().eq_ignore_ascii_case("CREATE");
        match self {
            MethodFilter::Booked => booked,
            MethodFilter::Scheduled => !booked,
            MethodFilter::Both => true,
        }
    }

    fn intersect(self, other: MethodFilter) -> MethodFilter {
        match (self, other) {
            (MethodFilter::Both, x) | (x, MethodFilter::Both) => x,
            // Equal, or a contradiction (nothing matches): either answer is right.
            (x, _) => x,
        }
    }

    fn union(self, other: MethodFilter) -> MethodFilter {
        if self == other {
            self
        } else {
            MethodFilter::Both
        }
    }
}

// ------------------------------------------------------------------ VQUERY --

/// Read a VQUERY component (cap-04 §5.1, spec §3.4).
///
/// - `QUERY` (exactly one; its value is TEXT-unescaped, then [`parse`]d). Missing → 3.11,
///   unless `QUERYNAME` is present: a stored-query reference, unsupported → 3.14. Several → 3.1.
/// - `QUERYNAME` → [`VQuery::name`].
/// - `MAXRESULTS`, `MAXSIZE` / `MAXRESULTSSIZE`: non-negative integers, else 3.1.
/// - `EXPAND`: `FALSE` (default) or `TRUE`, which is refused with 3.14; anything else 3.1.
///
/// Other properties (such as the -00..-02 `SCOPE`) and sub-components are ignored; the
/// component's own name is not checked.
pub fn from_component(vquery: &Component) -> Result<VQuery, QueryError> {
    let name = vquery
        .value("QUERYNAME")
        .map(|v| unescape_text(v).trim().to_string())
        .filter(|v| !v.is_empty());
    let queries: Vec<&ContentLine> = vquery.properties("QUERY").collect();
    let text = match queries.as_slice() {
        [] => {
            return Err(match &name {
                Some(n) => QueryError::new(
                    "3.14",
                    format!(
                        "stored queries are not supported: QUERYNAME {:?} without QUERY",
                        shorten(n)
                    ),
                ),
                None => QueryError::new("3.11", "VQUERY has no QUERY property"),
            });
        }
        [one] => unescape_text(&one.value),
        more => {
            return Err(QueryError::new(
                "3.1",
                format!(
                    "VQUERY has {} QUERY properties; exactly one is allowed",
                    more.len()
                ),
            ));
        }
    };
    // `EXPAND` (-03+): calgate does not expand recurrences, so only FALSE (the default) is
    // accepted.
    match vquery.value("EXPAND").map(str::trim) {
        None => {}
        Some(v) if v.eq_ignore_ascii_case("FALSE") => {}
        Some(v) if v.eq_ignore_ascii_case("TRUE") => {
            return Err(QueryError::new(
                "3.14",
                "EXPAND:TRUE (recurrence expansion) is not supported",
            ));
        }
        Some(v) => {
            return Err(QueryError::new(
                "3.1",
                format!("EXPAND must be TRUE or FALSE, found {:?}", shorten(v)),
            ));
        }
    };
    let count = |prop: &str| -> Result<Option<usize>, QueryError> {
        vquery
            .value(prop)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    QueryError::new(
                        "3.1",
                        format!(
                            "{prop} must be a non-negative integer, found {:?}",
                            shorten(v)
                        ),
                    )
                })
            })
            .transpose()
    };
    let max_results = count("MAXRESULTS")?;
    let max_size = match count("MAXSIZE")? {
        Some(n) => Some(n),
        None => count("MAXRESULTSSIZE")?,
    };
    let query = parse(&text)?;
    Ok(VQuery {
        query,
        name,
        max_results,
        max_size,
    })
}

// ------------------------------------------------------------------ lexer --

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A name, keyword or bare value.
    Word(String),
    /// A quoted value, quotes removed.
    Str(String),
    Op(Op),
    LParen,
    RParen,
    Comma,
    Semi,
    Star,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    /// Octet offset in the query text.
    pos: usize,
}

fn is_word_char(c: char) -> bool {
    !c.is_whitespace()
        && !matches!(
            c,
            '(' | ')' | ',' | ';' | '=' | '<' | '>' | '!' | '\'' | '"' | '*'
        )
}

/// ```abnf
/// op = "==" / "!=" / "<>" / "<=" / ">=" / "=" / "<" / ">"
/// ```
fn operator(input: &str) -> IResult<&str, Op> {
    alt((
        value(Op::Eq, tag("==")),
        value(Op::Ne, tag("!=")),
        value(Op::Ne, tag("<>")),
        value(Op::Le, tag("<=")),
        value(Op::Ge, tag(">=")),
        value(Op::Eq, tag("=")),
        value(Op::Lt, tag("<")),
        value(Op::Gt, tag(">")),
    ))
    .parse(input)
}

/// ```abnf
/// bare = 1*(any char but white space and ( ) , ; = < > ! ' " *)
/// ```
fn word(input: &str) -> IResult<&str, &str> {
    take_while1(is_word_char).parse(input)
}

/// A quoted value starting at `input` (its first char is the quote): the unquoted text and
/// the octets consumed. A doubled quote stands for one quote. `None` when unterminated.
fn quoted(input: &str) -> Option<(String, usize)> {
    let q = input.chars().next()?;
    let body = input.get(q.len_utf8()..)?;
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != q {
            out.push(c);
        } else if chars.peek().is_some_and(|&(_, n)| n == q) {
            out.push(q);
            chars.next();
        } else {
            return Some((out, q.len_utf8() + i + c.len_utf8()));
        }
    }
    None
}

fn lex(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut toks = Vec::new();
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else {
            break;
        };
        let pos = text.len() - rest.len();
        let (tok, len) = match c {
            '(' => (Tok::LParen, 1),
            ')' => (Tok::RParen, 1),
            ',' => (Tok::Comma, 1),
            ';' => (Tok::Semi, 1),
            '*' => (Tok::Star, 1),
            '\'' | '"' => match quoted(rest) {
                Some((s, n)) => (Tok::Str(s), n),
                None => {
                    return Err(QueryError::new(
                        "3.1",
                        format!("unterminated quoted value starting at offset {pos}"),
                    ));
                }
            },
            '=' | '<' | '>' | '!' => match operator(rest) {
                Ok((r, op)) => (Tok::Op(op), rest.len() - r.len()),
                Err(_) => {
                    return Err(QueryError::new(
                        "3.1",
                        format!(
                            "unexpected {c:?} at offset {pos} (expected an operator such as !=)"
                        ),
                    ));
                }
            },
            _ => match word(rest) {
                Ok((r, w)) => (Tok::Word(w.to_string()), rest.len() - r.len()),
                Err(_) => {
                    return Err(QueryError::new(
                        "3.1",
                        format!("unexpected {c:?} at offset {pos}"),
                    ));
                }
            },
        };
        toks.push(Token { tok, pos });
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok(toks)
}

// ------------------------------------------------------------------ parser --

/// Parse the SQL-MIN text of a QUERY property (cap-04 §5.1; grammar and leniency in the
/// module documentation and spec §3.4).
///
/// Errors: 3.11 empty text; 3.0 a malformed column name; 3.12 an unknown FROM component;
/// 3.14 a limit exceeded or a full-SQL feature; 3.1 anything else (including a value that is
/// not a date or date-time for a date-time column such as DTSTART, or not an integer for
/// SEQUENCE, PRIORITY, PERCENT-COMPLETE, REPEAT).
pub fn parse(text: &str) -> Result<Query, QueryError> {
    if text.len() > MAX_QUERY_OCTETS {
        return Err(QueryError::new(
            "3.14",
            format!(
                "query is {} octets long; at most {MAX_QUERY_OCTETS} are accepted",
                text.len()
            ),
        ));
    }
    if text.trim().is_empty() {
        return Err(QueryError::new("3.11", "QUERY is empty"));
    }
    let toks = lex(text)?;
    let mut p = SqlParser {
        toks,
        i: 0,
        end: text.len(),
        conditions: 0,
    };
    p.query()
}

struct SqlParser {
    toks: Vec<Token>,
    i: usize,
    end: usize,
    conditions: usize,
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(crate::ical::contentline::is_name_char)
}

fn is_column_syntax(s: &str) -> bool {
    s.split('.').all(is_name)
}

fn is_known_column(s: &str) -> bool {
    is_column_syntax(s)
        && s.rsplit('.')
            .next()
            .is_some_and(|last| known_property(last).is_some())
}

fn is_known_component(s: &str) -> bool {
    KNOWN_COMPONENTS.iter().any(|k| k.eq_ignore_ascii_case(s))
}

fn is_x_name(s: &str) -> bool {
    s.len() > 2 && s.get(..2).is_some_and(|p| p.eq_ignore_ascii_case("X-")) && is_name(s)
}

/// `word` without a case-insensitive `suffix`, if it ends with it and something is left.
fn strip_suffix_ci<'a>(word: &'a str, suffix: &str) -> Option<&'a str> {
    let cut = word.len().checked_sub(suffix.len()).filter(|&n| n > 0)?;
    let tail = word.get(cut..)?;
    tail.eq_ignore_ascii_case(suffix)
        .then(|| word.get(..cut))
        .flatten()
}

/// `word` without a case-insensitive `prefix`, if it starts with it and something is left.
fn strip_prefix_ci<'a>(word: &'a str, prefix: &str) -> Option<&'a str> {
    let head = word.get(..prefix.len())?;
    let rest = word.get(prefix.len()..).filter(|r| !r.is_empty())?;
    head.eq_ignore_ascii_case(prefix).then_some(rest)
}

impl SqlParser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.i).map(|t| &t.tok)
    }

    fn pos(&self) -> usize {
        self.toks.get(self.i).map_or(self.end, |t| t.pos)
    }

    fn bump(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).cloned();
        if t.is_some() {
            self.i += 1;
        }
        t
    }

    fn eat(&mut self, tok: &Tok) -> bool {
        if self.peek() == Some(tok) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_semis(&mut self) {
        while self.eat(&Tok::Semi) {}
    }

    fn peek_keyword(&self, kw: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(kw))
    }

    /// What is at the current position, for an error message.
    fn found(&self) -> String {
        describe(self.toks.get(self.i))
    }

    /// Consume keyword `kw`. Fold repair: a word `kw<rest>` where `rest` satisfies `known`
    /// counts as the keyword followed by the word `rest`.
    fn eat_keyword(&mut self, kw: &str, known: fn(&str) -> bool) -> bool {
        let Some(Token {
            tok: Tok::Word(w),
            pos,
        }) = self.toks.get(self.i)
        else {
            return false;
        };
        if w.eq_ignore_ascii_case(kw) {
            self.i += 1;
            return true;
        }
        if let Some(rest) = strip_prefix_ci(w, kw).filter(|r| known(r)) {
            let token = Token {
                tok: Tok::Word(rest.to_string()),
                pos: pos + kw.len(),
            };
            self.toks[self.i] = token;
            return true;
        }
        false
    }

    /// Fold repair for `<name><kw>`: when the word just consumed (at `self.i - 1`) is not
    /// followed by a separator or `kw`, ends with `kw`, and what precedes `kw` is `known`,
    /// shorten it and put `kw` back as the next token. Returns the shortened name.
    fn split_suffix(
        &mut self,
        w: &str,
        pos: usize,
        kw: &str,
        known: fn(&str) -> bool,
    ) -> Option<String> {
        let separated = matches!(
            self.peek(),
            None | Some(Tok::Comma | Tok::RParen | Tok::Semi)
        ) || self.peek_keyword(kw);
        if separated {
            return None;
        }
        let prefix = strip_suffix_ci(w, kw).filter(|p| known(p))?;
        let kw_token = Token {
            tok: Tok::Word(kw.to_string()),
            pos: pos + prefix.len(),
        };
        self.toks.insert(self.i, kw_token);
        Some(prefix.to_string())
    }

    fn query(&mut self) -> Result<Query, QueryError> {
        self.skip_semis();
        if !self.eat_keyword("SELECT", is_known_column) {
            return Err(QueryError::new(
                "3.1",
                format!("a query starts with SELECT; found {}", self.found()),
            ));
        }
        let columns = self.columns()?;
        self.skip_semis();
        if !self.eat_keyword("FROM", is_known_component) {
            return Err(QueryError::new(
                "3.1",
                format!(
                    "expected FROM after the column list, found {}",
                    self.found()
                ),
            ));
        }
        let from = self.components()?;
        self.skip_semis();
        let condition = if self.eat_keyword("WHERE", is_known_column) {
            let c = self.or_expr(0)?;
            self.skip_semis();
            Some(c)
        } else {
            None
        };
        if let Some(t) = self.toks.get(self.i) {
            if let Tok::Word(w) = &t.tok
                && UNSUPPORTED_SQL.iter().any(|k| k.eq_ignore_ascii_case(w))
            {
                return Err(QueryError::new(
                    "3.14",
                    format!(
                        "{} at offset {} is not part of SQL-MIN (QUERYLEVEL=SQL-MIN)",
                        w.to_ascii_uppercase(),
                        t.pos
                    ),
                ));
            }
            let expected = if condition.is_some() {
                "AND, OR or the end of the query"
            } else {
                "WHERE or the end of the query"
            };
            return Err(QueryError::new(
                "3.1",
                format!("expected {expected}, found {}", self.found()),
            ));
        }
        Ok(Query {
            columns,
            from,
            condition,
        })
    }

    /// A comma-separated list, optionally in parentheses (`what` names it in the error for a
    /// missing `)`). `item` reads one entry and says whether it ends the list (a name glued to
    /// the next keyword, see [`SqlParser::split_suffix`]).
    fn list<T>(
        &mut self,
        what: &str,
        mut item: impl FnMut(&mut Self) -> Result<(T, bool), QueryError>,
    ) -> Result<Vec<T>, QueryError> {
        let open = self.pos();
        let paren = self.eat(&Tok::LParen);
        let mut items = Vec::new();
        loop {
            let (v, last) = item(self)?;
            items.push(v);
            if last || !self.eat(&Tok::Comma) {
                break;
            }
        }
        if paren && !self.eat(&Tok::RParen) {
            return Err(QueryError::new(
                "3.1",
                format!(
                    "missing ')' for the '(' at offset {open} around the {what}, found {}",
                    self.found()
                ),
            ));
        }
        Ok(items)
    }

    fn columns(&mut self) -> Result<Columns, QueryError> {
        // `None` for `*`.
        let items = self.list("column list", |p| {
            let at = p.found();
            match p.bump() {
                Some(Token { tok: Tok::Star, .. }) => Ok((None, false)),
                Some(Token {
                    tok: Tok::Word(w),
                    pos,
                }) => {
                    if let Some(col) = p.split_suffix(&w, pos, "FROM", is_known_column) {
                        return Ok((Some(col.to_ascii_uppercase()), true));
                    }
                    Ok((Some(column_name(&w, pos)?), false))
                }
                _ => Err(QueryError::new(
                    "3.0",
                    format!("expected a column name or *, found {at}"),
                )),
            }
        })?;
        Ok(if items.iter().any(Option::is_none) {
            Columns::All
        } else {
            Columns::Named(items.into_iter().flatten().collect())
        })
    }

    fn components(&mut self) -> Result<Vec<String>, QueryError> {
        self.list("FROM list", |p| {
            let at = p.found();
            let Some(Token {
                tok: Tok::Word(w),
                pos,
            }) = p.bump()
            else {
                return Err(QueryError::new(
                    "3.1",
                    format!("expected a component name after FROM, found {at}"),
                ));
            };
            if let Some(c) = p.split_suffix(&w, pos, "WHERE", is_known_component) {
                return Ok((c.to_ascii_uppercase(), true));
            }
            if !is_known_component(&w) && !is_x_name(&w) {
                return Err(QueryError::new(
                    "3.12",
                    format!(
                        "unknown component {:?} at offset {pos} in FROM (expected VEVENT, VTODO, VJOURNAL, VFREEBUSY, VALARM, VTIMEZONE, VCAR or an X- name)",
                        shorten(&w)
                    ),
                ));
            }
            Ok((w.to_ascii_uppercase(), false))
        })
    }

    fn or_expr(&mut self, depth: usize) -> Result<Condition, QueryError> {
        let mut left = self.and_expr(depth)?;
        while self.eat_keyword("OR", is_known_column) {
            let right = self.and_expr(depth)?;
            left = Condition::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Condition, QueryError> {
        let mut left = self.primary(depth)?;
        while self.eat_keyword("AND", is_known_column) {
            let right = self.primary(depth)?;
            left = Condition::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn primary(&mut self, depth: usize) -> Result<Condition, QueryError> {
        let open = self.pos();
        if !self.eat(&Tok::LParen) {
            return self.compare();
        }
        if depth >= MAX_NESTING {
            return Err(QueryError::new(
                "3.14",
                format!("parentheses nested deeper than {MAX_NESTING} levels at offset {open}"),
            ));
        }
        let c = self.or_expr(depth + 1)?;
        if !self.eat(&Tok::RParen) {
            return Err(QueryError::new(
                "3.1",
                format!(
                    "missing ')' for the '(' at offset {open}, found {}",
                    self.found()
                ),
            ));
        }
        Ok(c)
    }

    fn compare(&mut self) -> Result<Condition, QueryError> {
        let at = self.found();
        let (column, col_pos) = match self.bump() {
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) => (column_name(&w, pos)?, pos),
            Some(Token {
                tok: Tok::Star,
                pos,
            }) => {
                return Err(QueryError::new(
                    "3.0",
                    format!("* at offset {pos} is not a column that can be compared"),
                ));
            }
            _ => {
                return Err(QueryError::new(
                    "3.1",
                    format!("expected a condition (column operator value), found {at}"),
                ));
            }
        };
        let at = self.found();
        let op = match self.bump() {
            Some(Token {
                tok: Tok::Op(op), ..
            }) => op,
            Some(Token {
                tok: Tok::Word(w),
                pos,
            }) if UNSUPPORTED_SQL.iter().any(|k| k.eq_ignore_ascii_case(&w)) => {
                return Err(QueryError::new(
                    "3.14",
                    format!(
                        "{} at offset {pos} is not part of SQL-MIN (QUERYLEVEL=SQL-MIN)",
                        w.to_ascii_uppercase()
                    ),
                ));
            }
            _ => {
                return Err(QueryError::new(
                    "3.1",
                    format!(
                        "expected a comparison operator (=, !=, <, >, <=, >=) after column {column} at offset {col_pos}, found {at}"
                    ),
                ));
            }
        };
        let at = self.found();
        let value = match self.bump() {
            Some(Token {
                tok: Tok::Str(s) | Tok::Word(s),
                ..
            }) => s,
            _ => {
                return Err(QueryError::new(
                    "3.1",
                    format!("missing value after {column} {op} (offset {col_pos}), found {at}"),
                ));
            }
        };
        self.conditions += 1;
        if self.conditions > MAX_CONDITIONS {
            return Err(QueryError::new(
                "3.14",
                format!(
                    "more than {MAX_CONDITIONS} conditions (the one at offset {col_pos} is too many)"
                ),
            ));
        }
        check_value(&column, &value, col_pos)?;
        Ok(Condition::Compare { column, op, value })
    }
}

fn describe(t: Option<&Token>) -> String {
    let Some(t) = t else {
        return "the end of the query".to_string();
    };
    let text = match &t.tok {
        Tok::Word(w) => format!("{:?}", shorten(w)),
        Tok::Str(s) => format!("the quoted value {:?}", shorten(s)),
        Tok::Op(op) => format!("'{op}'"),
        Tok::LParen => "'('".to_string(),
        Tok::RParen => "')'".to_string(),
        Tok::Comma => "','".to_string(),
        Tok::Semi => "';'".to_string(),
        Tok::Star => "'*'".to_string(),
    };
    format!("{text} at offset {}", t.pos)
}

/// A column name (property, dotted, X- or METHOD), upper-cased; 3.0 if malformed or a keyword.
fn column_name(w: &str, pos: usize) -> Result<String, QueryError> {
    if ["SELECT", "FROM", "WHERE", "AND", "OR"]
        .iter()
        .any(|k| k.eq_ignore_ascii_case(w))
    {
        return Err(QueryError::new(
            "3.0",
            format!(
                "expected a column name, found the keyword {} at offset {pos}",
                w.to_ascii_uppercase()
            ),
        ));
    }
    if is_column_syntax(w) {
        Ok(w.to_ascii_uppercase())
    } else {
        Err(QueryError::new(
            "3.0",
            format!(
                "invalid column name {:?} at offset {pos} (expected NAME or COMPONENT.NAME with letters, digits and '-')",
                shorten(w)
            ),
        ))
    }
}

/// Values of typed columns must have the column's type (3.1 otherwise).
fn check_value(column: &str, value: &str, pos: usize) -> Result<(), QueryError> {
    let name = column.rsplit('.').next().unwrap_or(column);
    match kind_of(name) {
        ValueKind::DateTime if instant(value, None).is_none() => Err(QueryError::new(
            "3.1",
            format!(
                "value {:?} for {column} (offset {pos}) is not a date or date-time (YYYYMMDD or YYYYMMDDTHHMMSS[Z])",
                shorten(value)
            ),
        )),
        ValueKind::Integer if value.trim().parse::<i64>().is_err() => Err(QueryError::new(
            "3.1",
            format!(
                "value {:?} for {column} (offset {pos}) is not an integer",
                shorten(value)
            ),
        )),
        _ => Ok(()),
    }
}

// ------------------------------------------------------------------ evaluation --

/// Seconds since the epoch of a DATE or DATE-TIME; floating and TZID times are taken as UTC
/// (no time-zone database), a DATE as midnight UTC.
fn instant(value: &str, tzid: Option<&str>) -> Option<i64> {
    Some(DateOrDateTime::parse(value, tzid).ok()?.wall_seconds())
}

fn duration_secs(value: &str) -> Option<i64> {
    Duration::parse(value).ok().map(|d| d.total_seconds())
}

fn integer(value: &str) -> Option<i64> {
    value.trim().parse().ok()
}

/// Split a list value on commas not escaped by a backslash; pieces are trimmed.
fn split_list(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            ',' if !escaped => {
                out.push(value.get(start..i).unwrap_or_default().trim());
                start = i + 1;
            }
            _ => escaped = false,
        }
    }
    out.push(value.get(start..).unwrap_or_default().trim());
    out
}

/// One value a column has on a component.
#[derive(Debug, Clone)]
enum Inst<'a> {
    /// A property value (or one item of a list), with the line's TZID.
    Raw {
        text: &'a str,
        tzid: Option<&'a str>,
    },
    /// A computed instant (the effective DTEND).
    Instant(i64),
    /// The METHOD pseudo-column.
    Method(&'a str),
}

impl Inst<'_> {
    fn instant(&self) -> Option<i64> {
        match self {
            Inst::Raw { text, tzid } => instant(text, *tzid),
            Inst::Instant(s) => Some(*s),
            Inst::Method(_) => None,
        }
    }

    fn raw(&self) -> Cow<'_, str> {
        match self {
            Inst::Raw { text, .. } => Cow::Borrowed(text),
            Inst::Instant(s) => Cow::Owned(
                DateTime::from_unix_seconds(*s)
                    .map(|d| d.to_ical())
                    .unwrap_or_default(),
            ),
            Inst::Method(m) => Cow::Borrowed(m),
        }
    }

    fn text(&self) -> Cow<'_, str> {
        match self {
            Inst::Raw { text, .. } => Cow::Owned(unescape_text(text)),
            _ => self.raw(),
        }
    }
}

/// Where a column lives, relative to one component.
enum Target<'c> {
    Method,
    Property {
        /// Sub-component names to descend through.
        path: Vec<&'c str>,
        /// The property name.
        name: &'c str,
    },
}

/// Resolve a (possibly dotted) column on a component named `comp`: a first segment naming
/// the component itself is dropped; the last segment is the property.
fn resolve<'c>(column: &'c str, comp: &str) -> Target<'c> {
    let mut segs: Vec<&str> = column.split('.').collect();
    if segs.len() > 1 && segs.first().is_some_and(|s| s.eq_ignore_ascii_case(comp)) {
        segs.remove(0);
    }
    let name = segs.pop().unwrap_or_default();
    if segs.is_empty() && name.eq_ignore_ascii_case("METHOD") {
        Target::Method
    } else {
        Target::Property { path: segs, name }
    }
}

/// The components reached from `comp` through `path` (every match at every step).
fn descend<'a>(comp: &'a Component, path: &[&str]) -> Vec<&'a Component> {
    let mut cur = vec![comp];
    for seg in path {
        cur = cur
            .into_iter()
            .flat_map(|c| {
                c.components
                    .iter()
                    .filter(|s| s.name.eq_ignore_ascii_case(seg))
            })
            .collect();
    }
    cur
}

/// Every value of `column` on `comp`, with the METHOD pseudo-column set to `method`.
fn instances<'a>(
    column: &'a str,
    comp: &'a Component,
    method: &'a str,
) -> (ValueKind, Vec<Inst<'a>>) {
    let (path, name) = match resolve(column, &comp.name) {
        Target::Method => return (ValueKind::Enumerated, vec![Inst::Method(method)]),
        Target::Property { path, name } => (path, name),
    };
    let mut out = Vec::new();
    for c in descend(comp, &path) {
        let before = out.len();
        for line in c.properties(name) {
            let tzid = line.param("TZID");
            if is_multi_valued(name) {
                out.extend(
                    split_list(&line.value)
                        .into_iter()
                        .map(|text| Inst::Raw { text, tzid }),
                );
            } else {
                out.push(Inst::Raw {
                    text: &line.value,
                    tzid,
                });
            }
        }
        if out.len() == before
            && name.eq_ignore_ascii_case("DTEND")
            && let Some(end) = effective_end(c)
        {
            out.push(Inst::Instant(end));
        }
    }
    (kind_of(name), out)
}

/// The end of a component without DTEND: DUE for a VTODO, else RFC 5545 §3.6.1 (DTSTART +
/// DURATION, DTSTART + 1 day for a DATE, DTSTART).
fn effective_end(c: &Component) -> Option<i64> {
    if c.name == "VTODO"
        && let Some(due) = c.due().transpose()
    {
        return due.ok().map(|d| d.wall_seconds());
    }
    c.effective_end().ok().flatten().map(|d| d.wall_seconds())
}

/// Compare one value of a column with the query value; `None` when they are incomparable
/// (for instance a DTSTART that is not a date-time).
fn compare(inst: &Inst<'_>, kind: ValueKind, q: &str) -> Option<Ordering> {
    match kind {
        ValueKind::DateTime => Some(inst.instant()?.cmp(&instant(q, None)?)),
        ValueKind::Integer => match (integer(&inst.raw()), integer(q)) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => Some(str::cmp(&inst.text(), q)),
        },
        ValueKind::CalAddress => Some(address_key(&inst.text()).cmp(&address_key(q))),
        ValueKind::Enumerated => Some(
            inst.text()
                .trim()
                .to_ascii_uppercase()
                .cmp(&q.trim().to_ascii_uppercase()),
        ),
        ValueKind::Text => Some(str::cmp(&inst.text(), q)),
        ValueKind::Other => {
            let raw = inst.raw();
            if let (Some(a), Some(b)) = (inst.instant(), instant(q, None)) {
                Some(a.cmp(&b))
            } else if let (Some(a), Some(b)) = (duration_secs(&raw), duration_secs(q)) {
                Some(a.cmp(&b))
            } else if let (Some(a), Some(b)) = (integer(&raw), integer(q)) {
                Some(a.cmp(&b))
            } else {
                Some(str::cmp(&inst.text(), q))
            }
        }
    }
}

impl Op {
    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
            Op::Lt => o == Ordering::Less,
            Op::Gt => o == Ordering::Greater,
            Op::Le => o != Ordering::Greater,
            Op::Ge => o != Ordering::Less,
        }
    }

    /// The operator as written in SQL-MIN (cap-04 §5.1).
    fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Gt => ">",
            Op::Le => "<=",
            Op::Ge => ">=",
        }
    }
}

impl Condition {
    /// Evaluate on one component (cap-04 §5.1, spec §3.4; the rules are in [`Query::matches`],
    /// which also checks FROM).
    fn matches(&self, component: &Component, method: &str) -> bool {
        match self {
            Condition::And(a, b) => a.matches(component, method) && b.matches(component, method),
            Condition::Or(a, b) => a.matches(component, method) || b.matches(component, method),
            Condition::Compare { column, op, value } => {
                let (kind, insts) = instances(column, component, method);
                let mut results = insts.iter().map(|i| compare(i, kind, value));
                match op {
                    Op::Ne => !results.any(|o| o == Some(Ordering::Equal)),
                    _ => results.any(|o| o.is_some_and(|o| op.holds(o))),
                }
            }
        }
    }

    /// The METHOD filter of this condition; `None` when it says nothing about METHOD.
    fn method_filter(&self, from: &[String]) -> Option<MethodFilter> {
        match self {
            Condition::And(a, b) => match (a.method_filter(from), b.method_filter(from)) {
                (None, x) | (x, None) => x,
                (Some(x), Some(y)) => Some(x.intersect(y)),
            },
            Condition::Or(a, b) => match (a.method_filter(from), b.method_filter(from)) {
                (None, None) => None,
                // A branch without a METHOD condition gets the default: booked entries.
                (x, y) => Some(
                    x.unwrap_or(MethodFilter::Booked)
                        .union(y.unwrap_or(MethodFilter::Booked)),
                ),
            },
            Condition::Compare { column, op, value } => {
                if pushdown_column(column, from) != Some("METHOD") {
                    return None;
                }
                let create = value.trim().eq_ignore_ascii_case("CREATE");
                Some(match (op, create) {
                    (Op::Eq, true) => MethodFilter::Booked,
                    (Op::Eq, false) | (Op::Ne, true) => MethodFilter::Scheduled,
                    _ => MethodFilter::Both,
                })
            }
        }
    }
}

/// The plain property name of a column for pushdown: `X`, or `C.X` when FROM is `C` alone
/// (with several FROM components, `C.X` means nothing on the others).
fn pushdown_column<'c>(column: &'c str, from: &[String]) -> Option<&'c str> {
    match column.split_once('.') {
        None => Some(column),
        Some((comp, rest))
            if !rest.contains('.') && from.len() == 1 && from[0].eq_ignore_ascii_case(comp) =>
        {
            Some(rest)
        }
        Some(_) => None,
    }
}

/// A typed sort key: instants, then durations, then integers, then text, then missing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Instant(i64),
    Duration(i64),
    Int(i64),
    Text(String),
    Missing,
}

impl Query {
    /// What can be pushed down to a CalDAV calendar-query: a SAFE SUPERSET of the matches
    /// (cap-04 §5.1, spec §3.3 READ, §3.4).
    ///
    /// Only comparisons on the top-level AND chain are used (below an OR, only METHOD
    /// conditions count):
    /// - `UID = 'x'` → `uid`;
    /// - time bounds, only when FROM is VEVENT alone. With `S` = DTSTART and `E` = the
    ///   effective end (RFC 4791 §9.9 includes an event when `start < E` and `end > S`):
    ///   `DTEND > t`, `DTSTART > t` → `start = t`; `DTEND >= t`, `DTEND = t`,
    ///   `DTSTART >= t`, `DTSTART = t` → `start = t − 1 s` (an event ending exactly at `t`
    ///   must still satisfy `start < E`); `DTSTART < t`, `DTEND < t` → `end = t`;
    ///   `DTSTART <= t`, `DTSTART = t`, `DTEND <= t`, `DTEND = t` → `end = t + 1 s`. Of
    ///   several bounds the tightest is kept;
    /// - METHOD: `METHOD = 'CREATE'` → [`MethodFilter::Booked`]; `METHOD != 'CREATE'` or
    ///   `METHOD = '<other>'` → [`MethodFilter::Scheduled`]; `METHOD != '<other>'` or an
    ///   ordering → [`MethodFilter::Both`]; AND intersects and OR unites. **Without any
    ///   METHOD condition the default is [`MethodFilter::Booked`]**: calgate's READ returns
    ///   booked entries only unless the query asks for scheduled ones (also for an OR branch
    ///   without a METHOD condition).
    pub fn pushdown(&self) -> Pushdown {
        let mut pd = Pushdown {
            uid: None,
            start: None,
            end: None,
            entries: MethodFilter::Booked,
        };
        let Some(cond) = &self.condition else {
            return pd;
        };
        pd.entries = cond
            .method_filter(&self.from)
            .unwrap_or(MethodFilter::Booked);
        let times = self.from.len() == 1 && self.from[0] == "VEVENT";
        let mut lo: Option<i64> = None;
        let mut hi: Option<i64> = None;
        let mut stack = vec![cond];
        while let Some(c) = stack.pop() {
            let (column, op, value) = match c {
                Condition::And(a, b) => {
                    stack.push(b);
                    stack.push(a);
                    continue;
                }
                Condition::Or(..) => continue,
                Condition::Compare { column, op, value } => (column, *op, value),
            };
            let Some(name) = pushdown_column(column, &self.from) else {
                continue;
            };
            if name == "UID" {
                if op == Op::Eq && pd.uid.is_none() {
                    pd.uid = Some(value.clone());
                }
                continue;
            }
            if !times || (name != "DTSTART" && name != "DTEND") {
                continue;
            }
            let Some(t) = instant(value, None) else {
                continue;
            };
            let (low, high) = match op {
                Op::Gt => (Some(t), None),
                Op::Ge => (Some(t - 1), None),
                Op::Eq => (Some(t - 1), Some(t + 1)),
                Op::Lt => (None, Some(t)),
                Op::Le => (None, Some(t + 1)),
                Op::Ne => (None, None),
            };
            if let Some(l) = low {
                lo = Some(lo.map_or(l, |x| x.max(l)));
            }
            if let Some(h) = high {
                hi = Some(hi.map_or(h, |x| x.min(h)));
            }
        }
        pd.start = lo.and_then(DateTime::from_unix_seconds);
        pd.end = hi.and_then(DateTime::from_unix_seconds);
        pd
    }

    /// Exact evaluation on one component (cap-04 §5.1, spec §3.4). `method` is the entry's
    /// METHOD pseudo-column: "CREATE" for a booked entry in a calendar, else the iTIP method
    /// of the scheduling message (REQUEST, CANCEL, ...).
    ///
    /// - The component's name must be in FROM.
    /// - A column is looked up on the component; `VEVENT.DTSTART` drops a prefix naming this
    ///   component; `VALARM.TRIGGER` looks in the VALARM sub-components. `METHOD` compares
    ///   with `method`, case-insensitively.
    /// - Several values (several ATTENDEE lines, comma-separated CATEGORIES, RESOURCES,
    ///   EXDATE, RDATE): a comparison holds if ANY value satisfies it, except `!=`, which
    ///   holds when NO value equals the query value.
    /// - **A missing property makes every comparison false except `!=`, which is true**, so
    ///   `STATUS != 'CANCELLED'` keeps events without STATUS. A missing DTEND is the
    ///   effective end (DUE for a VTODO; else DTSTART + DURATION, DTSTART + 1 day for a
    ///   DATE, or DTSTART).
    /// - DTSTART, DTEND, DUE, DTSTAMP, CREATED, LAST-MODIFIED, RECURRENCE-ID, COMPLETED,
    ///   EXDATE compare as instants (`YYYYMMDDTHHMMSSZ`; floating and TZID times as UTC, see
    ///   the module docs; a DATE is midnight UTC); a value that is not a date-time matches
    ///   only `!=`. SEQUENCE, PRIORITY, PERCENT-COMPLETE, REPEAT compare as integers.
    ///   ATTENDEE and ORGANIZER ignore `mailto:` and case; STATUS, CLASS, TRANSP, ACTION
    ///   ignore case. Other known text properties compare exactly on the unescaped value
    ///   (`<` and `>` lexicographically). Unknown and X- properties compare as instants,
    ///   durations or integers when both sides parse as such, else as text.
    pub fn matches(&self, component: &Component, method: &str) -> bool {
        if !self
            .from
            .iter()
            .any(|f| f.eq_ignore_ascii_case(&component.name))
        {
            return false;
        }
        self.condition
            .as_ref()
            .is_none_or(|c| c.matches(component, method))
    }

    /// SELECT projection (cap-04 §5.1, spec §3.3 READ): `*` → the component unchanged;
    /// otherwise a component of the same name with only the selected properties (in their
    /// original order) and, for dotted names that name a sub-component (`VALARM.TRIGGER`),
    /// the sub-components with only those properties. A plain name that names a
    /// sub-component (`VALARM`) keeps it whole. UID and RECURRENCE-ID are always kept (the
    /// reply must identify objects). A `METHOD` column is not a property: skipped.
    pub fn project(&self, component: &Component) -> Component {
        let Columns::Named(cols) = &self.columns else {
            return component.clone();
        };
        let paths: Vec<Vec<&str>> = cols
            .iter()
            .filter_map(|c| match resolve(c, &component.name) {
                Target::Method => None,
                Target::Property { mut path, name } => {
                    path.push(name);
                    Some(path)
                }
            })
            .collect();
        project_with(component, &paths, true)
    }

    /// Result order (cap-04 §5.1; SQL-MIN has no ORDER BY, spec §3.4): by the first selected
    /// column (METHOD skipped); for `*` by DTSTART (VALARM: TRIGGER). Date-time values
    /// compare as instants, durations and the integer columns numerically, others as
    /// strings; missing values sort last. Stable.
    pub fn sort(&self, components: &mut [Component]) {
        self.sort_by(components, |c| c);
    }

    /// [`Query::sort`] for items that each stand for a component (a stored object and the
    /// component the query matched in it): DELETE and MODIFY report objects in the order READ
    /// would list them, not in the upstream's (arbitrary) order.
    pub fn sort_by<T>(&self, items: &mut [T], component: impl Fn(&T) -> &Component) {
        let column = match &self.columns {
            Columns::All => None,
            Columns::Named(cols) => cols
                .iter()
                .find(|c| !matches!(resolve(c, ""), Target::Method))
                .map(String::as_str),
        };
        items.sort_by_cached_key(|t| sort_key(component(t), column));
    }
}

fn sort_key(c: &Component, column: Option<&str>) -> SortKey {
    let column = column.unwrap_or(if c.name == "VALARM" {
        "TRIGGER"
    } else {
        "DTSTART"
    });
    let (kind, insts) = instances(column, c, "");
    let Some(first) = insts.first() else {
        return SortKey::Missing;
    };
    let raw = first.raw();
    let typed = match kind {
        ValueKind::DateTime => first.instant().map(SortKey::Instant),
        ValueKind::Integer => integer(&raw).map(SortKey::Int),
        ValueKind::Other => first
            .instant()
            .map(SortKey::Instant)
            .or_else(|| duration_secs(&raw).map(SortKey::Duration))
            .or_else(|| integer(&raw).map(SortKey::Int)),
        _ => None,
    };
    typed.unwrap_or_else(|| SortKey::Text(first.text().into_owned()))
}

fn project_with(comp: &Component, paths: &[Vec<&str>], top: bool) -> Component {
    let selects = |name: &str| {
        paths
            .iter()
            .any(|p| p.len() == 1 && p[0].eq_ignore_ascii_case(name))
    };
    let mut out = Component {
        name: comp.name.clone(),
        properties: Vec::new(),
        components: Vec::new(),
    };
    out.properties = comp
        .properties
        .iter()
        .filter(|p| (top && (p.name == "UID" || p.name == "RECURRENCE-ID")) || selects(&p.name))
        .cloned()
        .collect();
    for sub in &comp.components {
        if selects(&sub.name) {
            out.components.push(sub.clone());
            continue;
        }
        let sub_paths: Vec<Vec<&str>> = paths
            .iter()
            .filter(|p| p.len() > 1 && p[0].eq_ignore_ascii_case(&sub.name))
            .map(|p| p[1..].to_vec())
            .collect();
        if !sub_paths.is_empty() {
            out.components.push(project_with(sub, &sub_paths, false));
        }
    }
    out
}

// ------------------------------------------------------------------ display --

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Columns {
    /// `*` or `A,B,C` (cap-04 §5.1).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Columns::All => f.write_str("*"),
            Columns::Named(cols) => f.write_str(&cols.join(",")),
        }
    }
}

impl fmt::Display for Condition {
    /// Canonical SQL-MIN: single-quoted values (`''` for a quote), parentheses where the
    /// tree shape needs them, so [`parse`] gives the same tree back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let child = |f: &mut fmt::Formatter<'_>, c: &Condition, paren: bool| {
            if paren {
                write!(f, "({c})")
            } else {
                write!(f, "{c}")
            }
        };
        match self {
            Condition::And(a, b) => {
                child(f, a, matches!(**a, Condition::Or(..)))?;
                f.write_str(" AND ")?;
                child(f, b, !matches!(**b, Condition::Compare { .. }))
            }
            Condition::Or(a, b) => {
                child(f, a, false)?;
                f.write_str(" OR ")?;
                child(f, b, matches!(**b, Condition::Or(..)))
            }
            Condition::Compare { column, op, value } => {
                write!(f, "{column} {op} '{}'", value.replace('\'', "''"))
            }
        }
    }
}

impl fmt::Display for Query {
    /// `SELECT <cols> FROM <comps>[ WHERE <cond>]` (cap-04 §5.1), re-parseable by [`parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SELECT {} FROM {}", self.columns, self.from.join(","))?;
        if let Some(c) = &self.condition {
            write!(f, " WHERE {c}")?;
        }
        Ok(())
    }
}

// ------------------------------------------------------------------ tests --

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn q(text: &str) -> Query {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn cmp(column: &str, op: Op, value: &str) -> Condition {
        Condition::Compare {
            column: column.into(),
            op,
            value: value.into(),
        }
    }

    fn and(a: Condition, b: Condition) -> Condition {
        Condition::And(Box::new(a), Box::new(b))
    }

    fn or(a: Condition, b: Condition) -> Condition {
        Condition::Or(Box::new(a), Box::new(b))
    }

    fn comp(body: &str) -> Component {
        Component::parse(body).unwrap_or_else(|e| panic!("{body:?}: {e}"))
    }

    fn event(props: &str) -> Component {
        comp(&format!("BEGIN:VEVENT\n{props}END:VEVENT\n"))
    }

    fn err(text: &str) -> QueryError {
        match parse(text) {
            Ok(q) => panic!("{text:?} parsed as {q:?}"),
            Err(e) => e,
        }
    }

    // ----------------------------------------------------------- parsing --

    #[test]
    fn spec_read_example() {
        let query = q(
            "SELECT DTSTART,DTEND,SUMMARY,UID FROM VEVENT WHERE DTEND >= '19990310T080000Z' AND DTSTART <= '19990310T190000Z' AND METHOD = 'CREATE'",
        );
        assert_eq!(
            query,
            Query {
                columns: Columns::Named(vec![
                    "DTSTART".into(),
                    "DTEND".into(),
                    "SUMMARY".into(),
                    "UID".into()
                ]),
                from: vec!["VEVENT".into()],
                condition: Some(and(
                    and(
                        cmp("DTEND", Op::Ge, "19990310T080000Z"),
                        cmp("DTSTART", Op::Le, "19990310T190000Z")
                    ),
                    cmp("METHOD", Op::Eq, "CREATE")
                )),
            }
        );
    }

    #[test]
    fn spec_examples_parse() {
        for text in [
            "SELECT UID FROM VEVENT WHERE UID = 'abcd12345'",
            "SELECT * FROM VEVENT WHERE METHOD != 'CREATE'",
            "SELECT * FROM VEVENT WHERE METHOD = 'REQUEST'",
            "SELECT * FROM VEVENT",
            "SELECT VALARM.TRIGGER FROM VEVENT WHERE UID = 'abcd12345'",
            "SELECT VEVENT.DTSTART,VEVENT.UID FROM VEVENT,VTODO WHERE VEVENT.DTSTART >= '19990310'",
            "SELECT * FROM VTODO,VJOURNAL,VFREEBUSY,VALARM,VTIMEZONE,VCAR,X-LOTUS-THING",
            "SELECT * FROM VEVENT WHERE LOCATION = 'Building 6'",
        ] {
            q(text);
        }
        let query = q("SELECT VALARM.TRIGGER,X-FOO FROM VEVENT");
        assert_eq!(
            query.columns,
            Columns::Named(vec!["VALARM.TRIGGER".into(), "X-FOO".into()])
        );
    }

    #[test]
    fn lenient_forms() {
        let canonical =
            q("SELECT UID,DTSTART FROM VEVENT WHERE UID = 'a' AND DTSTART >= '19990310T080000Z'");
        for text in [
            "select uid,dtstart from vevent where uid = 'a' and dtstart >= '19990310T080000Z'",
            "SELECT UID , DTSTART FROM VEVENT WHERE UID='a' AND DTSTART>='19990310T080000Z'",
            "  SELECT   (UID,DTSTART)   FROM  VEVENT   WHERE (UID == \"a\") AND (DTSTART >= 19990310T080000Z) ; ",
            "SELECT (UID, DTSTART); FROM (VEVENT); WHERE UID = a AND DTSTART >= '19990310T080000Z';",
            "SELECT UID,DTSTART FROM VEVENT WHERE ((UID = 'a')) AND DTSTART>=19990310T080000Z;;",
            "Select Uid,DtStart From VEvent Where Uid = 'a' And DtStart >= '19990310T080000Z'",
            "SELECT UID,DTSTART FROM VEVENT WHERE UID = 'a'\tAND\nDTSTART >= '19990310T080000Z'",
        ] {
            assert_eq!(q(text), canonical, "{text:?}");
        }
        assert_eq!(
            q("SELECT * FROM VEVENT WHERE STATUS <> 'CANCELLED'").condition,
            Some(cmp("STATUS", Op::Ne, "CANCELLED"))
        );
        // Quote escapes.
        assert_eq!(
            q("SELECT * FROM VEVENT WHERE SUMMARY = 'Bob''s party'").condition,
            Some(cmp("SUMMARY", Op::Eq, "Bob's party"))
        );
        assert_eq!(
            q(r#"SELECT * FROM VEVENT WHERE SUMMARY = "say ""hi"" 'x'""#).condition,
            Some(cmp("SUMMARY", Op::Eq, "say \"hi\" 'x'"))
        );
        // Every operator, with and without spaces.
        for (op_text, op) in [
            ("=", Op::Eq),
            ("==", Op::Eq),
            ("!=", Op::Ne),
            ("<>", Op::Ne),
            ("<", Op::Lt),
            (">", Op::Gt),
            ("<=", Op::Le),
            (">=", Op::Ge),
        ] {
            for text in [
                format!("SELECT * FROM VEVENT WHERE SEQUENCE {op_text} 2"),
                format!("SELECT * FROM VEVENT WHERE SEQUENCE{op_text}'2'"),
            ] {
                assert_eq!(q(&text).condition, Some(cmp("SEQUENCE", op, "2")), "{text}");
            }
        }
        // SELECT * with other names is still everything.
        assert_eq!(q("SELECT *,UID FROM VEVENT").columns, Columns::All);
        assert_eq!(q("SELECT*FROM VEVENT").columns, Columns::All);
    }

    #[test]
    fn precedence_and_grouping() {
        assert_eq!(
            q("SELECT * FROM VEVENT WHERE A = '1' OR B = '2' AND C = '3'").condition,
            Some(or(
                cmp("A", Op::Eq, "1"),
                and(cmp("B", Op::Eq, "2"), cmp("C", Op::Eq, "3"))
            ))
        );
        assert_eq!(
            q("SELECT * FROM VEVENT WHERE (A = '1' OR B = '2') AND C = '3'").condition,
            Some(and(
                or(cmp("A", Op::Eq, "1"), cmp("B", Op::Eq, "2")),
                cmp("C", Op::Eq, "3")
            ))
        );
        assert_eq!(
            q("SELECT * FROM VEVENT WHERE A = '1' AND (B = '2' OR (C = '3' AND D = '4'))")
                .condition,
            Some(and(
                cmp("A", Op::Eq, "1"),
                or(
                    cmp("B", Op::Eq, "2"),
                    and(cmp("C", Op::Eq, "3"), cmp("D", Op::Eq, "4"))
                )
            ))
        );
    }

    #[test]
    fn folded_query_repair() {
        // unfold() drops the fold character, so these arrive glued.
        let canonical =
            q("SELECT DTSTART,UID FROM VEVENT WHERE UID = 'x' AND DTSTART >= '19990310'");
        for text in [
            "SELECT DTSTART,UIDFROM VEVENT WHERE UID = 'x' AND DTSTART >= '19990310'",
            "SELECT DTSTART,UID FROMVEVENT WHERE UID = 'x' AND DTSTART >= '19990310'",
            "SELECT DTSTART,UID FROM VEVENTWHERE UID = 'x' AND DTSTART >= '19990310'",
            "SELECT DTSTART,UID FROM VEVENT WHEREUID = 'x' AND DTSTART >= '19990310'",
            "SELECT DTSTART,UID FROM VEVENT WHERE UID = 'x' ANDDTSTART >= '19990310'",
            "SELECT DTSTART,UID FROM VEVENT WHERE UID = 'x'AND DTSTART >= '19990310'",
            "SELECTDTSTART,UIDFROM VEVENT WHERE UID = 'x' AND DTSTART >= '19990310'",
        ] {
            assert_eq!(q(text), canonical, "{text:?}");
        }
        assert_eq!(
            q("SELECT * FROM VEVENT WHERE UID = 'x' ORDTSTART >= '19990310'").condition,
            Some(or(
                cmp("UID", Op::Eq, "x"),
                cmp("DTSTART", Op::Ge, "19990310")
            ))
        );
        // A real column ending in FROM is left alone when FROM follows.
        assert_eq!(
            q("SELECT TZOFFSETFROM FROM VTIMEZONE").columns,
            Columns::Named(vec!["TZOFFSETFROM".into()])
        );
        assert_eq!(
            q("SELECT X-UIDFROM FROM VEVENT").columns,
            Columns::Named(vec!["X-UIDFROM".into()])
        );
        // ORGANIZER is not OR + GANIZER.
        assert_eq!(
            q("SELECT * FROM VEVENT WHERE ORGANIZER = 'a'").condition,
            Some(cmp("ORGANIZER", Op::Eq, "a"))
        );
        // Unknown names are not split.
        assert_eq!(err("SELECT X-AFROM VEVENT").code, "3.1");
        // Through the VQUERY component: the QUERY folded the way the drafts' examples are.
        let vq = comp(
            "BEGIN:VQUERY\r\nQUERY:SELECT DTSTART,UID\r\n FROM VEVENT\r\n  WHERE UID = 'x' AND\r\n  DTSTART >= '19990310'\r\nEND:VQUERY\r\n",
        );
        assert_eq!(from_component(&vq).unwrap().query, canonical);
    }

    #[test]
    fn malformed_queries() {
        let cases: [(&str, &str, &str); 24] = [
            ("", "3.11", "empty"),
            ("   ", "3.11", "empty"),
            ("UID FROM VEVENT", "3.1", "SELECT"),
            ("SELECT UID VEVENT", "3.1", "FROM"),
            ("SELECT FROM VEVENT", "3.0", "column"),
            ("SELECT UID, FROM VEVENT", "3.0", "keyword FROM"),
            ("SELECT U$D FROM VEVENT", "3.0", "U$D"),
            ("SELECT UID FROM VMEETING", "3.12", "VMEETING"),
            ("SELECT UID FROM VEVENT,FOO", "3.12", "FOO"),
            ("SELECT UID FROM", "3.1", "end of the query"),
            ("SELECT UID FROM VEVENT WHERE", "3.1", "condition"),
            ("SELECT UID FROM VEVENT WHERE UID", "3.1", "operator"),
            ("SELECT UID FROM VEVENT WHERE UID =", "3.1", "missing value"),
            (
                "SELECT UID FROM VEVENT WHERE UID = 'x",
                "3.1",
                "unterminated",
            ),
            ("SELECT UID FROM VEVENT WHERE (UID = 'x'", "3.1", "')'"),
            (
                "SELECT UID FROM VEVENT WHERE UID = 'x')",
                "3.1",
                "')' at offset",
            ),
            (
                "SELECT UID FROM VEVENT WHERE UID = 'x' UID = 'y'",
                "3.1",
                "AND, OR",
            ),
            ("SELECT UID FROM VEVENT WHERE UID ! 'x'", "3.1", "'!'"),
            ("SELECT UID FROM VEVENT WHERE * = 'x'", "3.0", "*"),
            (
                "SELECT UID FROM VEVENT WHERE SUMMARY LIKE '%a%'",
                "3.14",
                "LIKE",
            ),
            ("SELECT UID FROM VEVENT ORDER BY DTSTART", "3.14", "ORDER"),
            (
                "SELECT UID FROM VEVENT WHERE DTSTART >= 'tomorrow'",
                "3.1",
                "tomorrow",
            ),
            (
                "SELECT UID FROM VEVENT WHERE SEQUENCE > 'two'",
                "3.1",
                "integer",
            ),
            ("SELECT (UID FROM VEVENT", "3.1", "column list"),
        ];
        for (text, code, needle) in cases {
            let e = err(text);
            assert_eq!(e.code, code, "{text:?}: {e}");
            assert!(e.reason.contains(needle), "{text:?}: {e} lacks {needle:?}");
        }
        assert_eq!(
            err("SELECT UID FROM VEVENT WHERE UID = 'x' UID").to_string(),
            "3.1 expected AND, OR or the end of the query, found \"UID\" at offset 39"
        );
    }

    #[test]
    fn limits() {
        let long = format!(
            "SELECT * FROM VEVENT WHERE SUMMARY = '{}'",
            "a".repeat(MAX_QUERY_OCTETS)
        );
        let e = err(&long);
        assert_eq!(e.code, "3.14");
        assert!(e.reason.contains("8192"), "{e}");

        let conds = |n: usize| {
            let c: Vec<String> = (0..n).map(|i| format!("UID = '{i}'")).collect();
            format!("SELECT * FROM VEVENT WHERE {}", c.join(" OR "))
        };
        q(&conds(MAX_CONDITIONS));
        let e = err(&conds(MAX_CONDITIONS + 1));
        assert_eq!(e.code, "3.14");
        assert!(e.reason.contains("64"), "{e}");

        let nest = |n: usize| {
            format!(
                "SELECT * FROM VEVENT WHERE {}UID = 'x'{}",
                "(".repeat(n),
                ")".repeat(n)
            )
        };
        q(&nest(MAX_NESTING));
        let e = err(&nest(MAX_NESTING + 1));
        assert_eq!(e.code, "3.14");
        assert!(e.reason.contains("nested"), "{e}");
        // Hostile nesting within the size limit neither recurses deeply nor panics.
        assert_eq!(err(&"(".repeat(8000)).code, "3.1");
        assert_eq!(
            err(&format!("SELECT * FROM VEVENT WHERE {}", "(".repeat(8000))).code,
            "3.14"
        );
    }

    #[test]
    fn vquery_component() {
        let vq = from_component(&comp(
            "BEGIN:VQUERY\nQUERYNAME:today\nMAXRESULTS:10\nMAXSIZE:4096\nEXPAND:false\nQUERY:SELECT UID FROM VEVENT WHERE UID = 'abcd12345'\nEND:VQUERY\n",
        ))
        .unwrap();
        assert_eq!(vq.name.as_deref(), Some("today"));
        assert_eq!(vq.max_results, Some(10));
        assert_eq!(vq.max_size, Some(4096));
        assert!(
            from_component(&comp(
                "BEGIN:VQUERY\nEXPAND:TRUE\nQUERY:SELECT UID FROM VEVENT\nEND:VQUERY\n"
            ))
            .is_err_and(|e| e.code == "3.14"),
            "EXPAND:TRUE is refused, so no VQuery ever asks for expansion"
        );
        assert_eq!(vq.query.pushdown().uid.as_deref(), Some("abcd12345"));

        let vq = from_component(&comp(
            "BEGIN:VQUERY\nMAXRESULTSSIZE:100\nQUERY:SELECT UID\\, SUMMARY FROM VEVENT\nEND:VQUERY\n",
        ))
        .unwrap();
        assert_eq!(vq.max_size, Some(100));
        assert_eq!(vq.max_results, None);
        assert_eq!(
            vq.query.columns,
            Columns::Named(vec!["UID".into(), "SUMMARY".into()])
        );

        let cases: [(&str, &str, &str); 7] = [
            ("MAXRESULTS:10\n", "3.11", "no QUERY"),
            ("QUERYNAME:stored\n", "3.14", "stored"),
            ("QUERY:\n", "3.11", "empty"),
            (
                "QUERY:SELECT * FROM VEVENT\nQUERY:SELECT * FROM VTODO\n",
                "3.1",
                "2 QUERY",
            ),
            (
                "EXPAND:TRUE\nQUERY:SELECT * FROM VEVENT\n",
                "3.14",
                "EXPAND",
            ),
            ("EXPAND:maybe\nQUERY:SELECT * FROM VEVENT\n", "3.1", "maybe"),
            (
                "MAXRESULTS:-1\nQUERY:SELECT * FROM VEVENT\n",
                "3.1",
                "MAXRESULTS",
            ),
        ];
        for (body, code, needle) in cases {
            let e =
                from_component(&comp(&format!("BEGIN:VQUERY\n{body}END:VQUERY\n"))).unwrap_err();
            assert_eq!(e.code, code, "{body:?}: {e}");
            assert!(e.reason.contains(needle), "{body:?}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "SELECT * FROM VEVENT",
            "SELECT UID,VALARM.TRIGGER FROM VEVENT,VTODO WHERE UID = 'a''b'",
            "SELECT * FROM VEVENT WHERE (A = '1' OR B = '2') AND C = '3'",
            "SELECT * FROM VEVENT WHERE A = '1' OR B = '2' AND C = '3'",
        ] {
            let query = q(text);
            assert_eq!(q(&query.to_string()), query, "{query}");
        }
        assert_eq!(
            q("select uid from vevent where uid=='x'").to_string(),
            "SELECT UID FROM VEVENT WHERE UID = 'x'"
        );
    }

    // ----------------------------------------------------------- matching --

    const MEETING: &str = "UID:abcd12345\n\
DTSTAMP:20010301T120000Z\n\
DTSTART:19990310T090000Z\n\
DTEND:19990310T100000Z\n\
SUMMARY:Important Meeting\\, really\n\
STATUS:CONFIRMED\n\
SEQUENCE:10\n\
ORGANIZER:mailto:boss@example.com\n\
ATTENDEE;PARTSTAT=ACCEPTED:mailto:Alice@Example.com\n\
ATTENDEE:MAILTO:bob@example.com\n\
CATEGORIES:MEETING,PROJECT X\n\
CATEGORIES:WORK\n\
BEGIN:VALARM\n\
ACTION:DISPLAY\n\
TRIGGER:-PT15M\n\
END:VALARM\n";

    fn m(where_: &str, c: &Component, method: &str) -> bool {
        q(&format!("SELECT * FROM VEVENT WHERE {where_}")).matches(c, method)
    }

    #[test]
    fn matches_time_ranges() {
        let ev = event(MEETING);
        let yes = [
            "DTEND >= '19990310T080000Z' AND DTSTART <= '19990310T190000Z'",
            "DTSTART = '19990310T090000Z'",
            "DTSTART >= '19990310T090000Z'",
            "DTSTART <= '19990310T090000Z'",
            "DTSTART > '19990310'",
            "DTSTART < '19990311'",
            "DTSTART = '19990310T0900Z'",
            "DTSTART = '19990310T040000-0500'",
            "DTSTART = '19990310T090000'",
            "DTEND > '19990310T095959Z'",
            "DTSTAMP > '20010101T000000Z'",
        ];
        for w in yes {
            assert!(m(w, &ev, "CREATE"), "{w}");
        }
        let no = [
            "DTSTART > '19990310T090000Z'",
            "DTEND < '19990310T100000Z'",
            "DTEND >= '19990310T100001Z' AND DTSTART <= '19990310T190000Z'",
            "DTSTART < '19990310'",
            "DUE < '20990101'",
        ];
        for w in no {
            assert!(!m(w, &ev, "CREATE"), "{w}");
        }
        // Missing DTEND: DTSTART + DURATION, DTSTART, or + 1 day for a DATE.
        let dur = event("UID:d\nDTSTART:19990310T090000Z\nDURATION:PT2H\n");
        assert!(m("DTEND = '19990310T110000Z'", &dur, "CREATE"));
        let point = event("UID:p\nDTSTART:19990310T090000Z\n");
        assert!(m("DTEND = '19990310T090000Z'", &point, "CREATE"));
        let day = event("UID:a\nDTSTART;VALUE=DATE:19990310\n");
        assert!(m("DTEND = '19990311'", &day, "CREATE"));
        assert!(m(
            "DTSTART <= '19990310T190000Z' AND DTEND >= '19990310T080000Z'",
            &day,
            "CREATE"
        ));
        // A VTODO's end is its DUE.
        let todo =
            comp("BEGIN:VTODO\nUID:t\nDTSTART:19990310T090000Z\nDUE:19990312T090000Z\nEND:VTODO\n");
        assert!(q("SELECT * FROM VTODO WHERE DTEND = '19990312T090000Z'").matches(&todo, "CREATE"));
        // TZID values are compared as their wall-clock time in UTC (no zone database).
        let zoned = event("UID:z\nDTSTART;TZID=Europe/Berlin:19990310T090000\n");
        assert!(m("DTSTART = '19990310T090000Z'", &zoned, "CREATE"));
        // A broken date-time matches only !=.
        let broken = event("UID:b\nDTSTART:soon\n");
        assert!(!m("DTSTART < '29990101'", &broken, "CREATE"));
        assert!(!m("DTSTART > '19000101'", &broken, "CREATE"));
        assert!(m("DTSTART != '19990310'", &broken, "CREATE"));
    }

    #[test]
    fn matches_text_addresses_and_multi_values() {
        let ev = event(MEETING);
        let yes = [
            "UID = 'abcd12345'",
            "SUMMARY = 'Important Meeting, really'",
            "SUMMARY > 'Important'",
            "STATUS = 'confirmed'",
            "STATUS != 'CANCELLED'",
            "ATTENDEE = 'alice@example.com'",
            "ATTENDEE = 'mailto:ALICE@example.com'",
            "ATTENDEE = 'MAILTO:bob@EXAMPLE.COM'",
            "ORGANIZER = 'boss@example.com'",
            "CATEGORIES = 'PROJECT X'",
            "CATEGORIES = 'WORK'",
            "CATEGORIES != 'HOLIDAY'",
            "SEQUENCE > 9",
            "SEQUENCE = '010'",
            "VALARM.TRIGGER = '-PT15M'",
            "VALARM.TRIGGER < '-PT10M'",
            "VALARM.ACTION = 'display'",
            "VEVENT.UID = 'abcd12345'",
            "(UID = 'nope' OR UID = 'abcd12345') AND STATUS = 'CONFIRMED'",
            // Missing properties: only != is true.
            "LOCATION != 'Building 6'",
            "X-CUSTOM != '1'",
        ];
        for w in yes {
            assert!(m(w, &ev, "CREATE"), "{w}");
        }
        let no = [
            "UID = 'ABCD12345'",
            "UID != 'abcd12345'",
            "SUMMARY = 'important meeting, really'",
            "ATTENDEE = 'carol@example.com'",
            "ATTENDEE != 'alice@example.com'",
            "CATEGORIES = 'MEETING,PROJECT X'",
            "CATEGORIES != 'WORK'",
            "SEQUENCE < 9",
            "LOCATION = 'Building 6'",
            "LOCATION < 'zzz'",
            "X-CUSTOM = '1'",
            "VALARM.TRIGGER = '-PT5M'",
            "VTODO.DUE < '29990101'",
            "UID = 'nope' OR UID = 'other' AND STATUS = 'CONFIRMED'",
        ];
        for w in no {
            assert!(!m(w, &ev, "CREATE"), "{w}");
        }
        // Integer comparison is numeric, not lexicographic.
        assert!(m("PRIORITY < 10", &event("UID:x\nPRIORITY:9\n"), "CREATE"));
        // X- properties: typed when both sides parse.
        let x = event("UID:x\nX-COUNT:9\nX-WHEN:19990310T090000Z\n");
        assert!(m("X-COUNT < 10", &x, "CREATE"));
        assert!(m("X-WHEN > '19990310'", &x, "CREATE"));
    }

    #[test]
    fn matches_method_and_from() {
        let ev = event(MEETING);
        assert!(m("METHOD = 'CREATE'", &ev, "CREATE"));
        assert!(m("METHOD = 'create'", &ev, "CREATE"));
        assert!(!m("METHOD = 'CREATE'", &ev, "REQUEST"));
        assert!(m("METHOD != 'CREATE'", &ev, "REQUEST"));
        assert!(m("METHOD = 'REQUEST'", &ev, "request"));
        assert!(!m("METHOD != 'CREATE'", &ev, "CREATE"));
        // FROM is part of the query.
        assert!(q("SELECT * FROM VEVENT").matches(&ev, "CREATE"));
        assert!(q("SELECT * FROM vtodo,VEVENT").matches(&ev, "CREATE"));
        assert!(!q("SELECT * FROM VTODO").matches(&ev, "CREATE"));
    }

    // ----------------------------------------------------------- pushdown --

    fn utc(s: &str) -> DateTime {
        DateTime::parse(s, None).unwrap()
    }

    #[test]
    fn pushdown_spec_read() {
        let pd = q(
            "SELECT DTSTART,DTEND,SUMMARY,UID FROM VEVENT WHERE DTEND >= '19990310T080000Z' AND DTSTART <= '19990310T190000Z' AND METHOD = 'CREATE'",
        )
        .pushdown();
        assert_eq!(
            pd,
            Pushdown {
                uid: None,
                start: Some(utc("19990310T075959Z")),
                end: Some(utc("19990310T190001Z")),
                entries: MethodFilter::Booked,
            }
        );
    }

    #[test]
    fn pushdown_rules() {
        let pd = |w: &str| q(&format!("SELECT * FROM VEVENT WHERE {w}")).pushdown();
        assert_eq!(pd("UID = 'abc'").uid.as_deref(), Some("abc"));
        assert_eq!(pd("VEVENT.UID = 'abc'").uid.as_deref(), Some("abc"));
        assert_eq!(pd("UID != 'abc'").uid, None);
        assert_eq!(pd("UID = 'a' OR UID = 'b'").uid, None);
        let p = pd("DTEND > '19990310T080000Z' AND DTSTART < '19990310T190000Z'");
        assert_eq!(p.start, Some(utc("19990310T080000Z")));
        assert_eq!(p.end, Some(utc("19990310T190000Z")));
        let p = pd("DTSTART >= '19990310' AND DTEND <= '19990311'");
        assert_eq!(p.start, Some(utc("19990309T235959Z")));
        assert_eq!(p.end, Some(utc("19990311T000001Z")));
        let p = pd("DTSTART = '19990310T090000Z'");
        assert_eq!(p.start, Some(utc("19990310T085959Z")));
        assert_eq!(p.end, Some(utc("19990310T090001Z")));
        // Tightest bounds win.
        let p = pd(
            "DTSTART > '19990301T000000Z' AND DTSTART > '19990305T000000Z' AND DTSTART < '19990320T000000Z' AND DTEND < '19990315T000000Z'",
        );
        assert_eq!(p.start, Some(utc("19990305T000000Z")));
        assert_eq!(p.end, Some(utc("19990315T000000Z")));
        // Under OR and with != nothing is pushed.
        let p = pd("DTSTART > '19990301T000000Z' OR UID = 'x'");
        assert_eq!((p.start, p.end, p.uid), (None, None, None));
        assert_eq!(pd("DTSTART != '19990301T000000Z'").start, None);
        // Time bounds only for VEVENT.
        let p =
            q("SELECT * FROM VTODO WHERE DTSTART > '19990301T000000Z' AND UID = 'u'").pushdown();
        assert_eq!((p.start, p.uid.as_deref()), (None, Some("u")));
        // METHOD.
        assert_eq!(
            q("SELECT * FROM VEVENT").pushdown().entries,
            MethodFilter::Booked
        );
        assert_eq!(pd("UID = 'x'").entries, MethodFilter::Booked);
        assert_eq!(pd("METHOD = 'CREATE'").entries, MethodFilter::Booked);
        assert_eq!(pd("METHOD != 'CREATE'").entries, MethodFilter::Scheduled);
        assert_eq!(pd("METHOD = 'REQUEST'").entries, MethodFilter::Scheduled);
        assert_eq!(pd("METHOD != 'REQUEST'").entries, MethodFilter::Both);
        assert_eq!(
            pd("METHOD = 'CREATE' OR METHOD = 'REQUEST'").entries,
            MethodFilter::Both
        );
        assert_eq!(
            pd("METHOD = 'REQUEST' OR METHOD = 'CANCEL'").entries,
            MethodFilter::Scheduled
        );
        assert_eq!(
            pd("(METHOD = 'REQUEST' AND UID = 'x') OR UID = 'y'").entries,
            MethodFilter::Both
        );
        assert_eq!(
            pd("METHOD != 'REQUEST' AND METHOD != 'CREATE'").entries,
            MethodFilter::Scheduled
        );
        assert!(MethodFilter::Booked.admits("create"));
        assert!(!MethodFilter::Booked.admits("REQUEST"));
        assert!(MethodFilter::Scheduled.admits("REQUEST"));
        assert!(MethodFilter::Both.admits("CANCEL"));
    }

    // ----------------------------------------------------- project & sort --

    #[test]
    fn projection() {
        let ev = event(MEETING);
        assert_eq!(q("SELECT * FROM VEVENT").project(&ev), ev);
        let p = q("SELECT SUMMARY,METHOD,DTSTART,ATTENDEE FROM VEVENT").project(&ev);
        let names: Vec<&str> = p.properties.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["UID", "DTSTART", "SUMMARY", "ATTENDEE", "ATTENDEE"]);
        assert!(p.components.is_empty());
        assert_eq!(p.name, "VEVENT");

        let p = q("SELECT VEVENT.DTSTART,VALARM.TRIGGER FROM VEVENT").project(&ev);
        let names: Vec<&str> = p.properties.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["UID", "DTSTART"]);
        assert_eq!(p.components.len(), 1);
        assert_eq!(p.components[0].name, "VALARM");
        assert_eq!(p.components[0].properties.len(), 1);
        assert_eq!(p.components[0].value("TRIGGER"), Some("-PT15M"));

        let p = q("SELECT VALARM FROM VEVENT").project(&ev);
        assert_eq!(p.components, ev.components);
        let p = q("SELECT METHOD FROM VEVENT").project(&ev);
        assert_eq!(p.properties.len(), 1);
        let r = event("UID:r\nRECURRENCE-ID:19990317T090000Z\nSUMMARY:x\n");
        let p = q("SELECT SUMMARY FROM VEVENT").project(&r);
        assert_eq!(p.properties.len(), 3);
    }

    fn uids(cs: &[Component]) -> Vec<&str> {
        cs.iter().map(|c| c.value("UID").unwrap_or("-")).collect()
    }

    #[test]
    fn sorting() {
        let mut evs = vec![
            event("UID:late\nDTSTART:19990310T120000Z\nSUMMARY:b\nSEQUENCE:10\n"),
            event("UID:none\nSUMMARY:a\n"),
            event("UID:early\nDTSTART:19990310T080000Z\nSUMMARY:c\nSEQUENCE:9\n"),
            event("UID:day\nDTSTART;VALUE=DATE:19990310\nSUMMARY:a\n"),
            event("UID:early2\nDTSTART:19990310T0800Z\n"),
        ];
        q("SELECT * FROM VEVENT").sort(&mut evs);
        assert_eq!(uids(&evs), ["day", "early", "early2", "late", "none"]);
        q("SELECT SUMMARY,DTSTART FROM VEVENT").sort(&mut evs);
        assert_eq!(uids(&evs), ["day", "none", "late", "early", "early2"]);
        q("SELECT METHOD,SEQUENCE FROM VEVENT").sort(&mut evs);
        assert_eq!(uids(&evs), ["early", "late", "day", "none", "early2"]);
        q("SELECT UID FROM VEVENT").sort(&mut evs);
        assert_eq!(uids(&evs), ["day", "early", "early2", "late", "none"]);
        let mut pairs: Vec<(usize, Component)> = evs.iter().cloned().enumerate().rev().collect();
        q("SELECT * FROM VEVENT").sort_by(&mut pairs, |(_, c)| c);
        let order: Vec<usize> = pairs.iter().map(|(i, _)| *i).collect();
        // early and early2 start together: stable, so in the (reversed) input order.
        assert_eq!(order, [0, 2, 1, 3, 4]);

        let alarm = |t: &str| {
            comp(&format!(
                "BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:{t}\nEND:VALARM\n"
            ))
        };
        let mut alarms = vec![
            alarm("-PT5M"),
            alarm("-PT1H"),
            alarm("PT0S"),
            alarm("-PT15M"),
        ];
        q("SELECT * FROM VALARM").sort(&mut alarms);
        let ts: Vec<&str> = alarms.iter().map(|a| a.value("TRIGGER").unwrap()).collect();
        assert_eq!(ts, ["-PT1H", "-PT15M", "-PT5M", "PT0S"]);
    }

    // ----------------------------------------------------------- proptests --

    const VALID: [&str; 6] = [
        "SELECT DTSTART,DTEND,SUMMARY,UID FROM VEVENT WHERE DTEND >= '19990310T080000Z' AND DTSTART <= '19990310T190000Z' AND METHOD = 'CREATE'",
        "SELECT UID FROM VEVENT WHERE UID = 'abcd12345'",
        "SELECT * FROM VEVENT WHERE (A = '1' OR B = \"2\") AND C = 3;",
        "SELECT (VALARM.TRIGGER, UID) FROM VEVENT,VTODO WHERE METHOD != 'CREATE' OR SEQUENCE > 2",
        "SELECT DTSTART,UIDFROM VEVENTWHERE UID == 'x''y' ANDDTSTART >= 19990310",
        "select * from vevent where ((uid <> 'a')) and attendee = 'mailto:a@b.c'",
    ];

    fn exercise(query: &Query) {
        let ev = event(MEETING);
        let _ = query.matches(&ev, "CREATE");
        let _ = query.matches(&ev, "REQUEST");
        let _ = query.pushdown();
        let _ = query.project(&ev);
        let mut v = vec![ev.clone(), event("UID:x\n")];
        query.sort(&mut v);
        assert_eq!(parse(&query.to_string()).as_ref(), Ok(query));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,300}") {
            if let Ok(query) = parse(&s) {
                exercise(&query);
            }
        }

        #[test]
        fn never_panics_on_query_like_text(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just("SELECT "), Just("FROM "), Just("WHERE "), Just(" AND "), Just(" OR "),
                    Just("("), Just(")"), Just(","), Just(";"), Just("*"), Just("'"), Just("\""),
                    Just("''"), Just("="), Just("!="), Just("<>"), Just("<="), Just(">"),
                    Just("UID"), Just("DTSTART"), Just("VEVENT"), Just("VALARM.TRIGGER"),
                    Just("METHOD"), Just("'19990310T080000Z'"), Just("X-Ü"), Just(" "),
                ],
                0..40,
            )
        ) {
            let s: String = parts.concat();
            if let Ok(query) = parse(&s) {
                exercise(&query);
            }
        }

        #[test]
        fn never_panics_on_mutated_valid_queries(
            which in 0..VALID.len(),
            edits in proptest::collection::vec((0usize..400, 0u8..4, any::<char>()), 1..6),
        ) {
            let mut s: Vec<char> = VALID[which].chars().collect();
            for (at, kind, c) in edits {
                let at = at % (s.len() + 1);
                match kind {
                    0 => s.insert(at, c),
                    1 if at < s.len() => { s.remove(at); }
                    2 if at < s.len() => s[at] = c,
                    _ => {
                        let tail: Vec<char> = s[at..].to_vec();
                        s.extend(tail);
                    }
                }
            }
            let s: String = s.into_iter().collect();
            if let Ok(query) = parse(&s) {
                exercise(&query);
            }
            let _ = from_component(&Component {
                name: "VQUERY".into(),
                properties: vec![ContentLine::new("QUERY", &s)],
                components: vec![],
            });
        }
    }

    // Pushdown superset: random events on a half-hour grid, random AND/OR queries.

    const BASE: i64 = 921_024_000; // 1999-03-10T00:00:00Z

    fn at(slot: i64) -> i64 {
        BASE + slot * 1800
    }

    fn ical(secs: i64) -> String {
        DateTime::from_unix_seconds(secs).unwrap().to_ical()
    }

    #[derive(Debug, Clone)]
    enum Shape {
        /// DTSTART + DTEND (slots).
        End(i64),
        /// DTSTART + DURATION (slots).
        Dur(i64),
        /// DTSTART only.
        Point,
        /// All-day: DTSTART;VALUE=DATE (+ optional DTEND in days).
        Day(Option<i64>),
    }

    fn arb_event() -> impl Strategy<Value = (Component, i64, i64, bool)> {
        let shape = prop_oneof![
            (0i64..4).prop_map(Shape::End),
            (0i64..4).prop_map(Shape::Dur),
            Just(Shape::Point),
            proptest::option::of(1i64..3).prop_map(Shape::Day),
        ];
        (0i64..12, shape, 0usize..3).prop_map(|(slot, shape, uid)| {
            let start = at(slot);
            let mut body = format!("UID:u{uid}\n");
            // (S, E, whether the RFC 4791 row is "start <= S" rather than "start < E")
            let (s, e, point) = match shape {
                Shape::End(n) => {
                    body += &format!("DTSTART:{}\nDTEND:{}\n", ical(start), ical(at(slot + n)));
                    (start, at(slot + n), false)
                }
                Shape::Dur(n) => {
                    body += &format!("DTSTART:{}\nDURATION:PT{}M\n", ical(start), n * 30);
                    (start, at(slot + n), n == 0)
                }
                Shape::Point => {
                    body += &format!("DTSTART:{}\n", ical(start));
                    (start, start, true)
                }
                Shape::Day(days) => {
                    let d = start.div_euclid(86_400) * 86_400;
                    let date = |x: i64| ical(x)[..8].to_string();
                    body += &format!("DTSTART;VALUE=DATE:{}\n", date(d));
                    let end = d + 86_400 * days.unwrap_or(1);
                    if days.is_some() {
                        body += &format!("DTEND;VALUE=DATE:{}\n", date(end));
                    }
                    (d, end, false)
                }
            };
            (event(&body), s, e, point)
        })
    }

    fn arb_leaf() -> impl Strategy<Value = Condition> {
        let op = prop_oneof![
            Just(Op::Eq),
            Just(Op::Ne),
            Just(Op::Lt),
            Just(Op::Gt),
            Just(Op::Le),
            Just(Op::Ge)
        ];
        let time = (
            prop_oneof![Just("DTSTART"), Just("DTEND"), Just("VEVENT.DTSTART")],
            op.clone(),
            -2i64..16,
            any::<bool>(),
        )
            .prop_map(|(col, op, slot, date)| {
                let v = ical(at(slot));
                let v = if date { v[..8].to_string() } else { v };
                cmp(col, op, &v)
            });
        let uid = (op.clone(), 0usize..3).prop_map(|(op, u)| cmp("UID", op, &format!("u{u}")));
        let method = (
            op,
            prop_oneof![Just("CREATE"), Just("REQUEST"), Just("create")],
        )
            .prop_map(|(op, v)| cmp("METHOD", op, v));
        prop_oneof![4 => time, 2 => uid, 1 => method]
    }

    fn arb_condition(leaf: BoxedStrategy<Condition>) -> impl Strategy<Value = Condition> {
        leaf.prop_recursive(3, 6, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| and(a, b)),
                (inner.clone(), inner).prop_map(|(a, b)| or(a, b)),
            ]
        })
    }

    fn arb_method_leaf() -> BoxedStrategy<Condition> {
        (
            prop_oneof![Just(Op::Eq), Just(Op::Ne), Just(Op::Lt), Just(Op::Ge)],
            prop_oneof![Just("CREATE"), Just("REQUEST"), Just("CANCEL")],
        )
            .prop_map(|(op, v)| cmp("METHOD", op, v))
            .boxed()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn pushdown_is_a_superset(
            cond in arb_condition(arb_leaf().boxed()),
            events in proptest::collection::vec(arb_event(), 1..16),
        ) {
            let query = Query {
                columns: Columns::All,
                from: vec!["VEVENT".into()],
                condition: Some(cond),
            };
            // Through the text form, so the parser is exercised as well.
            let query = parse(&query.to_string()).unwrap();
            let pd = query.pushdown();
            let start = pd.start.as_ref().and_then(DateTime::unix_seconds);
            let end = pd.end.as_ref().and_then(DateTime::unix_seconds);
            prop_assert_eq!(pd.start.is_some(), start.is_some());
            prop_assert_eq!(pd.end.is_some(), end.is_some());
            for (ev, s, e, point) in &events {
                if !query.matches(ev, "CREATE") {
                    continue;
                }
                if let Some(uid) = &pd.uid {
                    prop_assert_eq!(ev.value("UID"), Some(uid.as_str()));
                }
                // RFC 4791 §9.9 overlap.
                if let Some(start) = start {
                    let ok = if *point { start <= *s } else { start < *e };
                    prop_assert!(ok, "start {} excludes {:?} ({} {}) for {}", start, ev, s, e, query);
                }
                if let Some(end) = end {
                    prop_assert!(end > *s, "end {} excludes {:?} for {}", end, ev, query);
                }
            }
        }

        #[test]
        fn method_filter_is_a_superset(cond in arb_condition(arb_method_leaf())) {
            let query = Query {
                columns: Columns::All,
                from: vec!["VEVENT".into()],
                condition: Some(cond),
            };
            let entries = query.pushdown().entries;
            let ev = event("UID:x\n");
            for method in ["CREATE", "REQUEST", "CANCEL", "REPLY"] {
                if query.matches(&ev, method) {
                    prop_assert!(entries.admits(method), "{:?} refuses {} for {}", entries, method, query);
                }
            }
        }

        #[test]
        fn display_parse_round_trip(cond in arb_condition(arb_leaf().boxed())) {
            let query = Query {
                columns: Columns::Named(vec!["UID".into(), "VALARM.TRIGGER".into()]),
                from: vec!["VEVENT".into(), "VTODO".into()],
                condition: Some(cond),
            };
            prop_assert_eq!(parse(&query.to_string()), Ok(query));
        }
    }
}
