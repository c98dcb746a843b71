//! Cron expressions read in an IANA time zone, and the pure decision of which ticks a schedule fires
//! after a pause in the scheduler (catch-up). Parsing and tick arithmetic are the `croner` crate's;
//! zones are `chrono-tz`'s.
//!
//! **Syntax.** 5 fields (`minute hour day-of-month month day-of-week`), or 6 with *seconds first*
//! (`second minute hour day-of-month month day-of-week`). Ranges, lists, steps (`*/15`, `10-40/5`),
//! names (`MON`, `JAN`), `L` (last day / last weekday), `W` (nearest weekday), `#` (nth weekday)
//! and the nicknames `@yearly @monthly @weekly @daily @hourly` are accepted. Day-of-week 0 and 7
//! are Sunday; a restricted day-of-month *or* a restricted day-of-week matches (Vixie cron).
//! No year field. An expression that can never fire (`0 0 31 2 *`) is rejected.
//!
//! **Daylight saving time** (croner's rules, which are Vixie cron's):
//! - A *fixed-time* expression (one value each for second, minute and hour, e.g. `30 2 * * *`)
//!   whose wall-clock time does not exist that day (spring forward) fires **once, at the first
//!   valid instant after the gap** (03:00 local when 02:00–03:00 is skipped). When its time occurs
//!   twice (fall back) it fires **once**, at the first occurrence.
//! - An *interval* expression (a wildcard, step, range or list in second, minute or hour, e.g.
//!   `*/15 * * * *` or `0 * * * *`) keeps its real-time cadence: ticks inside a spring-forward gap
//!   do not exist and are not made up, and in a repeated fall-back hour each matching instant fires
//!   (02:15 CEST and 02:15 CET are two instants a real hour apart). So an hourly schedule still runs
//!   every real hour. Consequence: `0,30 2 * * *` (a list, so an interval) does not fire on the
//!   spring-forward day; write two fixed-time schedules if that matters.
//!
//! **Catch-up** ([`CronSchedule::plan_due`]): a tick at most [`MISFIRE_GRACE`] old is *late*, not
//! missed, and fires its own job whatever the policy, so a slow poll or a restart loses nothing.
//! Older ticks were *missed* (the scheduler was down): [`CatchUp::Skip`] drops them;
//! [`CatchUp::RunOnce`] fires exactly one job for all of them, for the latest missed tick.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};
use serde::{Deserialize, Serialize};

use crate::names::InvalidValue;

/// How old a due tick may be and still fire as a normal (late) tick rather than count as missed.
pub const MISFIRE_GRACE: TimeDelta = TimeDelta::seconds(60);

/// A parsed cron expression in a time zone.
#[derive(Clone, Debug)]
pub struct CronSchedule {
    cron: Cron,
    tz: Tz,
    expression: String,
}

fn invalid(field: &'static str, reason: impl Into<String>) -> InvalidValue {
    InvalidValue { field, reason: reason.into() }
}

