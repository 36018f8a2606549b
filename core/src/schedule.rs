//! Credential rotation schedules as pure recurrence rules: daily, weekly or monthly at a
//! time of day, or a 5-field cron expression (parsed and evaluated by `croner`). Every
//! time is UTC. [`Recurrence::next_after`] gives the next run strictly after a moment;
//! [`Recurrence::due`] says whether a run is due, with catch-up-once semantics: after a
//! downtime that missed several ticks a schedule runs once, and its next run is then
//! computed from the moment it ran, not replayed tick by tick.
//!
//! The background task that runs due rotations is in [`runner`].

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use time::{Date, Duration, OffsetDateTime, Time, UtcOffset};

/// Why a recurrence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// A time of day is not `HH:MM` (00:00 to 23:59).
    #[error("invalid time of day '{given}': expected HH:MM in UTC, 00:00 to 23:59")]
    TimeOfDay {
        /// The text given (truncated).
        given: String,
    },
    /// A weekday name is not one of mon..sun.
    #[error("invalid day of the week '{given}': expected mon, tue, wed, thu, fri, sat or sun")]
    Weekday {
        /// The text given (truncated).
        given: String,
    },
    /// A day of the month outside 1..=28.
    #[error(
        "invalid day of the month {day}: use 1 to 28 (days 29 to 31 do not exist in every month; \
         for the last day of each month use a cron expression such as '0 3 L * *')"
    )]
    MonthDay {
        /// The day given.
        day: u32,
    },
    /// A cron expression does not have exactly five fields.
    #[error(
        "invalid cron expression '{expression}': expected 5 fields 'minute hour day-of-month \
         month day-of-week', got {fields}"
    )]
    CronFields {
        /// The expression given (truncated).
        expression: String,
        /// How many fields it has.
        fields: usize,
    },
    /// The cron parser refused the expression.
    #[error("invalid cron expression '{expression}': {reason}")]
    Cron {
        /// The expression given (truncated).
        expression: String,
        /// The parser's reason.
        reason: String,
    },
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A time of day in UTC, minute precision; written `HH:MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay {
    hour: u8,
    minute: u8,
}

impl TimeOfDay {
    /// `hour`:`minute`, when both are in range.
    pub fn new(hour: u8, minute: u8) -> Option<TimeOfDay> {
        (hour < 24 && minute < 60).then_some(TimeOfDay { hour, minute })
    }

    fn time(self) -> Time {
        Time::from_hms(self.hour, self.minute, 0).unwrap_or(Time::MIDNIGHT)
    }
}

impl FromStr for TimeOfDay {
    type Err = ScheduleError;

    /// Parses `HH:MM` (the hour may have one digit; the minute has two).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ScheduleError::TimeOfDay { given: truncate(s) };
        let (h, m) = s.trim().split_once(':').ok_or_else(err)?;
        let digits = |p: &str, n: std::ops::RangeInclusive<usize>| {
            n.contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())
        };
        if !digits(h, 1..=2) || !digits(m, 2..=2) {
            return Err(err());
        }
        let (hour, minute) = (h.parse().map_err(|_| err())?, m.parse().map_err(|_| err())?);
        TimeOfDay::new(hour, minute).ok_or_else(err)
    }
}

impl fmt::Display for TimeOfDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.hour, self.minute)
    }
}

/// A day of the week; written `mon` .. `sun` (full English names are accepted too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Weekday {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

const WEEKDAYS: [(Weekday, &str, &str); 7] = [
    (Weekday::Mon, "mon", "monday"),
    (Weekday::Tue, "tue", "tuesday"),
    (Weekday::Wed, "wed", "wednesday"),
    (Weekday::Thu, "thu", "thursday"),
    (Weekday::Fri, "fri", "friday"),
    (Weekday::Sat, "sat", "saturday"),
    (Weekday::Sun, "sun", "sunday"),
];

impl Weekday {
    /// Days since Monday (Monday 0 .. Sunday 6).
    fn days_from_monday(self) -> u8 {
        WEEKDAYS.iter().position(|(d, ..)| *d == self).unwrap_or(0) as u8
    }

    /// The short name, e.g. `mon`.
    pub fn as_str(self) -> &'static str {
        WEEKDAYS[self.days_from_monday() as usize].1
    }
}

impl FromStr for Weekday {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        WEEKDAYS
            .iter()
            .find(|(_, short, long)| lower == *short || lower == *long)
            .map(|(d, ..)| *d)
            .ok_or_else(|| ScheduleError::Weekday { given: truncate(s) })
    }
}

/// How a recurrence is written (in the admin API's JSON and in the durable store):
/// `{"type":"daily","at":"03:00"}`, `{"type":"weekly","day":"mon","at":"03:00"}`,
/// `{"type":"monthly","day":1,"at":"03:00"}` or
/// `{"type":"cron","expression":"0 3 * * 1-5"}`; times in UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RecurrenceSpec {
    /// Every day at `at` (HH:MM, UTC).
    Daily {
        /// Time of day, HH:MM UTC.
        at: String,
    },
    /// Every week on `day` at `at`.
    Weekly {
        /// Day of the week.
        day: Weekday,
        /// Time of day, HH:MM UTC.
        at: String,
    },
    /// Every month on `day` (1 to 28) at `at`.
    Monthly {
        /// Day of the month, 1 to 28.
        day: u32,
        /// Time of day, HH:MM UTC.
        at: String,
    },
    /// A 5-field cron expression (minute hour day-of-month month day-of-week), UTC.
    Cron {
        /// E.g. `0 3 * * 1-5` or `*/30 8-18 * * mon-fri`.
        expression: String,
    },
}

/// A validated recurrence rule (see [`RecurrenceSpec`] for how it is written; it
/// serializes as one and deserializing validates).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RecurrenceSpec", into = "RecurrenceSpec")]
pub enum Recurrence {
    /// Every day at a time.
    Daily {
        /// Time of day (UTC).
        at: TimeOfDay,
    },
    /// Every week on a day at a time.
    Weekly {
        /// Day of the week.
        day: Weekday,
        /// Time of day (UTC).
        at: TimeOfDay,
    },
    /// Every month on a day (1..=28) at a time.
    Monthly {
        /// Day of the month, 1..=28.
        day: u8,
        /// Time of day (UTC).
        at: TimeOfDay,
    },
    /// A 5-field cron expression.
    Cron {
        /// The expression as given (trimmed).
        expression: String,
        /// The parsed expression.
        cron: Box<croner::Cron>,
    },
}

/// Longest day of the month a monthly schedule may name (every month has it).
pub const MAX_MONTH_DAY: u32 = 28;

impl Recurrence {
    /// Every day at `at` (`HH:MM`).
    pub fn daily(at: &str) -> Result<Recurrence, ScheduleError> {
        Ok(Recurrence::Daily { at: at.parse()? })
    }

    /// Every week on `day` (`mon`..`sun`) at `at`.
    pub fn weekly(day: &str, at: &str) -> Result<Recurrence, ScheduleError> {
        Ok(Recurrence::Weekly {
            day: day.parse()?,
            at: at.parse()?,
        })
    }

    /// Every month on `day` (1..=28) at `at`; days 29 to 31 are refused (they do not
    /// exist in every month).
    pub fn monthly(day: u32, at: &str) -> Result<Recurrence, ScheduleError> {
        if !(1..=MAX_MONTH_DAY).contains(&day) {
            return Err(ScheduleError::MonthDay { day });
        }
        Ok(Recurrence::Monthly {
            day: day as u8,
            at: at.parse()?,
        })
    }

    /// A 5-field cron expression (`minute hour day-of-month month day-of-week`, with
    /// lists, ranges, steps, month and day names, and `L`), UTC. Refused when it does
    /// not have five fields, when `croner` refuses it (its reason is given), or when it
    /// never matches (e.g. February 30th).
    pub fn cron(expression: &str) -> Result<Recurrence, ScheduleError> {
        let expression = expression.trim();
        let fields = expression.split_whitespace().count();
        if fields != 5 {
            return Err(ScheduleError::CronFields {
                expression: truncate(expression),
                fields,
            });
        }
        let refused = |reason: String| ScheduleError::Cron {
            expression: truncate(expression),
            reason,
        };
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Disallowed)
            .year(croner::parser::Year::Disallowed)
            .build()
            .parse(expression)
            .map_err(|e| refused(e.to_string()))?;
        // An expression that never matches (e.g. `0 0 30 2 *`) is refused now rather
        // than found out by the scheduler.
        let start = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH;
        cron.find_next_occurrence(&start, false)
            .map_err(|e| refused(format!("it never matches ({e})")))?;
        Ok(Recurrence::Cron {
            expression: expression.to_string(),
            cron: Box::new(cron),
        })
    }

    /// The first run strictly after `t` (UTC, whole minutes).
    ///
    /// A cron expression is checked to match at creation; should `croner` still find
    /// no occurrence (beyond its search limit), this answers a day after `t` so that a
    /// scheduler can never spin on it.
    pub fn next_after(&self, t: OffsetDateTime) -> OffsetDateTime {
        let t = t.to_offset(UtcOffset::UTC);
        let at_on = |date: Date, at: TimeOfDay| OffsetDateTime::new_utc(date, at.time());
        match self {
            Recurrence::Daily { at } => {
                let today = at_on(t.date(), *at);
                if today > t {
                    today
                } else {
                    today + Duration::days(1)
                }
            }
            Recurrence::Weekly { day, at } => {
                let from = t.weekday().number_days_from_monday();
                let ahead = (i64::from(day.days_from_monday()) - i64::from(from)).rem_euclid(7);
                let candidate = at_on(t.date(), *at) + Duration::days(ahead);
                if candidate > t {
                    candidate
                } else {
                    candidate + Duration::days(7)
                }
            }
            Recurrence::Monthly { day, at } => {
                let in_month = |year: i32, month: time::Month| {
                    Date::from_calendar_date(year, month, *day)
                        .map(|d| at_on(d, *at))
                        .ok()
                };
                let (year, month) = (t.year(), t.month());
                match in_month(year, month) {
                    Some(c) if c > t => c,
                    _ => {
                        let next_year = if month == time::Month::December {
                            year + 1
                        } else {
                            year
                        };
                        in_month(next_year, month.next()).unwrap_or(t + Duration::days(1))
                    }
                }
            }
            Recurrence::Cron { cron, .. } => {
                let fallback = t + Duration::days(1);
                let Some(start) = chrono::DateTime::<chrono::Utc>::from_timestamp(
                    t.unix_timestamp(),
                    t.nanosecond(),
                ) else {
                    return fallback;
                };
                cron.find_next_occurrence(&start, false)
                    .ok()
                    .and_then(|next| OffsetDateTime::from_unix_timestamp(next.timestamp()).ok())
                    .unwrap_or(fallback)
            }
        }
    }

    /// Whether a run is due at `now`, the schedule having last run (or been assigned)
    /// at `last`: its first tick after `last` has come. However many ticks passed
    /// since (downtime), the answer is one run; the caller then computes the next run
    /// from the moment it ran ([`Recurrence::next_after`] of that moment), so missed
    /// ticks are not replayed.
    pub fn due(&self, last: OffsetDateTime, now: OffsetDateTime) -> bool {
        self.next_after(last) <= now
    }

    /// How it is written.
    pub fn spec(&self) -> RecurrenceSpec {
        RecurrenceSpec::from(self.clone())
    }
}

impl fmt::Display for Recurrence {
    /// A sentence such as `every day at 03:00 UTC`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recurrence::Daily { at } => write!(f, "every day at {at} UTC"),
            Recurrence::Weekly { day, at } => {
                write!(
                    f,
                    "every {} at {at} UTC",
                    WEEKDAYS[day.days_from_monday() as usize].2
                )
            }
            Recurrence::Monthly { day, at } => {
                write!(f, "every month on day {day} at {at} UTC")
            }
            Recurrence::Cron { expression, .. } => write!(f, "cron '{expression}' (UTC)"),
        }
    }
}

impl TryFrom<RecurrenceSpec> for Recurrence {
    type Error = ScheduleError;

    fn try_from(spec: RecurrenceSpec) -> Result<Self, Self::Error> {
        match spec {
            RecurrenceSpec::Daily { at } => Recurrence::daily(&at),
            RecurrenceSpec::Weekly { day, at } => Ok(Recurrence::Weekly {
                day,
                at: at.parse()?,
            }),
            RecurrenceSpec::Monthly { day, at } => Recurrence::monthly(day, &at),
            RecurrenceSpec::Cron { expression } => Recurrence::cron(&expression),
        }
    }
}

impl From<Recurrence> for RecurrenceSpec {
    fn from(r: Recurrence) -> Self {
        match r {
            Recurrence::Daily { at } => RecurrenceSpec::Daily { at: at.to_string() },
            Recurrence::Weekly { day, at } => RecurrenceSpec::Weekly {
                day,
                at: at.to_string(),
            },
            Recurrence::Monthly { day, at } => RecurrenceSpec::Monthly {
                day: u32::from(day),
                at: at.to_string(),
            },
            Recurrence::Cron { expression, .. } => RecurrenceSpec::Cron { expression },
        }
    }
}

pub mod runner;

#[cfg(test)]
mod tests;
