//! Schedule evaluation: shift boundaries, time zones and DST changes,
//! overrides in the feed, empty schedules.

use super::*;

fn ts(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_second()
}

fn feed(name: &str, layers: &[(&str, &str)], text: &str) -> Schedules {
    let s = Schedules::new(
        [(
            name.to_owned(),
            ScheduleConfig {
                source: Source::IcalFile("unused".into()),
                layers: layers
                    .iter()
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .collect(),
                tz: TimeZone::UTC,
                refresh: Duration::from_secs(300),
            },
        )]
        .into(),
    );
    s.set_feed(name, text).unwrap();
    s
}

fn members(s: &Schedules, name: &str, at: &str) -> Vec<String> {
    let mut m: Vec<String> = s
        .shifts(name, ts(at))
        .unwrap()
        .into_iter()
        .map(|s| format!("{}:{}", s.layer, s.member))
        .collect();
    m.sort();
    m
}

fn rotation(members: &[&str], shift_days: i64, handoff: &str, tz: &str) -> Schedules {
    Schedules::new(
        [(
            "rot".to_owned(),
            ScheduleConfig {
                source: Source::Rotation(rotation::Rotation {
                    members: members.iter().map(|m| m.to_string()).collect(),
                    shift_secs: shift_days * 86_400,
                    handoff: handoff.parse().unwrap(),
                    tz: TimeZone::get(tz).unwrap(),
                }),
                layers: [("primary".to_owned(), String::new())].into(),
                tz: TimeZone::UTC,
                refresh: Duration::from_secs(300),
            },
        )]
        .into(),
    )
}

/// A PagerDuty-like feed: a weekly primary rotation in Berlin time, a
/// secondary layer, one override and one excluded week.
const FEED: &str = "BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:-//test//on-call//EN\r
BEGIN:VEVENT\r
UID:primary-alice\r
SUMMARY:On Call - Escalation level 1: Databases\r
DTSTART;TZID=Europe/Berlin:20261019T090000\r
DTEND;TZID=Europe/Berlin:20261026T090000\r
RRULE:FREQ=WEEKLY;INTERVAL=2\r
EXDATE;TZID=Europe/Berlin:20261116T090000\r
ATTENDEE;CN=Alice Example:mailto:alice@example.com\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:primary-bob\r
SUMMARY:On Call - Escalation level 1: Databases\r
DTSTART;TZID=Europe/Berlin:20261026T090000\r
DTEND;TZID=Europe/Berlin:20261102T090000\r
RRULE:FREQ=WEEKLY;INTERVAL=2\r
ATTENDEE:mailto:bob@example.com\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:primary-bob\r
RECURRENCE-ID;TZID=Europe/Berlin:20261109T090000\r
SUMMARY:On Call - Escalation level 1: Databases\r
DTSTART;TZID=Europe/Berlin:20261109T090000\r
DTEND;TZID=Europe/Berlin:20261111T090000\r
ATTENDEE:mailto:carol@example.com\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:secondary\r
SUMMARY:On Call - Escalation level 2: Databases\r
DTSTART:20261001T000000Z\r
DURATION:P1D\r
RRULE:FREQ=DAILY\r
ATTENDEE:mailto:dave@example.com\r
END:VEVENT\r
END:VCALENDAR\r
";

fn pd() -> Schedules {
    feed(
        "dba",
        &[("primary", "level 1"), ("secondary", "level 2")],
        FEED,
    )
}

#[test]
fn shifts_change_hands_exactly_at_the_boundary() {
    let s = pd();
    // 2026-10-26 09:00 Berlin is 08:00Z (CET, after the DST change).
    assert_eq!(
        members(&s, "dba", "2026-10-26T07:59:59Z"),
        [
            "primary:Alice Example",
            "primary:alice@example.com",
            "secondary:dave@example.com"
        ]
    );
    assert_eq!(
        members(&s, "dba", "2026-10-26T08:00:00Z"),
        ["primary:bob@example.com", "secondary:dave@example.com"]
    );
    let bob = s
        .on_call(
            "dba",
            &["primary".into()],
            &["bob", "bob@example.com"],
            ts("2026-10-27T12:00:00Z"),
        )
        .unwrap();
    assert_eq!(
        (bob.start, bob.end),
        (ts("2026-10-26T08:00:00Z"), ts("2026-11-02T08:00:00Z"))
    );
    // Only the layers a rule counts.
    assert!(s
        .on_call(
            "dba",
            &["primary".into()],
            &["dave@example.com"],
            ts("2026-10-27T12:00:00Z")
        )
        .is_none());
    assert!(s
        .on_call(
            "dba",
            &[],
            &["DAVE@example.com"],
            ts("2026-10-27T12:00:00Z")
        )
        .is_some());
}

#[test]
fn a_shift_across_the_dst_change_keeps_its_local_hand_off() {
    let s = pd();
    // Alice's first week: 09:00 CEST (07:00Z) to 09:00 CET (08:00Z), 7 days + 1 hour.
    let a = s
        .on_call(
            "dba",
            &[],
            &["alice@example.com"],
            ts("2026-10-20T00:00:00Z"),
        )
        .unwrap();
    assert_eq!(
        (a.start, a.end),
        (ts("2026-10-19T07:00:00Z"), ts("2026-10-26T08:00:00Z"))
    );
    assert_eq!(a.end - a.start, 7 * 86_400 + 3_600);
}

