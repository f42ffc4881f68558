//! DATE, DATE-TIME and DURATION values.
//!
//! Implements RFC 5545 §3.3.4 (DATE), §3.3.5 (DATE-TIME: local/floating,
//! UTC with `Z`, local with a `TZID` parameter) and §3.3.6 (DURATION), plus
//! the legacy date-time forms accepted by the gateway spec
//! (`shared/spec/cap-cstp.md` §7.3 #12, the examples of
//! draft-ietf-calsch-cip-00 §2.2 and §3.0, and vCalendar 1.0 §2.1.4):
//! `YYYYMMDDTHHMM[SS]` followed by `Z`, `±HHMM`, `±HH:MM` or nothing,
//! surrounded by optional whitespace. A numeric offset is converted to UTC.
//!
//! Calendar arithmetic uses the days-from-civil algorithm (proleptic
//! Gregorian calendar, H. Hinnant), so there is no dependency on a date crate
//! and no time-zone database: values with a `TZID` are handled as wall-clock
//! times (DST transitions are not applied).

use std::cmp::Ordering;

use nom::{
    IResult, Parser,
    branch::alt,
    bytes::complete::take_while_m_n,
    character::complete::{char, one_of},
    combinator::{all_consuming, opt},
};
use thiserror::Error;

use crate::ical::contentline::{ContentLine, shorten};

/// Why a DATE, DATE-TIME or DURATION value was rejected.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DateTimeError {
    /// The text does not have the form of the expected value type.
    #[error("{value:?} is not a valid {expected}")]
    Syntax {
        /// The value (shortened).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The form is right but a field is out of range.
    #[error("{value:?} is out of range: {reason}")]
    Range {
        /// The value (shortened).
        value: String,
        /// Which field is wrong.
        reason: &'static str,
    },
}

/// The time zone of a [`DateTime`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Zone {
    /// UTC (`Z` suffix).
    Utc,
    /// Floating local time (no suffix, no TZID).
    Floating,
    /// Local time in the zone named by a `TZID` parameter.
    Tzid(String),
}

/// A calendar date (RFC 5545 §3.3.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    /// Year, 0–9999.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
}

/// A date with a time of day (RFC 5545 §3.3.5).
///
/// Ordering ([`PartialOrd`]) is defined only between values of the same zone
/// (both UTC, both floating, or the same TZID); otherwise it is `None`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DateTime {
    /// Year, 0–9999.
    pub year: u16,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–60 (60 is a leap second).
    pub second: u8,
    /// UTC, floating or TZID.
    pub zone: Zone,
}

/// A DATE or DATE-TIME value, as found in DTSTART, DTEND, DUE, EXDATE, …
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DateOrDateTime {
    /// A DATE (`VALUE=DATE`).
    Date(Date),
    /// A DATE-TIME.
    DateTime(DateTime),
}

/// A DURATION (RFC 5545 §3.3.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Duration {
    /// `-` sign.
    pub negative: bool,
    /// `nW` (only on its own in the RFC 5545 grammar).
    pub weeks: u32,
    /// `nD`.
    pub days: u32,
    /// `nH`.
    pub hours: u32,
    /// `nM`.
    pub minutes: u32,
    /// `nS`.
    pub seconds: u32,
}

const SECS_PER_DAY: i64 = 86_400;

/// Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's
/// `days_from_civil`). Callers keep `year` within ±10^9 (here: a `u16`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400); // [0, 399]
    let m = i64::from(month);
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`]: `(year, month, day)`. Callers keep
/// `days` within ±10^12 (here: checked in `Date::from_days_since_epoch`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let d = doy - (153 * mp + 2) / 5 + 1; // [1, 31]
    let m = if mp < 10 { mp + 3 } else { mp - 9 }; // [1, 12]
    let y = yoe + era * 400 + i64::from(m <= 2);
    // The ranges above make these conversions lossless.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days in `month` of `year` (0 for an invalid month).
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

// ---------------------------------------------------------------- parsers --

type Res<'a, O> = IResult<&'a str, O>;

/// `(year, month, day)`.
type Ymd = (u32, u32, u32);
/// `(hour, minute, second)`.
type Hms = (u32, u32, u32);

/// Exactly `n` ASCII digits as a number (`n` ≤ 9).
fn digits<'a>(n: usize) -> impl Parser<&'a str, Output = u32, Error = nom::error::Error<&'a str>> {
    take_while_m_n(n, n, |c: char| c.is_ascii_digit()).map_res(|s: &str| s.parse::<u32>())
}

/// 1 to 9 ASCII digits as a number.
fn number(input: &str) -> Res<'_, u32> {
    take_while_m_n(1, 9, |c: char| c.is_ascii_digit())
        .map_res(|s: &str| s.parse::<u32>())
        .parse(input)
}

/// ```abnf
/// date-value    = date-fullyear date-month date-mday   ; RFC 5545 §3.3.4
/// date-fullyear = 4DIGIT
/// date-month    = 2DIGIT        ;01-12
/// date-mday     = 2DIGIT        ;01-28, 01-29, 01-30, 01-31
/// ```
fn date_value(input: &str) -> Res<'_, Ymd> {
    (digits(4), digits(2), digits(2)).parse(input)
}

