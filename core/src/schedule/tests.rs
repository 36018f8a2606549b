use time::macros::datetime;

use super::*;

#[test]
fn times_of_day_parse_and_print() {
    for (given, shown) in [
        ("03:00", "03:00"),
        ("3:05", "03:05"),
        ("23:59", "23:59"),
        ("00:00", "00:00"),
    ] {
        assert_eq!(
            given.parse::<TimeOfDay>().unwrap().to_string(),
            shown,
            "{given}"
        );
    }
    for bad in [
        "24:00", "12:60", "12", "12:5", "ab:cd", "", "-1:00", "123:00", "12:00:00", " : ",
    ] {
        let e = bad.parse::<TimeOfDay>().unwrap_err();
        assert!(matches!(e, ScheduleError::TimeOfDay { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("HH:MM"), "{e}");
    }
}

#[test]
fn weekdays_parse_short_and_long_names() {
    assert_eq!("mon".parse::<Weekday>().unwrap(), Weekday::Mon);
    assert_eq!("Sunday".parse::<Weekday>().unwrap(), Weekday::Sun);
    assert_eq!(" FRI ".parse::<Weekday>().unwrap(), Weekday::Fri);
    let e = "funday".parse::<Weekday>().unwrap_err();
    assert!(
        e.to_string().contains("'funday'") && e.to_string().contains("mon, tue"),
        "{e}"
    );
}

#[test]
fn invalid_recurrences_are_refused_with_a_clear_reason() {
    let e = Recurrence::monthly(29, "03:00").unwrap_err();
    assert_eq!(e, ScheduleError::MonthDay { day: 29 });
    assert!(
        e.to_string().contains("1 to 28") && e.to_string().contains("'0 3 L * *'"),
        "{e}"
    );
    assert!(Recurrence::monthly(0, "03:00").is_err());
    assert!(Recurrence::monthly(31, "03:00").is_err());
    assert!(matches!(
        Recurrence::daily("25:00"),
        Err(ScheduleError::TimeOfDay { .. })
    ));
    assert!(matches!(
        Recurrence::weekly("xyz", "03:00"),
        Err(ScheduleError::Weekday { .. })
    ));
    // Five fields exactly: no seconds, no year.
    for (expr, fields) in [("* * * *", 4), ("0 0 3 * * *", 6), ("", 0)] {
        match Recurrence::cron(expr) {
            Err(ScheduleError::CronFields { fields: n, .. }) => assert_eq!(n, fields, "{expr}"),
            other => panic!("{expr}: {other:?}"),
        }
    }
    // The parser's reason is named.
    for bad in [
        "61 * * * *",
        "0 24 * * *",
        "0 0 0 * *",
        "0 0 * 13 *",
        "0 0 * * 8",
        "a b c d e",
        "*/0 * * * *",
    ] {
        let e = Recurrence::cron(bad).unwrap_err();
        match &e {
            ScheduleError::Cron { expression, reason } => {
                assert_eq!(expression, bad);
                assert!(!reason.is_empty(), "{bad}");
            }
            other => panic!("{bad}: {other:?}"),
        }
        assert!(
            e.to_string()
                .starts_with(&format!("invalid cron expression '{bad}': ")),
            "{e}"
        );
    }
    // An expression that never matches is refused at creation.
    let e = Recurrence::cron("0 0 30 2 *").unwrap_err();
    assert!(e.to_string().contains("never matches"), "{e}");
}

#[test]
fn next_after_is_strictly_later_and_in_utc() {
    let daily = Recurrence::daily("03:00").unwrap();
    let weekly = Recurrence::weekly("mon", "03:00").unwrap(); // 2026-12-07 is a Monday
    let monthly = Recurrence::monthly(15, "12:30").unwrap();
    let cases = [
        // Daily: later today, exactly at the tick (strictly after), later the same day.
        (
            &daily,
            datetime!(2026-12-02 01:00 UTC),
            datetime!(2026-12-02 03:00 UTC),
        ),
        (
            &daily,
            datetime!(2026-12-02 03:00 UTC),
            datetime!(2026-12-03 03:00 UTC),
        ),
        (
            &daily,
            datetime!(2026-12-02 03:00:01 UTC),
            datetime!(2026-12-03 03:00 UTC),
        ),
        (
            &daily,
            datetime!(2026-12-31 23:59 UTC),
            datetime!(2027-01-01 03:00 UTC),
        ),
        // Other offsets are read as the same instant in UTC.
        (
            &daily,
            datetime!(2026-12-02 04:30 +02:00),
            datetime!(2026-12-02 03:00 UTC),
        ),
        (
            &daily,
            datetime!(2026-12-02 05:30 +02:00),
            datetime!(2026-12-03 03:00 UTC),
        ),
        // Weekly: the coming Monday, or next week's when past this Monday's tick.
        (
            &weekly,
            datetime!(2026-12-02 12:00 UTC),
            datetime!(2026-12-07 03:00 UTC),
        ),
        (
            &weekly,
            datetime!(2026-12-07 02:59 UTC),
            datetime!(2026-12-07 03:00 UTC),
        ),
        (
            &weekly,
            datetime!(2026-12-07 03:00 UTC),
            datetime!(2026-12-14 03:00 UTC),
        ),
        (
            &weekly,
            datetime!(2026-12-06 23:00 UTC),
            datetime!(2026-12-07 03:00 UTC),
        ),
        // Monthly: this month, next month, across the year end and through February.
        (
            &monthly,
            datetime!(2026-12-02 00:00 UTC),
            datetime!(2026-12-15 12:30 UTC),
        ),
        (
            &monthly,
            datetime!(2026-12-15 12:30 UTC),
            datetime!(2027-01-15 12:30 UTC),
        ),
        (
            &monthly,
            datetime!(2027-01-20 00:00 UTC),
            datetime!(2027-02-15 12:30 UTC),
        ),
    ];
    for (r, t, next) in cases {
        assert_eq!(r.next_after(t), next, "{r} after {t}");
    }
    // Day 28 exists in every month, February of leap and common years included.
    let last = Recurrence::monthly(28, "00:00").unwrap();
    assert_eq!(
        last.next_after(datetime!(2027-01-28 00:00 UTC)),
        datetime!(2027-02-28 00:00 UTC)
    );
    assert_eq!(
        last.next_after(datetime!(2028-02-01 00:00 UTC)),
        datetime!(2028-02-28 00:00 UTC)
    );
    assert_eq!(
        last.next_after(datetime!(2028-02-28 00:00 UTC)),
        datetime!(2028-03-28 00:00 UTC)
    );
}

#[test]
fn cron_expressions_with_ranges_steps_lists_and_names() {
    let cases = [
        // Every 15 minutes from 8 to 10 on weekdays (2026-12-05 is a Saturday).
        (
            "*/15 8-10 * * 1-5",
            datetime!(2026-12-04 10:50 UTC),
            datetime!(2026-12-07 08:00 UTC),
        ),
        (
            "*/15 8-10 * * 1-5",
            datetime!(2026-12-02 08:00 UTC),
            datetime!(2026-12-02 08:15 UTC),
        ),
        // Lists and names.
        (
            "0 3,15 * * mon,wed",
            datetime!(2026-12-02 04:00 UTC),
            datetime!(2026-12-02 15:00 UTC),
        ),
        (
            "30 2 1 jan,jul *",
            datetime!(2026-12-02 00:00 UTC),
            datetime!(2027-01-01 02:30 UTC),
        ),
        // The last day of the month, February included.
        (
            "0 3 L * *",
            datetime!(2027-02-02 00:00 UTC),
            datetime!(2027-02-28 03:00 UTC),
        ),
        (
            "0 3 L * *",
            datetime!(2028-02-02 00:00 UTC),
            datetime!(2028-02-29 03:00 UTC),
        ),
        (
            "0 3 L * *",
            datetime!(2026-12-31 03:00 UTC),
            datetime!(2027-01-31 03:00 UTC),
        ),
        // Day 31 skips the months without one.
        (
            "0 0 31 * *",
            datetime!(2027-01-31 00:00 UTC),
            datetime!(2027-03-31 00:00 UTC),
        ),
        // Strictly after, at minute precision.
        (
            "0 * * * *",
            datetime!(2026-12-02 05:00 UTC),
            datetime!(2026-12-02 06:00 UTC),
        ),
        (
            "* * * * *",
            datetime!(2026-12-02 05:00:30 UTC),
            datetime!(2026-12-02 05:01 UTC),
        ),
    ];
    for (expr, t, next) in cases {
        let r = Recurrence::cron(expr).unwrap();
        assert_eq!(r.next_after(t), next, "{expr} after {t}");
    }
}

#[test]
fn a_schedule_catches_up_once_after_downtime() {
    let daily = Recurrence::daily("03:00").unwrap();
    let last = datetime!(2026-12-01 03:00 UTC);
    assert!(!daily.due(last, datetime!(2026-12-02 02:59 UTC)));
    assert!(daily.due(last, datetime!(2026-12-02 03:00 UTC)));
    // Down for ten days: ten ticks were missed, one run is due...
    let back = datetime!(2026-12-11 17:00 UTC);
    assert!(daily.due(last, back));
    // ...and once it ran at `back`, nothing is due again until the next tick after it.
    assert!(!daily.due(back, back));
    assert!(!daily.due(back, datetime!(2026-12-12 02:59 UTC)));
    assert!(daily.due(back, datetime!(2026-12-12 03:00 UTC)));
    let hourly = Recurrence::cron("0 * * * *").unwrap();
    let ran = datetime!(2026-12-02 10:20 UTC);
    assert!(!hourly.due(ran, datetime!(2026-12-02 10:59 UTC)));
    assert!(hourly.due(ran, datetime!(2026-12-05 10:59 UTC)));
}

#[test]
fn recurrences_round_trip_through_their_json_form() {
    for (json, shown) in [
        (r#"{"type":"daily","at":"3:00"}"#, "every day at 03:00 UTC"),
        (
            r#"{"type":"weekly","day":"fri","at":"22:15"}"#,
            "every friday at 22:15 UTC",
        ),
        (
            r#"{"type":"monthly","day":28,"at":"00:00"}"#,
            "every month on day 28 at 00:00 UTC",
        ),
        (
            r#"{"type":"cron","expression":" 0 3 * * 1-5 "}"#,
            "cron '0 3 * * 1-5' (UTC)",
        ),
    ] {
        let r: Recurrence = serde_json::from_str(json).unwrap();
        assert_eq!(r.to_string(), shown);
        let again: Recurrence = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(again, r);
    }
    assert_eq!(
        serde_json::to_value(Recurrence::weekly("monday", "7:05").unwrap()).unwrap(),
        serde_json::json!({"type": "weekly", "day": "mon", "at": "07:05"})
    );
    // Deserializing validates, with the rule's message.
    for (bad, says) in [
        (r#"{"type":"monthly","day":30,"at":"00:00"}"#, "1 to 28"),
        (r#"{"type":"daily","at":"7pm"}"#, "HH:MM"),
        (r#"{"type":"cron","expression":"0 0 * *"}"#, "5 fields"),
        (r#"{"type":"hourly"}"#, "unknown variant"),
    ] {
        let e = serde_json::from_str::<Recurrence>(bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}