#[test]
fn overrides_and_exclusions_in_the_feed_win() {
    let s = pd();
    // Bob's week from 2026-11-09 was overridden: Carol for two days, then nobody.
    assert_eq!(
        members(&s, "dba", "2026-11-10T12:00:00Z"),
        ["primary:carol@example.com", "secondary:dave@example.com"]
    );
    assert_eq!(
        members(&s, "dba", "2026-11-12T12:00:00Z"),
        ["secondary:dave@example.com"]
    );
    // Alice's week from 2026-11-16 is excluded.
    assert_eq!(
        members(&s, "dba", "2026-11-18T12:00:00Z"),
        ["secondary:dave@example.com"]
    );
    // Her next one (2026-11-30) is back.
    assert!(members(&s, "dba", "2026-12-01T12:00:00Z")
        .contains(&"primary:alice@example.com".to_owned()));
}

#[test]
fn a_cancelled_instance_and_count_and_until_end_shifts() {
    let text = "BEGIN:VCALENDAR\nBEGIN:VEVENT\nUID:x\nSUMMARY:erin\nDTSTART:20260105T000000Z\nDTEND:20260105T120000Z\nRRULE:FREQ=DAILY;COUNT=3\nEND:VEVENT\nBEGIN:VEVENT\nUID:x\nRECURRENCE-ID:20260106T000000Z\nSTATUS:CANCELLED\nDTSTART:20260106T000000Z\nDTEND:20260106T120000Z\nEND:VEVENT\nBEGIN:VEVENT\nUID:y\nSUMMARY:frank\nDTSTART:20260105T120000Z\nDTEND:20260105T180000Z\nRRULE:FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260114T120000Z\nEND:VEVENT\nEND:VCALENDAR\n";
    let s = feed("x", &[], text);
    assert_eq!(members(&s, "x", "2026-01-05T06:00:00Z"), ["all:erin"]);
    assert!(
        members(&s, "x", "2026-01-06T06:00:00Z").is_empty(),
        "cancelled"
    );
    assert_eq!(members(&s, "x", "2026-01-07T06:00:00Z"), ["all:erin"]);
    assert!(
        members(&s, "x", "2026-01-08T06:00:00Z").is_empty(),
        "COUNT=3 ended"
    );
    assert_eq!(members(&s, "x", "2026-01-07T13:00:00Z"), ["all:frank"]);
    assert!(
        members(&s, "x", "2026-01-08T13:00:00Z").is_empty(),
        "Thursday"
    );
    assert_eq!(members(&s, "x", "2026-01-14T13:00:00Z"), ["all:frank"]);
    assert!(
        members(&s, "x", "2026-01-19T13:00:00Z").is_empty(),
        "after UNTIL"
    );
}

#[test]
fn rotations_hand_off_at_local_time_across_dst() {
    let s = rotation(
        &["alice", "bob", "carol"],
        7,
        "2026-03-02T09:00:00",
        "America/New_York",
    );
    let at = |t: &str| s.shifts("rot", ts(t)).unwrap();
    // US DST starts 2026-03-08: 09:00 EST is 14:00Z, 09:00 EDT is 13:00Z.
    assert_eq!(at("2026-03-09T12:59:59Z")[0].member, "alice");
    assert_eq!(at("2026-03-09T13:00:00Z")[0].member, "bob");
    let bob = &at("2026-03-10T00:00:00Z")[0];
    assert_eq!(
        (bob.start, bob.end),
        (ts("2026-03-09T13:00:00Z"), ts("2026-03-16T13:00:00Z"))
    );
    assert_eq!(
        at("2026-03-23T13:00:00Z")[0].member,
        "alice",
        "wraps around"
    );
    assert!(
        at("2026-03-02T13:59:59Z").is_empty(),
        "before the first hand-off"
    );
    assert_eq!(at("2027-06-01T00:00:00Z").len(), 1);
}

#[test]
fn empty_schedules_have_nobody_on_call() {
    let s = feed("e", &[], "BEGIN:VCALENDAR\nVERSION:2.0\nEND:VCALENDAR\n");
    assert!(s
        .shifts("e", ts("2026-06-01T00:00:00Z"))
        .unwrap()
        .is_empty());
    assert!(s
        .on_call("e", &[], &["alice"], ts("2026-06-01T00:00:00Z"))
        .is_none());
    let r = rotation(&[], 7, "2026-01-01T09:00:00", "UTC");
    assert!(r
        .shifts("rot", ts("2026-06-01T00:00:00Z"))
        .unwrap()
        .is_empty());
    // A feed never loaded counts as nobody, and says why.
    let unloaded = Schedules::new(pd().configs.clone());
    assert!(unloaded.shifts("dba", 0).is_err());
    assert!(unloaded.on_call("dba", &[], &["alice"], 0).is_none());
}

#[test]
fn a_bad_feed_is_refused_with_its_line_and_the_last_good_copy_kept() {
    let s = pd();
    let err = s
        .set_feed("dba", "BEGIN:VCALENDAR\nBEGIN:VEVENT\nDTSTART:20260101T000000Z\nRRULE:FREQ=MONTHLY\nEND:VEVENT\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("line 4") && err.contains("FREQ=MONTHLY"),
        "{err}"
    );
    assert!(!members(&s, "dba", "2026-10-27T12:00:00Z").is_empty());
    let err = feed("z", &[], "")
        .set_feed(
            "z",
            "BEGIN:VEVENT\nDTSTART;TZID=Mars/Olympus:20260101T000000\nEND:VEVENT\n",
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown time zone"), "{err}");
}