/// ```abnf
/// date-time   = date "T" time                          ; RFC 5545 §3.3.5
/// time        = time-hour time-minute time-second [time-utc]
/// time-hour   = 2DIGIT        ;00-23
/// time-minute = 2DIGIT        ;00-59
/// time-second = 2DIGIT        ;00-60
/// time-utc    = "Z"
/// ```
fn strict_date_time(input: &str) -> Res<'_, (Ymd, Hms, bool)> {
    (
        date_value,
        char('T'),
        digits(2),
        digits(2),
        digits(2),
        opt(char('Z')),
    )
        .map(|(d, _, h, m, s, z)| (d, (h, m, s), z.is_some()))
        .parse(input)
}

/// Zone suffix of a legacy date-time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Suffix {
    None,
    Utc,
    /// Offset east of UTC in seconds.
    Offset(i64),
}

/// ```abnf
/// legacy-zone = "Z" / ("+" / "-") 2DIGIT [":"] 2DIGIT   ; cap-cstp.md §7.3 #12
/// ```
fn legacy_zone(input: &str) -> Res<'_, Suffix> {
    alt((
        one_of("Zz").map(|_| Suffix::Utc),
        (one_of("+-"), digits(2), opt(char(':')), digits(2)).map_opt(|(sign, h, _, m)| {
            let secs = i64::from(h) * 3600 + i64::from(m) * 60;
            (h < 24 && m < 60).then_some(Suffix::Offset(if sign == '-' { -secs } else { secs }))
        }),
    ))
    .parse(input)
}

/// ```abnf
/// legacy-date-time = date-value ("T" / "t") time-hour time-minute [time-second]
///                    [legacy-zone]                     ; cap-cstp.md §7.3 #12
/// ```
fn legacy_date_time(input: &str) -> Res<'_, (Ymd, Hms, Suffix)> {
    (
        date_value,
        one_of("Tt"),
        digits(2),
        digits(2),
        opt(digits(2)),
        opt(legacy_zone),
    )
        .map(|(d, _, h, m, s, z)| (d, (h, m, s.unwrap_or(0)), z.unwrap_or(Suffix::None)))
        .parse(input)
}

fn check_fields(value: &str, (y, mo, d): Ymd, (h, mi, s): Hms) -> Result<(), DateTimeError> {
    let reason = if !(1..=12).contains(&mo) {
        "month must be 01-12"
    } else if d < 1 || d > days_in_month(i64::from(y), mo) {
        "no such day in that month"
    } else if h > 23 {
        "hour must be 00-23"
    } else if mi > 59 {
        "minute must be 00-59"
    } else if s > 60 {
        "second must be 00-60"
    } else {
        return Ok(());
    };
    Err(DateTimeError::Range {
        value: shorten(value),
        reason,
    })
}

fn syntax(value: &str, expected: &'static str) -> DateTimeError {
    DateTimeError::Syntax {
        value: shorten(value),
        expected,
    }
}

/// Narrow checked fields; the ranges were validated by `check_fields`.
fn narrow(v: u32) -> u8 {
    u8::try_from(v).unwrap_or(u8::MAX)
}

fn narrow_year(v: u32) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

// ------------------------------------------------------------------- Date --

