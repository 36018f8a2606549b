//! Unit tests of the operations page: the schedule form read as the API body.

use super::*;

#[test]
fn the_schedule_form_becomes_the_api_body() {
    let form = |pairs: &[(&str, &str)]| FormData::from_pairs(pairs.iter().copied());
    assert_eq!(
        schedule_body(&form(&[
            ("name", "n"),
            ("type", "weekly"),
            ("day", "mon"),
            ("at", "03:00")
        ]))
        .unwrap(),
        json!({"name": "n", "recurrence": {"type": "weekly", "day": "mon", "at": "03:00"}})
    );
    assert_eq!(
        schedule_body(&form(&[
            ("name", "m"),
            ("type", "monthly"),
            ("day", "2"),
            ("at", "04:30")
        ]))
        .unwrap()["recurrence"]["day"],
        2
    );
    assert!(
        schedule_body(&form(&[("type", "monthly"), ("day", "x")]))
            .unwrap_err()
            .contains("1 to 28")
    );
    assert!(
        schedule_body(&form(&[("type", "hourly")]))
            .unwrap_err()
            .contains("'hourly'")
    );
}