impl CronSchedule {
    /// Parses `expression` (5 fields, or 6 with seconds first) read in the IANA zone `timezone`
    /// (e.g. `UTC`, `Europe/Berlin`; case-sensitive). Errors name the field: `cron_expression` or
    /// `timezone`.
    pub fn parse(expression: &str, timezone: &str) -> Result<Self, InvalidValue> {
        let expression = expression.trim();
        if expression.is_empty() {
            return Err(invalid("cron_expression", "must not be empty"));
        }
        if expression.len() > 200 {
            return Err(invalid("cron_expression", "must be at most 200 characters"));
        }
        let fields = expression.split_whitespace().count();
        if !expression.starts_with('@') && fields != 5 && fields != 6 {
            return Err(invalid(
                "cron_expression",
                format!(
                    "expected 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, \
                     got {fields}"
                ),
            ));
        }
        let tz: Tz = timezone.trim().parse().map_err(|_| {
            invalid(
                "timezone",
                format!("unknown time zone {timezone:?}; use an IANA name such as UTC or Europe/Berlin"),
            )
        })?;
        let cron =
            CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build().parse(expression).map_err(
                |e| invalid("cron_expression", format!("{expression:?} is not a valid cron expression: {e}")),
            )?;
        let schedule = Self { cron, tz, expression: expression.to_owned() };
        // Without a year field an expression that fires at all fires within any 28-year window.
        let reference = Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).single().unwrap_or(DateTime::UNIX_EPOCH);
        if schedule.next_after(reference).is_none() {
            return Err(invalid("cron_expression", format!("{expression:?} never fires (no such date)")));
        }
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The canonical IANA name of the zone.
    pub fn timezone(&self) -> &'static str {
        self.tz.name()
    }

    /// The first tick strictly after `t`; `None` when there is none.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut from = t.with_timezone(&self.tz);
        // croner works in whole seconds; make sure a sub-second `t` never yields a tick <= t.
        for _ in 0..3 {
            let next = self.cron.find_next_occurrence(&from, false).ok()?;
            if next.with_timezone(&Utc) > t {
                return Some(next.with_timezone(&Utc));
            }
            from = next;
        }
        None
    }

    /// The last tick at or before `t`; `None` when there is none.
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let at = t.with_timezone(&self.tz);
        let mut prev = self.cron.find_previous_occurrence(&at, true).ok()?;
        for _ in 0..3 {
            if prev.with_timezone(&Utc) <= t {
                return Some(prev.with_timezone(&Utc));
            }
            prev = self.cron.find_previous_occurrence(&prev, false).ok()?;
        }
        None
    }

    /// Up to `limit` ticks `t` with `after < t <= until`, ascending.
    pub fn ticks_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, limit: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::new();
        let mut cursor = after;
        while out.len() < limit {
            match self.next_after(cursor) {
                Some(t) if t <= until => {
                    out.push(t);
                    cursor = t;
                }
                _ => break,
            }
        }
        out
    }

    /// Which ticks to fire for a schedule whose stored next tick is `next_run_at`, at `now`, with
    /// room for at most `budget` jobs. See the module docs for the catch-up rules.
    pub fn plan_due(
        &self,
        catch_up: CatchUp,
        next_run_at: DateTime<Utc>,
        now: DateTime<Utc>,
        budget: usize,
    ) -> DuePlan {
        if next_run_at > now || budget == 0 {
            return DuePlan { fire: Vec::new(), missed: None, next_run_at: Some(next_run_at) };
        }
        let cutoff = now - MISFIRE_GRACE;
        let mut fire = Vec::new();
        let mut missed = None;
        // Ticks are whole seconds: one microsecond before `next_run_at` includes it.
        let mut after = next_run_at - TimeDelta::microseconds(1);
        if next_run_at <= cutoff {
            let last = self.latest_at_or_before(cutoff).filter(|t| *t >= next_run_at).unwrap_or(next_run_at);
            missed = Some(Missed { first: next_run_at, last });
            if catch_up == CatchUp::RunOnce {
                fire.push(last);
            }
            after = last;
        }
        let room = budget - fire.len();
        let late = self.ticks_between(after, now, room);
        let cut = late.len() == room;
        fire.extend(late);
        let next_run_at = match fire.last() {
            // Out of room: resume right after the last tick handled, which may still be due.
            Some(last) if cut => self.next_after(*last),
            _ => self.next_after(now),
        };
        DuePlan { fire, missed, next_run_at }
    }
}

/// What a due schedule does now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DuePlan {
    /// Ticks to enqueue, ascending, one job each.
    pub fire: Vec<DateTime<Utc>>,
    /// The missed ticks (older than [`MISFIRE_GRACE`]), when there were any.
    pub missed: Option<Missed>,
    /// The schedule's new next tick (strictly after `now` unless the budget ran out).
    pub next_run_at: Option<DateTime<Utc>>,
}

/// The span of missed ticks: from the stored next tick to the latest missed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Missed {
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// What a schedule does with ticks missed while no scheduler ran.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Drop missed ticks; carry on with the next one.
    #[default]
    Skip,
    /// Fire one job for all missed ticks (for the latest of them).
    RunOnce,
}

impl CatchUp {
    pub fn as_str(self) -> &'static str {
        match self {
            CatchUp::Skip => "skip",
            CatchUp::RunOnce => "run_once",
        }
    }
}