impl Date {
    /// A validated date.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Date, DateTimeError> {
        let d = Date { year, month, day };
        if d.is_valid() {
            Ok(d)
        } else {
            Err(DateTimeError::Range {
                value: d.to_ical(),
                reason: "no such date",
            })
        }
    }

    /// Parse `YYYYMMDD` (RFC 5545 §3.3.4); surrounding whitespace is trimmed.
    pub fn parse(value: &str) -> Result<Date, DateTimeError> {
        let v = value.trim();
        let (_, (y, m, d)) = all_consuming(date_value)
            .parse(v)
            .map_err(|_| syntax(value, "DATE (YYYYMMDD)"))?;
        check_fields(value, (y, m, d), (0, 0, 0))?;
        Ok(Date {
            year: narrow_year(y),
            month: narrow(m),
            day: narrow(d),
        })
    }

    /// Whether month and day exist.
    pub fn is_valid(&self) -> bool {
        self.year <= 9999
            && (1..=12).contains(&self.month)
            && self.day >= 1
            && u32::from(self.day) <= days_in_month(i64::from(self.year), u32::from(self.month))
    }

    /// `YYYYMMDD`.
    pub fn to_ical(&self) -> String {
        format!("{:04}{:02}{:02}", self.year, self.month, self.day)
    }

    /// Days since 1970-01-01.
    pub fn days_since_epoch(&self) -> i64 {
        days_from_civil(
            i64::from(self.year),
            u32::from(self.month),
            u32::from(self.day),
        )
    }

    /// The date `days` after 1970-01-01, if its year is 0–9999.
    pub fn from_days_since_epoch(days: i64) -> Option<Date> {
        // 0000-01-01 is day -719 528 and 9999-12-31 is day 2 932 896.
        if !(-719_528..=2_932_896).contains(&days) {
            return None;
        }
        let (y, m, d) = civil_from_days(days);
        Some(Date {
            year: u16::try_from(y).ok().filter(|y| *y <= 9999)?,
            month: u8::try_from(m).ok()?,
            day: u8::try_from(d).ok()?,
        })
    }

    /// Add a duration made of whole days (weeks and days, or a time part that
    /// sums to whole days); `None` otherwise or on overflow.
    pub fn checked_add(&self, d: &Duration) -> Option<Date> {
        let secs = d.total_seconds();
        if secs % SECS_PER_DAY != 0 {
            return None;
        }
        Date::from_days_since_epoch(self.days_since_epoch().checked_add(secs / SECS_PER_DAY)?)
    }

    /// Midnight at the start of this date in `zone`.
    pub fn at_midnight(&self, zone: Zone) -> DateTime {
        DateTime {
            year: self.year,
            month: self.month,
            day: self.day,
            hour: 0,
            minute: 0,
            second: 0,
            zone,
        }
    }
}

// --------------------------------------------------------------- DateTime --

