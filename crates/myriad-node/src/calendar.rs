//! Scheduled meetings in iCalendar (RFC 5545): the events of an imported calendar as meetings
//! to create, and a host's meetings as a feed its calendar subscribes to. Pure: text in, text
//! out; the API does the rest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use icalendar::{
    Calendar, CalendarComponent, CalendarDateTime, Component, DatePerhapsTime, Event, EventLike,
};
use myriad_proto::MeetingId;
use myriad_store::{MeetingRecord, Schedule};
use sha2::{Digest, Sha256};

/// Events one import takes at most.
pub const MAX_EVENTS: usize = 500;
/// A meeting lasts this long when its event says neither an end nor a duration.
const DEFAULT_DURATION_S: u32 = 3600;
/// Our own property: people expected per region, `eu=300,us=120`.
pub const AUDIENCE_PROPERTY: &str = "X-MYRIAD-AUDIENCE";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CalendarError {
    #[error("not an iCalendar (RFC 5545) text: {0}")]
    NotACalendar(String),
    #[error("{0} events: one import takes at most {MAX_EVENTS}")]
    TooMany(usize),
}

/// Why one event was not taken.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error("the event has no UID")]
    NoUid,
    #[error("the event has no start time (DTSTART)")]
    NoStart,
    #[error("an all-day event is not a meeting: give DTSTART a time")]
    AllDay,
    #[error("a floating time (no time zone) cannot be placed: use UTC or a TZID")]
    Floating,
    #[error("unknown time zone {0:?}")]
    UnknownZone(String),
    #[error("the event ends before it starts")]
    EndsBeforeStart,
    #[error("bad {AUDIENCE_PROPERTY}: {0}")]
    BadAudience(String),
}

/// A meeting an event asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedMeeting {
    /// Derived from the event's UID, so importing it again finds the same meeting.
    pub id: MeetingId,
    pub uid: String,
    pub title: String,
    pub schedule: Schedule,
}

/// An event's UID, and the meeting it asks for or why not.
pub type ReadEvent = (String, Result<PlannedMeeting, EventError>);

/// The events of `text`, each a meeting or why not.
pub fn read(text: &str) -> Result<Vec<ReadEvent>, CalendarError> {
    let calendar: Calendar = text.parse().map_err(CalendarError::NotACalendar)?;
    let events: Vec<&Event> = calendar
        .components
        .iter()
        .filter_map(|c| match c {
            CalendarComponent::Event(e) => Some(e),
            _ => None,
        })
        .collect();
    if events.len() > MAX_EVENTS {
        return Err(CalendarError::TooMany(events.len()));
    }
    Ok(events
        .into_iter()
        .map(|e| (e.get_uid().unwrap_or_default().to_owned(), planned(e)))
        .collect())
}

fn planned(event: &Event) -> Result<PlannedMeeting, EventError> {
    let uid = event
        .get_uid()
        .filter(|u| !u.is_empty())
        .ok_or(EventError::NoUid)?;
    let starts = utc(event.get_start().ok_or(EventError::NoStart)?)?;
    let duration_s = match (event.get_end(), event.property_value("DURATION")) {
        (Some(end), _) => {
            let secs = (utc(end)? - starts).num_seconds();
            u32::try_from(secs).map_err(|_| EventError::EndsBeforeStart)?
        }
        (None, Some(d)) => duration_seconds(d).unwrap_or(DEFAULT_DURATION_S),
        (None, None) => DEFAULT_DURATION_S,
    };
    let attendees = event
        .multi_properties()
        .get("ATTENDEE")
        .map_or(0, |a| u32::try_from(a.len()).unwrap_or(u32::MAX));
    let audience = match event.property_value(AUDIENCE_PROPERTY) {
        Some(text) => read_audience(text)?,
        None if attendees > 0 => BTreeMap::from([("*".to_owned(), attendees)]),
        None => BTreeMap::new(),
    };
    // Attachments by reference (slides, documents) are the meeting's content; inline ones
    // (VALUE=BINARY) are not fetched.
    let content = event
        .multi_properties()
        .get("ATTACH")
        .map_or_else(Vec::new, |all| {
            all.iter()
                .filter(|a| {
                    a.params()
                        .get("VALUE")
                        .is_none_or(|v| v.value() != "BINARY")
                })
                .map(|a| a.value().to_owned())
                .filter(|v| v.len() <= Schedule::MAX_CONTENT_BYTES)
                .take(Schedule::MAX_CONTENT)
                .collect()
        });
    let host = event.property_value("ORGANIZER").map(|o| {
        o.trim_start_matches("mailto:")
            .trim_start_matches("MAILTO:")
            .to_lowercase()
    });
    Ok(PlannedMeeting {
        id: id_for(uid),
        uid: uid.to_owned(),
        title: event
            .get_summary()
            .unwrap_or("Meeting")
            .chars()
            .take(200)
            .collect(),
        schedule: Schedule {
            starts_unix_s: u64::try_from(starts.timestamp()).unwrap_or(0),
            duration_s,
            host,
            audience,
            content,
        },
    })
}