impl fmt::Display for CatchUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CatchUp {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(CatchUp::Skip),
            "run_once" => Ok(CatchUp::RunOnce),
            other => Err(invalid("catch_up", format!("{other:?} is not one of skip, run_once"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("rfc3339").with_timezone(&Utc)
    }

    fn ticks(c: &CronSchedule, after: &str, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = utc(after);
        for _ in 0..n {
            t = c.next_after(t).expect("tick");
            out.push(t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        }
        out
    }

    #[test]
    fn five_fields_are_minutes() {
        let c = CronSchedule::parse("*/15 9-17 * * MON-FRI", "UTC").unwrap();
        // 2026-11-20 is a Friday.
        assert_eq!(ticks(&c, "2026-11-20T17:40:00Z", 2), ["2026-11-20T17:45:00Z", "2026-11-23T09:00:00Z"]);
        assert_eq!(
            CronSchedule::parse("@daily", "UTC").unwrap().next_after(utc("2026-01-01T00:00:00Z")),
            Some(utc("2026-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let c = CronSchedule::parse("*/20 * * * * *", "UTC").unwrap();
        assert_eq!(
            ticks(&c, "2026-01-01T00:00:00Z", 3),
            ["2026-01-01T00:00:20Z", "2026-01-01T00:00:40Z", "2026-01-01T00:01:00Z"]
        );
        let c = CronSchedule::parse("5 0 * * * *", "UTC").unwrap();
        assert_eq!(ticks(&c, "2026-01-01T00:00:00Z", 2), ["2026-01-01T00:00:05Z", "2026-01-01T01:00:05Z"]);
    }

    #[test]
    fn next_is_strictly_after_even_within_a_second() {
        let c = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let t = utc("2026-01-01T12:00:00.5Z");
        assert_eq!(c.next_after(t), Some(utc("2026-01-01T12:00:01Z")));
        assert_eq!(c.next_after(utc("2026-01-01T12:00:00Z")), Some(utc("2026-01-01T12:00:01Z")));
        assert_eq!(c.latest_at_or_before(t), Some(utc("2026-01-01T12:00:00Z")));
        let c = CronSchedule::parse("0 * * * *", "UTC").unwrap();
        assert_eq!(c.latest_at_or_before(utc("2026-01-01T12:00:00Z")), Some(utc("2026-01-01T12:00:00Z")));
        assert_eq!(c.latest_at_or_before(utc("2026-01-01T12:59:59Z")), Some(utc("2026-01-01T12:00:00Z")));
        let between = c.ticks_between(utc("2026-01-01T12:00:00Z"), utc("2026-01-01T15:00:00Z"), 10);
        assert_eq!(between, [utc("2026-01-01T13:00:00Z"), utc("2026-01-01T14:00:00Z"), utc("2026-01-01T15:00:00Z")]);
        assert_eq!(c.ticks_between(utc("2026-01-01T12:00:00Z"), utc("2026-01-01T15:00:00Z"), 2).len(), 2);
    }

    #[test]
    fn bad_expressions_and_zones_are_rejected_with_the_field() {
        for (expr, needle) in [
            ("", "must not be empty"),
            ("* * * *", "got 4"),
            ("0 0 0 1 1 * 2030", "got 7"),
            ("61 * * * *", "not a valid cron expression"),
            ("*/0 * * * *", "not a valid cron expression"),
            ("a b c d e", "not a valid cron expression"),
            ("0 0 31 2 *", "never fires"),
        ] {
            let e = CronSchedule::parse(expr, "UTC").unwrap_err();
            assert_eq!(e.field, "cron_expression", "{expr}");
            assert!(e.reason.contains(needle), "{expr}: {}", e.reason);
        }
        for tz in ["Europe/Nowhere", "utc", "", "+01:00"] {
            let e = CronSchedule::parse("* * * * *", tz).unwrap_err();
            assert_eq!(e.field, "timezone");
            assert!(e.reason.contains("unknown time zone"), "{}", e.reason);
        }
        assert_eq!(CronSchedule::parse("* * * * *", "Europe/Berlin").unwrap().timezone(), "Europe/Berlin");
    }

    #[test]
    fn berlin_spring_forward_and_fall_back() {
        // 2026-03-29 02:00 CET -> 03:00 CEST; 2026-10-25 03:00 CEST -> 02:00 CET.
        let fixed = CronSchedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        // 02:30 does not exist: once at 03:00 CEST (01:00 UTC), then 02:30 CEST again.
        assert_eq!(ticks(&fixed, "2026-03-28T12:00:00Z", 2), ["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"]);
        // 02:30 happens twice: once, at the first (CEST, 00:30 UTC).
        assert_eq!(ticks(&fixed, "2026-10-24T12:00:00Z", 2), ["2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"]);
        // Interval expressions keep their real-time cadence.
        let hourly = CronSchedule::parse("0 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&hourly, "2026-03-28T23:30:00Z", 3),
            ["2026-03-29T00:00:00Z", "2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"]
        );
        let half = CronSchedule::parse("*/30 * * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            ticks(&half, "2026-10-24T23:45:00Z", 4),
            ["2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z", "2026-10-25T01:30:00Z"]
        );
    }

    #[test]
    fn new_york_spring_forward_and_fall_back() {
        // 2026-03-08 02:00 EST -> 03:00 EDT; 2026-11-01 02:00 EDT -> 01:00 EST.
        let fixed = CronSchedule::parse("0 30 2 * * *", "America/New_York").unwrap();
        assert_eq!(ticks(&fixed, "2026-03-07T12:00:00Z", 2), ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"]);
        let fixed = CronSchedule::parse("30 1 * * *", "America/New_York").unwrap();
        assert_eq!(ticks(&fixed, "2026-10-31T12:00:00Z", 2), ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]);
        let every_minute = CronSchedule::parse("* * * * *", "America/New_York").unwrap();
        // No tick is lost or doubled across either transition: 60 a real hour.
        for start in ["2026-03-08T06:30:00Z", "2026-11-01T05:30:00Z"] {
            let t = utc(start);
            assert_eq!(every_minute.ticks_between(t, t + TimeDelta::hours(1), 100).len(), 60, "{start}");
        }
    }

    #[test]
    fn plan_fires_late_ticks_and_applies_catch_up_to_missed_ones() {
        let c = CronSchedule::parse("* * * * * *", "UTC").unwrap();
        let now = utc("2026-01-01T12:00:00.3Z");
        // On time and a bit late: every tick fires.
        let p = c.plan_due(CatchUp::Skip, utc("2026-01-01T11:59:58Z"), now, 100);
        assert_eq!(p.fire, [utc("2026-01-01T11:59:58Z"), utc("2026-01-01T11:59:59Z"), utc("2026-01-01T12:00:00Z")]);
        assert_eq!((p.missed, p.next_run_at), (None, Some(utc("2026-01-01T12:00:01Z"))));
        // Not due yet: nothing changes.
        let p = c.plan_due(CatchUp::Skip, utc("2026-01-01T12:00:01Z"), now, 100);
        assert_eq!((p.fire.len(), p.next_run_at), (0, Some(utc("2026-01-01T12:00:01Z"))));
        // Down for an hour: skip drops the missed ticks, the last minute fires.
        let p = c.plan_due(CatchUp::Skip, utc("2026-01-01T11:00:00Z"), now, 100);
        assert_eq!(p.fire.len(), 60);
        assert_eq!(p.fire[0], utc("2026-01-01T11:59:01Z"));
        let missed = p.missed.unwrap();
        assert_eq!((missed.first, missed.last), (utc("2026-01-01T11:00:00Z"), utc("2026-01-01T11:59:00Z")));
        // run_once adds one job for the latest missed tick.
        let p = c.plan_due(CatchUp::RunOnce, utc("2026-01-01T11:00:00Z"), now, 100);
        assert_eq!((p.fire.len(), p.fire[0]), (61, utc("2026-01-01T11:59:00Z")));
        // Out of room: resume after the last tick handled.
        let p = c.plan_due(CatchUp::Skip, utc("2026-01-01T11:59:50Z"), now, 4);
        assert_eq!((p.fire.len(), p.next_run_at), (4, Some(utc("2026-01-01T11:59:54Z"))));

        let daily = CronSchedule::parse("0 3 * * *", "UTC").unwrap();
        let now = utc("2026-01-05T10:00:00Z");
        let p = daily.plan_due(CatchUp::Skip, utc("2026-01-02T03:00:00Z"), now, 10);
        assert!(p.fire.is_empty());
        assert_eq!(p.missed.unwrap().last, utc("2026-01-05T03:00:00Z"));
        assert_eq!(p.next_run_at, Some(utc("2026-01-06T03:00:00Z")));
        let p = daily.plan_due(CatchUp::RunOnce, utc("2026-01-02T03:00:00Z"), now, 10);
        assert_eq!(p.fire, [utc("2026-01-05T03:00:00Z")]);
        assert_eq!(p.next_run_at, Some(utc("2026-01-06T03:00:00Z")));
    }

    #[test]
    fn catch_up_names_round_trip() {
        for c in [CatchUp::Skip, CatchUp::RunOnce] {
            assert_eq!(c.as_str().parse::<CatchUp>().unwrap(), c);
        }
        assert_eq!("never".parse::<CatchUp>().unwrap_err().field, "catch_up");
    }
}