impl DateTime {
    /// A validated date-time.
    pub fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
        zone: Zone,
    ) -> Result<DateTime, DateTimeError> {
        let dt = DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
            zone,
        };
        if dt.is_valid() {
            Ok(dt)
        } else {
            Err(DateTimeError::Range {
                value: dt.to_ical(),
                reason: "no such date or time",
            })
        }
    }

    /// Parse an RFC 5545 DATE-TIME exactly (`YYYYMMDDTHHMMSS[Z]`, no
    /// whitespace). Without `Z`, `tzid` (the TZID parameter) gives the zone,
    /// else the value is floating. With `Z` the TZID is ignored.
    pub fn parse_strict(value: &str, tzid: Option<&str>) -> Result<DateTime, DateTimeError> {
        let (_, (d, t, utc)) = all_consuming(strict_date_time)
            .parse(value)
            .map_err(|_| syntax(value, "DATE-TIME (YYYYMMDDTHHMMSS[Z])"))?;
        check_fields(value, d, t)?;
        let zone = if utc { Zone::Utc } else { zone_for(tzid) };
        Ok(Self::from_fields(d, t, zone))
    }

    /// Parse a DATE-TIME tolerantly: everything [`DateTime::parse_strict`]
    /// accepts, plus the legacy forms of cap-cstp.md §7.3 #12:
    /// `YYYYMMDDTHHMM[SS]` followed by `Z`, `±HHMM`, `±HH:MM` or nothing,
    /// with surrounding whitespace trimmed (and `t`/`z` in lower case).
    ///
    /// A numeric offset is converted to UTC (`19961231T2000-0500` is
    /// `19970101T010000Z`); a leap second 60 then rolls into the next minute.
    pub fn parse(value: &str, tzid: Option<&str>) -> Result<DateTime, DateTimeError> {
        let v = value.trim();
        let (_, (d, t, suffix)) = all_consuming(legacy_date_time).parse(v).map_err(|_| {
            syntax(
                value,
                "date-time (YYYYMMDDTHHMM[SS] with Z, ±HHMM, ±HH:MM or nothing)",
            )
        })?;
        check_fields(value, d, t)?;
        match suffix {
            Suffix::None => Ok(Self::from_fields(d, t, zone_for(tzid))),
            Suffix::Utc => Ok(Self::from_fields(d, t, Zone::Utc)),
            Suffix::Offset(off) => {
                if off.abs() >= SECS_PER_DAY {
                    return Err(DateTimeError::Range {
                        value: shorten(value),
                        reason: "UTC offset must be less than 24 hours",
                    });
                }
                let local = Self::from_fields(d, t, Zone::Utc).wall_seconds();
                DateTime::from_unix_seconds(local - off).ok_or(DateTimeError::Range {
                    value: shorten(value),
                    reason: "year leaves 0000-9999 after conversion to UTC",
                })
            }
        }
    }

    fn from_fields((y, mo, d): Ymd, (h, mi, s): Hms, zone: Zone) -> Self {
        DateTime {
            year: narrow_year(y),
            month: narrow(mo),
            day: narrow(d),
            hour: narrow(h),
            minute: narrow(mi),
            second: narrow(s),
            zone,
        }
    }

    /// Whether every field is in range.
    pub fn is_valid(&self) -> bool {
        self.date().is_valid() && self.hour < 24 && self.minute < 60 && self.second <= 60
    }

    /// The date part.
    pub fn date(&self) -> Date {
        Date {
            year: self.year,
            month: self.month,
            day: self.day,
        }
    }

    /// `YYYYMMDDTHHMMSS`, with `Z` for UTC. The TZID (if any) is not part of
    /// the value; see [`DateTime::to_content_line`].
    pub fn to_ical(&self) -> String {
        format!(
            "{:04}{:02}{:02}T{:02}{:02}{:02}{}",
            self.year,
            self.month,
            self.day,
            self.hour,
            self.minute,
            self.second,
            if self.zone == Zone::Utc { "Z" } else { "" }
        )
    }

    /// A property line `name[;TZID=…]:value`.
    pub fn to_content_line(&self, name: &str) -> ContentLine {
        let line = ContentLine::new(name, &self.to_ical());
        match &self.zone {
            Zone::Tzid(t) => line.with_param("TZID", t),
            _ => line,
        }
    }

    /// Seconds since 1970-01-01T00:00:00 of the wall-clock fields, whatever
    /// the zone (for UTC values this is the Unix time).
    pub fn wall_seconds(&self) -> i64 {
        self.date().days_since_epoch() * SECS_PER_DAY
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second)
    }

    /// Unix time of a UTC value; `None` for floating and TZID values.
    pub fn unix_seconds(&self) -> Option<i64> {
        (self.zone == Zone::Utc).then(|| self.wall_seconds())
    }

    /// The UTC date-time of a Unix time; `None` outside years 0000–9999.
    pub fn from_unix_seconds(secs: i64) -> Option<DateTime> {
        Self::from_wall_seconds(secs, Zone::Utc)
    }

    /// The date-time whose [`DateTime::wall_seconds`] is `secs`, in `zone`.
    pub fn from_wall_seconds(secs: i64, zone: Zone) -> Option<DateTime> {
        let days = secs.div_euclid(SECS_PER_DAY);
        let rem = secs.rem_euclid(SECS_PER_DAY);
        let date = Date::from_days_since_epoch(days)?;
        Some(DateTime {
            year: date.year,
            month: date.month,
            day: date.day,
            hour: u8::try_from(rem / 3600).ok()?,
            minute: u8::try_from(rem % 3600 / 60).ok()?,
            second: u8::try_from(rem % 60).ok()?,
            zone,
        })
    }

    /// The current time, in UTC, truncated to the second.
    pub fn now_utc() -> DateTime {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(0))
            .unwrap_or(0);
        DateTime::from_unix_seconds(secs).unwrap_or(DateTime {
            year: 1970,
            month: 1,
            day: 1,
            hour: 0,
            minute: 0,
            second: 0,
            zone: Zone::Utc,
        })
    }

    /// Add a duration to the wall clock (exact for UTC and floating values;
    /// for TZID values DST transitions are ignored). `None` when the result
    /// leaves years 0000–9999.
    pub fn checked_add(&self, d: &Duration) -> Option<DateTime> {
        let secs = self.wall_seconds().checked_add(d.total_seconds())?;
        DateTime::from_wall_seconds(secs, self.zone.clone())
    }
}

fn zone_for(tzid: Option<&str>) -> Zone {
    match tzid.map(str::trim) {
        Some(t) if !t.is_empty() => Zone::Tzid(t.to_string()),
        _ => Zone::Floating,
    }
}

impl PartialOrd for DateTime {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        if self.zone != other.zone {
            return None;
        }
        Some(
            (
                self.year,
                self.month,
                self.day,
                self.hour,
                self.minute,
                self.second,
            )
                .cmp(&(
                    other.year,
                    other.month,
                    other.day,
                    other.hour,
                    other.minute,
                    other.second,
                )),
        )
    }
}

impl std::ops::Add<Duration> for DateTime {
    /// `None` when the result leaves years 0000–9999.
    type Output = Option<DateTime>;

    fn add(self, rhs: Duration) -> Option<DateTime> {
        self.checked_add(&rhs)
    }
}

impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_ical())
    }
}

// --------------------------------------------------------- DateOrDateTime --

impl DateOrDateTime {
    /// Tolerant parse: an 8-digit DATE, else [`DateTime::parse`].
    pub fn parse(value: &str, tzid: Option<&str>) -> Result<DateOrDateTime, DateTimeError> {
        let v = value.trim();
        if v.len() == 8 && v.bytes().all(|b| b.is_ascii_digit()) {
            return Date::parse(v).map(DateOrDateTime::Date);
        }
        DateTime::parse(value, tzid).map(DateOrDateTime::DateTime)
    }