/// A stable meeting id for an event: the same UID, the same meeting.
fn id_for(uid: &str) -> MeetingId {
    let digest = Sha256::digest(uid.as_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    MeetingId::parse(&format!("cal-{hex}")).unwrap_or_else(|_| unreachable!("a valid id"))
}

fn utc(when: DatePerhapsTime) -> Result<DateTime<Utc>, EventError> {
    match when {
        DatePerhapsTime::Date(_) => Err(EventError::AllDay),
        DatePerhapsTime::DateTime(CalendarDateTime::Floating(_)) => Err(EventError::Floating),
        DatePerhapsTime::DateTime(CalendarDateTime::Utc(t)) => Ok(t),
        DatePerhapsTime::DateTime(zoned @ CalendarDateTime::WithTimezone { .. }) => {
            match (zoned.try_into_utc(), zoned) {
                (Some(t), _) => Ok(t),
                (None, CalendarDateTime::WithTimezone { tzid, .. }) => {
                    Err(EventError::UnknownZone(tzid))
                }
                (None, _) => Err(EventError::Floating),
            }
        }
    }
}

/// `eu=300,us=120` (or `;` between entries).
fn read_audience(text: &str) -> Result<BTreeMap<String, u32>, EventError> {
    text.split([',', ';'])
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            let (region, n) = entry
                .split_once('=')
                .ok_or_else(|| EventError::BadAudience(entry.to_owned()))?;
            let n: u32 = n
                .trim()
                .parse()
                .map_err(|_| EventError::BadAudience(entry.to_owned()))?;
            Ok((region.trim().to_owned(), n))
        })
        .collect()
}

/// An RFC 5545 duration (`PT1H30M`, `P1D`, `P2W`), in seconds.
fn duration_seconds(text: &str) -> Option<u32> {
    let body = text.trim().strip_prefix('+').unwrap_or(text.trim());
    let body = body.strip_prefix('P')?;
    let (mut total, mut number, mut in_time) = (0u64, String::new(), false);
    for c in body.chars() {
        match c {
            '0'..='9' => number.push(c),
            'T' if number.is_empty() => in_time = true,
            _ => {
                let n: u64 = number.parse().ok()?;
                number.clear();
                total += n * match (c, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
            }
        }
    }
    (number.is_empty() && total > 0).then(|| u32::try_from(total).ok())?
}

/// A host's meetings as a calendar feed: each event links to its meeting.
pub fn feed(name: &str, meetings: &[MeetingRecord], base_url: &str) -> String {
    let mut calendar = Calendar::new();
    calendar.name(name);
    for m in meetings {
        let Some(s) = &m.settings.schedule else {
            continue;
        };
        let starts =
            DateTime::<Utc>::from_timestamp(i64::try_from(s.starts_unix_s).unwrap_or(0), 0)
                .unwrap_or_default();
        let ends = starts + chrono::Duration::seconds(i64::from(s.duration_s));
        let url = format!("{}/m/{}", base_url.trim_end_matches('/'), m.id);
        let mut event = Event::new();
        event
            .uid(&format!("{}@myriad", m.id))
            .summary(&m.title)
            .starts(starts)
            .ends(ends)
            .url(&url)
            .description(&format!("Join: {url}"));
        if !s.audience.is_empty() {
            let audience: Vec<String> =
                s.audience.iter().map(|(r, n)| format!("{r}={n}")).collect();
            event.add_property(AUDIENCE_PROPERTY, audience.join(","));
        }
        if let Some(host) = &s.host {
            event.add_property("ORGANIZER", format!("mailto:{host}"));
        }
        for content in &s.content {
            event.add_multi_property("ATTACH", content);
        }
        calendar.push(event.done());
    }
    calendar.done().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "BEGIN:VCALENDAR\r\n\
VERSION:2.0\r\n\
PRODID:-//Example Corp//Outlook//EN\r\n\
BEGIN:VEVENT\r\n\
UID:040000008200E00074C5B7101A82E008@example.org\r\n\
DTSTAMP:20261201T120000Z\r\n\
DTSTART;TZID=America/New_York:20261210T090000\r\n\
DTEND;TZID=America/New_York:20261210T103000\r\n\
SUMMARY:Quarterly town hall\r\n\
ORGANIZER;CN=Ana:mailto:Ana@Example.org\r\n\
ATTENDEE;CN=Bo:mailto:bo@example.org\r\n\
ATTENDEE;CN=Cy:mailto:cy@example.org\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:lecture-7\r\n\
DTSTART:20261211T140000Z\r\n\
DURATION:PT1H30M\r\n\
SUMMARY:Lecture 7\r\n\
X-MYRIAD-AUDIENCE:eu=300, us=120\r\n\
ATTACH:https://cdn.example.org/lecture-7/slides.pdf\r\n\
ATTACH;ENCODING=BASE64;VALUE=BINARY:aGVsbG8=\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
UID:holiday\r\n\
DTSTART;VALUE=DATE:20261225\r\n\
SUMMARY:Holiday\r\n\
END:VEVENT\r\n\
BEGIN:VEVENT\r\n\
DTSTART:20261211T140000Z\r\n\
SUMMARY:No uid\r\n\
END:VEVENT\r\n\
END:VCALENDAR\r\n";

    #[test]
    fn an_invitation_becomes_a_scheduled_meeting_in_utc() {
        let events = read(INVITE).unwrap();
        assert_eq!(events.len(), 4);
        let town_hall = events[0].1.as_ref().unwrap();
        assert_eq!(town_hall.title, "Quarterly town hall");
        // 09:00 in New York in December is 14:00 UTC.
        assert_eq!(town_hall.schedule.starts_unix_s, 1_796_911_200);
        assert_eq!(town_hall.schedule.duration_s, 5400);
        assert_eq!(town_hall.schedule.host.as_deref(), Some("ana@example.org"));
        assert_eq!(
            town_hall.schedule.audience,
            BTreeMap::from([("*".to_owned(), 2)])
        );
        assert!(town_hall.id.as_str().starts_with("cal-"));
        // The same UID is the same meeting.
        assert_eq!(
            read(INVITE).unwrap()[0].1.as_ref().unwrap().id,
            town_hall.id
        );
        let lecture = events[1].1.as_ref().unwrap();
        assert_eq!(lecture.schedule.duration_s, 5400);
        assert_eq!(
            lecture.schedule.audience,
            BTreeMap::from([("eu".to_owned(), 300), ("us".to_owned(), 120)])
        );
        assert_eq!(
            lecture.schedule.content,
            ["https://cdn.example.org/lecture-7/slides.pdf"]
        );
        assert_eq!(events[2].1, Err(EventError::AllDay));
        assert_eq!(events[3].1, Err(EventError::NoUid));
    }

    #[test]
    fn bad_calendars_and_events_are_clear_errors() {
        assert!(matches!(read("hello"), Err(CalendarError::NotACalendar(_))));
        let event = |lines: &str| {
            let text = format!(
                "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\n{lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
            );
            read(&text).unwrap().remove(0).1
        };
        assert_eq!(event("SUMMARY:x\r\n"), Err(EventError::NoStart));
        assert_eq!(
            event("DTSTART:20261211T140000\r\n"),
            Err(EventError::Floating)
        );
        assert_eq!(
            event("DTSTART;TZID=Mars/Olympus:20261211T140000\r\n"),
            Err(EventError::UnknownZone("Mars/Olympus".into()))
        );
        assert_eq!(
            event("DTSTART:20261211T140000Z\r\nDTEND:20261211T130000Z\r\n"),
            Err(EventError::EndsBeforeStart)
        );
        assert!(matches!(
            event("DTSTART:20261211T140000Z\r\nX-MYRIAD-AUDIENCE:eu=lots\r\n"),
            Err(EventError::BadAudience(_))
        ));
        let many = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\n{}END:VCALENDAR\r\n",
            "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20261211T140000Z\r\nEND:VEVENT\r\n"
                .repeat(MAX_EVENTS + 1)
        );
        assert_eq!(read(&many), Err(CalendarError::TooMany(MAX_EVENTS + 1)));
    }

    #[test]
    fn durations_are_read_as_rfc_5545_writes_them() {
        assert_eq!(duration_seconds("PT1H30M"), Some(5400));
        assert_eq!(duration_seconds("P1D"), Some(86_400));
        assert_eq!(duration_seconds("P1W"), Some(604_800));
        assert_eq!(duration_seconds("P1DT2H"), Some(93_600));
        for bad in ["", "1H", "PT", "PT1X", "P1H", "PT1H2"] {
            assert_eq!(duration_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_feed_reads_back_as_the_meetings_it_lists() {
        let planned = read(INVITE).unwrap().remove(1).1.unwrap();
        let record = MeetingRecord {
            id: planned.id.to_string(),
            title: planned.title.clone(),
            created_unix_s: 1,
            ended_unix_s: None,
            settings: myriad_store::MeetingSettings {
                schedule: Some(planned.schedule.clone()),
                ..Default::default()
            },
        };
        let text = feed("Ana's meetings", &[record], "https://meet.example.org/");
        assert!(
            text.contains("URL:https://meet.example.org/m/cal-"),
            "{text}"
        );
        let back = read(&text).unwrap().remove(0).1.unwrap();
        assert_eq!(back.title, planned.title);
        assert_eq!(back.schedule, planned.schedule);
    }
}