    /// RFC 5545 parse: `YYYYMMDD` or [`DateTime::parse_strict`].
    pub fn parse_strict(value: &str, tzid: Option<&str>) -> Result<DateOrDateTime, DateTimeError> {
        if value.len() == 8 && value.bytes().all(|b| b.is_ascii_digit()) {
            return Date::parse(value).map(DateOrDateTime::Date);
        }
        DateTime::parse_strict(value, tzid).map(DateOrDateTime::DateTime)
    }

    /// Parse the value of a property line, using its TZID parameter.
    pub fn from_line(line: &ContentLine) -> Result<DateOrDateTime, DateTimeError> {
        DateOrDateTime::parse(&line.value, line.param("TZID"))
    }

    /// Whether this is a DATE.
    pub fn is_date(&self) -> bool {
        matches!(self, DateOrDateTime::Date(_))
    }

    /// The value text (`YYYYMMDD` or `YYYYMMDDTHHMMSS[Z]`).
    pub fn to_ical(&self) -> String {
        match self {
            DateOrDateTime::Date(d) => d.to_ical(),
            DateOrDateTime::DateTime(dt) => dt.to_ical(),
        }
    }

    /// Seconds since 1970-01-01T00:00:00 of the wall-clock fields, whatever the zone (see
    /// [`DateTime::wall_seconds`]); a DATE counts from its midnight.
    pub fn wall_seconds(&self) -> i64 {
        match self {
            DateOrDateTime::Date(d) => d.days_since_epoch() * SECS_PER_DAY,
            DateOrDateTime::DateTime(dt) => dt.wall_seconds(),
        }
    }

    /// The date-time, or midnight (floating) of the date.
    pub fn to_date_time(&self) -> DateTime {
        match self {
            DateOrDateTime::Date(d) => d.at_midnight(Zone::Floating),
            DateOrDateTime::DateTime(dt) => dt.clone(),
        }
    }
}

// --------------------------------------------------------------- Duration --

/// ```abnf
/// dur-week   = 1*DIGIT "W"
/// ```
fn dur_week(input: &str) -> Res<'_, Duration> {
    (number, one_of("Ww"))
        .map(|(w, _)| Duration {
            weeks: w,
            ..Duration::default()
        })
        .parse(input)
}

/// ```abnf
/// dur-time   = "T" (dur-hour / dur-minute / dur-second)
/// dur-hour   = 1*DIGIT "H" [dur-minute]
/// dur-minute = 1*DIGIT "M" [dur-second]
/// dur-second = 1*DIGIT "S"
/// ```
/// Tolerance: any non-empty subsequence of H, M, S in that order
/// (`PT1H30S` is accepted).
fn dur_time(input: &str) -> Res<'_, Hms> {
    let (rest, _) = one_of("Tt").parse(input)?;
    let (rest, h) = opt((number, one_of("Hh"))).parse(rest)?;
    let (rest, m) = opt((number, one_of("Mm"))).parse(rest)?;
    let (rest, s) = opt((number, one_of("Ss"))).parse(rest)?;
    if h.is_none() && m.is_none() && s.is_none() {
        return Err(nom::Err::Error(nom::error::Error::new(
            input,
            nom::error::ErrorKind::Verify,
        )));
    }
    Ok((
        rest,
        (
            h.map_or(0, |x| x.0),
            m.map_or(0, |x| x.0),
            s.map_or(0, |x| x.0),
        ),
    ))
}

/// ```abnf
/// dur-date   = dur-day [dur-time]
/// dur-day    = 1*DIGIT "D"
/// ```
fn dur_date(input: &str) -> Res<'_, Duration> {
    (number, one_of("Dd"), opt(dur_time))
        .map(|(d, _, t)| {
            let (hours, minutes, seconds) = t.unwrap_or((0, 0, 0));
            Duration {
                days: d,
                hours,
                minutes,
                seconds,
                ..Duration::default()
            }
        })
        .parse(input)
}

/// ```abnf
/// dur-value  = (["+"] / "-") "P" (dur-date / dur-time / dur-week)  ; RFC 5545 §3.3.6
/// ```
fn dur_value(input: &str) -> Res<'_, Duration> {
    (
        opt(one_of("+-")),
        one_of("Pp"),
        alt((
            dur_week,
            dur_date,
            dur_time.map(|(hours, minutes, seconds)| Duration {
                hours,
                minutes,
                seconds,
                ..Duration::default()
            }),
        )),
    )
        .map(|(sign, _, d)| Duration {
            negative: sign == Some('-'),
            ..d
        })
        .parse(input)
}

impl Duration {
    /// Parse an RFC 5545 DURATION (`P1D`, `PT1H30M`, `-PT15M`, `P2W`);
    /// surrounding whitespace is trimmed, letters may be lower case.
    pub fn parse(value: &str) -> Result<Duration, DateTimeError> {
        all_consuming(dur_value)
            .parse(value.trim())
            .map(|(_, d)| d)
            .map_err(|_| syntax(value, "DURATION (e.g. P1D, PT1H30M, -PT15M, P2W)"))
    }

    /// A duration of `secs` seconds, as days, hours, minutes and seconds.
    pub fn from_seconds(secs: i64) -> Duration {
        let abs = secs.unsigned_abs();
        let part = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Duration {
            negative: secs < 0,
            weeks: 0,
            days: part(abs / 86_400),
            hours: part(abs % 86_400 / 3600),
            minutes: part(abs % 3600 / 60),
            seconds: part(abs % 60),
        }
    }

    /// Signed length in seconds (a day is 86 400 s, a week 7 days).
    pub fn total_seconds(&self) -> i64 {
        let abs = i64::from(self.weeks) * 7 * SECS_PER_DAY
            + i64::from(self.days) * SECS_PER_DAY
            + i64::from(self.hours) * 3600
            + i64::from(self.minutes) * 60
            + i64::from(self.seconds);
        if self.negative { -abs } else { abs }
    }

    /// RFC 5545 text: `P2W` for whole weeks only, otherwise days and a time
    /// part (`P1DT2H`, `PT15M`); zero is `PT0S`.
    pub fn to_ical(&self) -> String {
        let mut out = String::new();
        if self.negative && self.total_seconds() != 0 {
            out.push('-');
        }
        out.push('P');
        let time_zero = self.hours == 0 && self.minutes == 0 && self.seconds == 0;
        if self.weeks > 0 && self.days == 0 && time_zero {
            out.push_str(&format!("{}W", self.weeks));
            return out;
        }
        let days = u64::from(self.weeks) * 7 + u64::from(self.days);
        if days > 0 {
            out.push_str(&format!("{days}D"));
        }
        if !time_zero || days == 0 {
            out.push('T');
            if self.hours > 0 {
                out.push_str(&format!("{}H", self.hours));
            }
            if self.minutes > 0 {
                out.push_str(&format!("{}M", self.minutes));
            }
            if self.seconds > 0 || time_zero {
                out.push_str(&format!("{}S", self.seconds));
            }
        }
        out
    }
}

impl std::fmt::Display for Duration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_ical())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn utc(s: &str) -> DateTime {
        DateTime::parse_strict(s, None).unwrap()
    }

    #[test]
    fn date_or_date_time_wall_seconds() {
        let w = |v: &str, tzid| DateOrDateTime::parse(v, tzid).unwrap().wall_seconds();
        assert_eq!(w("19700102", None), SECS_PER_DAY);
        assert_eq!(w("19691231", None), -SECS_PER_DAY);
        assert_eq!(w("19700102T000001Z", None), SECS_PER_DAY + 1);
        assert_eq!(
            w("19700102T000001", Some("Europe/Berlin")),
            SECS_PER_DAY + 1
        );
        assert_eq!(w("20240101", None), w("20240101T000000", None));
    }

    #[test]
    fn strict_forms() {
        let dt = DateTime::parse_strict("19970714T133000Z", None).unwrap();
        assert_eq!(
            dt,
            DateTime::new(1997, 7, 14, 13, 30, 0, Zone::Utc).unwrap()
        );
        assert_eq!(dt.to_ical(), "19970714T133000Z");
        let f = DateTime::parse_strict("19980118T230000", None).unwrap();
        assert_eq!(f.zone, Zone::Floating);
        assert_eq!(f.to_ical(), "19980118T230000");
        let t = DateTime::parse_strict("19980119T020000", Some("America/New_York")).unwrap();
        assert_eq!(t.zone, Zone::Tzid("America/New_York".into()));
        assert_eq!(
            t.to_content_line("DTSTART").to_line(),
            "DTSTART;TZID=America/New_York:19980119T020000"
        );
        // Z wins over TZID.
        assert_eq!(
            DateTime::parse_strict("19980119T070000Z", Some("X"))
                .unwrap()
                .zone,
            Zone::Utc
        );
        for bad in [
            "19961231T2000-0500",
            "19961231T2000",
            " 19961231T200000Z",
            "19961231t200000Z",
            "19961231T200000z",
            "1996-12-31T20:00:00Z",
            "19961231",
            "",
        ] {
            assert!(DateTime::parse_strict(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn legacy_forms_table() {
        let cases = [
            // cip-00 §2.2: New year's eve in New York.
            ("19961231T2000-0500", "19970101T010000Z"),
            ("19970101T0600-0500", "19970101T110000Z"),
            // cip-00 §3.0 (two spaces after the colon are left after the
            // name/value split).
            ("  19961126T1630-0500", "19961126T213000Z"),
            ("19961126T1530-0500", "19961126T203000Z"),
            ("19961126T153000-05:00", "19961126T203000Z"),
            ("19961126T1530+0100", "19961126T143000Z"),
            ("19961126T1530+01:30", "19961126T140000Z"),
            ("19961126T1530Z", "19961126T153000Z"),
            ("19961126t1530z", "19961126T153000Z"),
            ("19961126T1530", "19961126T153000"),
            ("19961126T153045", "19961126T153045"),
            ("19961126T153045Z \t", "19961126T153045Z"),
            // Month and year rollover backwards.
            ("19970101T0030+0100", "19961231T233000Z"),
            ("19970301T0000+0100", "19970228T230000Z"),
            // Leap years.
            ("19960228T2300-0200", "19960229T010000Z"),
            ("19970228T2300-0200", "19970301T010000Z"),
            ("20000228T2300-0200", "20000229T010000Z"),
            ("21000228T2300-0200", "21000301T010000Z"),
            ("20000301T0100+0200", "20000229T230000Z"),
            ("20240229T120000Z", "20240229T120000Z"),
            ("99991231T2300-0059", "99991231T235900Z"),
        ];
        for (input, want) in cases {
            let dt = DateTime::parse(input, None).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(dt.to_ical(), want, "{input}");
            assert!(dt.is_valid());
        }
    }

    #[test]
    fn invalid_dates_rejected() {
        for bad in [
            "19970229T120000Z",
            "19000229T120000Z",
            "19961301T120000Z",
            "19960001T120000Z",
            "19960100T120000Z",
            "19960431T120000Z",
            "19960101T240000Z",
            "19960101T236000Z",
            "19960101T235961Z",
            "19960101T1200+2400",
            "19960101T1200+0060",
            "19960101T1200-0500x",
            "19960101T12",
            "19960101T120-0500",
            "99991231T2300-0100",
            "00000101T0000+0100",
            "abc",
            "",
        ] {
            assert!(DateTime::parse(bad, None).is_err(), "{bad}");
        }
        let e = DateTime::parse("19970229T120000Z", None).unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"19970229T120000Z\" is out of range: no such day in that month"
        );
        assert!(Date::new(2023, 2, 29).is_err());
        assert!(Date::new(2024, 2, 29).is_ok());
        assert!(DateTime::new(2024, 1, 1, 23, 59, 60, Zone::Utc).is_ok());
        assert!(DateTime::new(2024, 1, 1, 24, 0, 0, Zone::Utc).is_err());
    }

    #[test]
    fn leap_second_rolls_over_on_offset_conversion() {
        let dt = DateTime::parse("19981231T185960-0500", None).unwrap();
        assert_eq!(dt.to_ical(), "19990101T000000Z");
        // Without conversion it is kept.
        assert_eq!(
            DateTime::parse("19981231T235960Z", None).unwrap().second,
            60
        );
    }

    #[test]
    fn date_values() {
        let d = DateOrDateTime::parse("19961231", None).unwrap();
        assert!(d.is_date());
        assert_eq!(d.to_ical(), "19961231");
        assert!(DateOrDateTime::parse("19961232", None).is_err());
        assert!(DateOrDateTime::parse_strict(" 19961231", None).is_err());
        assert_eq!(
            DateOrDateTime::parse_strict("19961231T200000Z", None)
                .unwrap()
                .to_ical(),
            "19961231T200000Z"
        );
        let line = ContentLine::parse("DTSTART;TZID=Europe/Paris:20240101T100000").unwrap();
        assert_eq!(
            DateOrDateTime::from_line(&line).unwrap(),
            DateOrDateTime::DateTime(
                DateTime::new(2024, 1, 1, 10, 0, 0, Zone::Tzid("Europe/Paris".into())).unwrap()
            )
        );
        let day = Date::parse("20240228").unwrap();
        assert_eq!(
            day.checked_add(&Duration::parse("P1D").unwrap())
                .unwrap()
                .to_ical(),
            "20240229"
        );
        assert_eq!(
            day.checked_add(&Duration::parse("P2D").unwrap())
                .unwrap()
                .to_ical(),
            "20240301"
        );
        assert_eq!(day.checked_add(&Duration::parse("PT1H").unwrap()), None);
        assert_eq!(d.to_date_time().to_ical(), "19961231T000000");
    }

    #[test]
    fn unix_seconds_and_ordering() {
        assert_eq!(utc("19700101T000000Z").unix_seconds(), Some(0));
        assert_eq!(utc("20000101T000000Z").unix_seconds(), Some(946_684_800));
        assert_eq!(utc("19691231T235959Z").unix_seconds(), Some(-1));
        assert_eq!(
            DateTime::parse_strict("20000101T000000", None)
                .unwrap()
                .unix_seconds(),
            None
        );
        assert_eq!(
            DateTime::from_unix_seconds(951_782_400).unwrap().to_ical(),
            "20000229T000000Z"
        );
        assert_eq!(DateTime::from_unix_seconds(i64::MAX), None);
        assert_eq!(DateTime::from_unix_seconds(i64::MIN), None);
        assert_eq!(Date::from_days_since_epoch(i64::MAX), None);
        assert_eq!(
            Date::from_days_since_epoch(2_932_896).unwrap().to_ical(),
            "99991231"
        );
        assert_eq!(
            Date::from_days_since_epoch(-719_528).unwrap().to_ical(),
            "00000101"
        );
        assert_eq!(Date::from_days_since_epoch(2_932_897), None);
        assert_eq!(DateTime::from_unix_seconds(-62_167_219_201), None); // 0000-01-01 minus 1 s
        assert!(DateTime::from_unix_seconds(-62_167_219_200).is_some());
        let a = utc("19961231T200000Z");
        let b = utc("19970101T010000Z");
        assert!(a < b);
        assert!(b > a);
        let floating = DateTime::parse_strict("19961231T200000", None).unwrap();
        assert_eq!(a.partial_cmp(&floating), None);
        assert!(DateTime::now_utc().year >= 2024);
    }

    #[test]
    fn durations() {
        let cases = [
            ("P1D", 86_400, "P1D"),
            ("PT1H30M", 5_400, "PT1H30M"),
            ("-PT15M", -900, "-PT15M"),
            ("+PT15M", 900, "PT15M"),
            ("P2W", 1_209_600, "P2W"),
            ("P15DT5H0M20S", 1_314_020, "P15DT5H20S"),
            ("PT0S", 0, "PT0S"),
            ("PT1H30S", 3_630, "PT1H30S"),
            ("p1dt1h", 90_000, "P1DT1H"),
            (" P7W ", 4_233_600, "P7W"),
        ];
        for (input, secs, out) in cases {
            let d = Duration::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(d.total_seconds(), secs, "{input}");
            assert_eq!(d.to_ical(), out, "{input}");
        }
        for bad in [
            "",
            "P",
            "PT",
            "P1",
            "1D",
            "P1DT",
            "P1W2D",
            "PT1M1H",
            "P-1D",
            "P1234567890D",
            "P1D ",
        ] {
            if bad == "P1D " {
                continue; // trimmed: valid
            }
            assert!(Duration::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Duration::from_seconds(-90_061).to_ical(), "-P1DT1H1M1S");
        assert_eq!(
            Duration {
                weeks: 1,
                days: 1,
                ..Duration::default()
            }
            .to_ical(),
            "P8D"
        );
    }

    #[test]
    fn add_durations() {
        let dt = utc("19961231T230000Z");
        let later = (dt.clone() + Duration::parse("PT2H").unwrap()).unwrap();
        assert_eq!(later.to_ical(), "19970101T010000Z");
        let earlier = dt.checked_add(&Duration::parse("-P365D").unwrap()).unwrap();
        assert_eq!(earlier.to_ical(), "19960101T230000Z"); // 1996 has 366 days
        let f = DateTime::parse_strict("20240228T120000", None).unwrap();
        let g = f.checked_add(&Duration::parse("P1DT12H").unwrap()).unwrap();
        assert_eq!(g.to_ical(), "20240301T000000");
        assert_eq!(g.zone, Zone::Floating);
        let end = utc("99991231T235959Z");
        assert_eq!(end + Duration::parse("PT1S").unwrap(), None);
    }

    proptest! {
        #[test]
        fn civil_round_trip(days in -800_000i64..3_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert!((1..=12).contains(&m));
            prop_assert!(d >= 1 && d <= days_in_month(y, m));
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }

        #[test]
        fn offset_conversion_matches_arithmetic(
            secs in -62_000_000_000i64..253_000_000_000,
            off_h in 0u32..24, off_m in 0u32..60, neg: bool,
        ) {
            let local = DateTime::from_unix_seconds(secs).unwrap();
            let text = format!(
                "{}{}{:02}{:02}",
                local.to_ical().trim_end_matches('Z'),
                if neg { '-' } else { '+' },
                off_h,
                off_m
            );
            let off = i64::from(off_h * 3600 + off_m * 60) * if neg { -1 } else { 1 };
            match DateTime::parse(&text, None) {
                Ok(dt) => prop_assert_eq!(dt.unix_seconds(), Some(secs - off)),
                Err(_) => prop_assert!(DateTime::from_unix_seconds(secs - off).is_none()),
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}", tz in proptest::option::of("\\PC{0,10}")) {
            let _ = DateOrDateTime::parse(&s, tz.as_deref());
            let _ = DateOrDateTime::parse_strict(&s, tz.as_deref());
            let _ = Duration::parse(&s);
        }

        #[test]
        fn duration_round_trip(secs in -10_000_000_000i64..10_000_000_000) {
            let d = Duration::from_seconds(secs);
            let again = Duration::parse(&d.to_ical()).unwrap();
            prop_assert_eq!(again.total_seconds(), secs);
        }
    }
}
