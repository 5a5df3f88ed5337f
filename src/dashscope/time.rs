//! Points in time as wandash keeps them (epoch milliseconds), and the service's ways of
//! writing them: task times as Beijing wall-clock text, list filters as `YYYYMMDDhhmmss`
//! in Beijing time, list answers as epoch milliseconds, the `Date` header of an answer
//! (the service's clock) as HTTP writes it. Everything that reads or writes
//! the service's time text goes through here, so there is one parser to get right.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

use ::time::macros::{format_description, offset};
use ::time::{OffsetDateTime, PrimitiveDateTime, UtcOffset};
use serde::{Deserialize, Serialize};

/// The service writes times in Beijing time without saying so.
const SERVICE_OFFSET: UtcOffset = offset!(+8);

/// A point in time, in milliseconds since the Unix epoch (UTC). Stored in SQLite and
/// written in JSON output as that plain number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const fn from_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    pub const fn as_millis(self) -> i64 {
        self.0
    }

    pub fn now() -> Self {
        OffsetDateTime::now_utc().into()
    }

    /// The same instant as a date and time (UTC); `None` past what `OffsetDateTime` holds
    /// (beyond the years ±9999, which no real time reaches).
    pub fn to_datetime(self) -> Option<OffsetDateTime> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).ok()
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(u64::try_from(self.0 - earlier.0).unwrap_or(0))
    }

    /// A task time as the service writes it (`submit_time`, `scheduled_time`, `end_time`):
    /// `"2025-02-21 17:56:31.786"`, Beijing time. Fewer fraction digits, or none, are read
    /// too. `None` for anything else.
    pub fn parse_service(text: &str) -> Option<Timestamp> {
        let format = format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
        );
        let local = PrimitiveDateTime::parse(text.trim(), format).ok()?;
        Some(local.assume_offset(SERVICE_OFFSET).into())
    }

    /// The task list's `start_time`/`end_time` filter: `YYYYMMDDhhmmss` in Beijing time
    /// (whole seconds: the fraction is dropped).
    pub fn to_list_filter(self) -> String {
        self.to_datetime()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .to_offset(SERVICE_OFFSET)
            .format(format_description!(
                "[year][month][day][hour][minute][second]"
            ))
            .unwrap_or_default()
    }

    /// An HTTP `Date` header (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's IMF-fixdate):
    /// the answering server's clock, to the second. `None` for anything else.
    pub fn parse_http_date(text: &str) -> Option<Timestamp> {
        let at = PrimitiveDateTime::parse(text.trim(), HTTP_DATE).ok()?;
        Some(at.assume_utc().into())
    }

    /// This instant as an HTTP `Date` header (whole seconds).
    pub fn to_http_date(self) -> String {
        self.to_datetime()
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
            .format(HTTP_DATE)
            .unwrap_or_default()
    }
}

/// IMF-fixdate, the one form of `Date` HTTP/1.1 servers send; always in GMT.
const HTTP_DATE: &[::time::format_description::BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

impl From<OffsetDateTime> for Timestamp {
    fn from(at: OffsetDateTime) -> Self {
        Timestamp((at.unix_timestamp_nanos() / 1_000_000) as i64)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, wait: Duration) -> Timestamp {
        let ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(ms))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, span: Duration) -> Timestamp {
        let ms = i64::try_from(span.as_millis()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Timestamp {
    /// The number of milliseconds, as stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2025-02-21 09:56:31.786 UTC.
    const SEEDED: i64 = 1_740_131_791_786;

    #[test]
    fn task_times_are_read_as_beijing_time_with_milliseconds() {
        // The seeds' `submit_time` of a text-to-image task.
        assert_eq!(
            Timestamp::parse_service("2025-02-21 17:56:31.786"),
            Some(Timestamp::from_millis(SEEDED))
        );
        // `scheduled_time` and `end_time` are written the same way.
        let scheduled = Timestamp::parse_service("2025-02-21 17:56:31.821").unwrap();
        let ended = Timestamp::parse_service("2025-02-21 17:56:42.530").unwrap();
        assert_eq!(ended.since(scheduled), Duration::from_millis(10_709));
        // Across midnight in Beijing is the previous day in UTC.
        assert_eq!(
            Timestamp::parse_service("2025-12-16 04:21:02.275")
                .and_then(Timestamp::to_datetime)
                .unwrap()
                .day(),
            15
        );
    }

    #[test]
    fn task_times_with_fewer_fraction_digits_or_none_are_read() {
        assert_eq!(
            Timestamp::parse_service("2025-02-21 17:56:31.7"),
            Some(Timestamp::from_millis(SEEDED - 86))
        );
        assert_eq!(
            Timestamp::parse_service("2025-02-21 17:56:31"),
            Some(Timestamp::from_millis(SEEDED - 786))
        );
        // Digits past the millisecond are dropped, not rounded.
        assert_eq!(
            Timestamp::parse_service("2025-02-21 17:56:31.786999"),
            Some(Timestamp::from_millis(SEEDED))
        );
    }

    #[test]
    fn anything_else_is_not_a_task_time() {
        for text in [
            "",
            "…",
            "20250221175631",
            "2025-02-21T17:56:31.786",
            "2025-02-21 17:56",
            "2025-13-21 17:56:31.786",
            "1740131791786",
        ] {
            assert_eq!(Timestamp::parse_service(text), None, "{text:?}");
        }
    }

    #[test]
    fn list_filters_are_whole_seconds_in_beijing_time() {
        assert_eq!(
            Timestamp::from_millis(SEEDED).to_list_filter(),
            "20250221175631"
        );
        assert_eq!(Timestamp::from_millis(0).to_list_filter(), "19700101080000");
    }

    #[test]
    fn list_answers_are_epoch_milliseconds_as_they_are() {
        // `gmt_create` in a task list: a JSON number, the same scale as a Timestamp.
        let read: Timestamp = serde_json::from_str("1709260684485").unwrap();
        assert_eq!(read.as_millis(), 1_709_260_684_485);
        assert_eq!(serde_json::to_string(&read).unwrap(), "1709260684485");
    }

    #[test]
    fn http_dates_are_read_and_written_to_the_second() {
        let at = Timestamp::from_millis(SEEDED);
        assert_eq!(at.to_http_date(), "Fri, 21 Feb 2025 09:56:31 GMT");
        assert_eq!(
            Timestamp::parse_http_date("Fri, 21 Feb 2025 09:56:31 GMT"),
            Some(Timestamp::from_millis(SEEDED - 786))
        );
        for text in [
            "",
            "Fri, 21 Feb 2025 09:56:31",
            "2025-02-21 17:56:31",
            "Fri, 21 Feb 2025 09:56:31 +0800",
            "Fri, 32 Feb 2025 09:56:31 GMT",
        ] {
            assert_eq!(Timestamp::parse_http_date(text), None, "{text:?}");
        }
    }

    #[test]
    fn converts_to_and_from_offset_date_time() {
        let at = Timestamp::from_millis(SEEDED);
        let datetime = at.to_datetime().unwrap();
        assert_eq!(
            (datetime.hour(), datetime.minute(), datetime.millisecond()),
            (9, 56, 786)
        );
        assert_eq!(Timestamp::from(datetime), at);
        let now = Timestamp::now();
        assert!(now > at);
        assert_eq!(
            (now + Duration::from_millis(1500)).since(now),
            Duration::from_millis(1500)
        );
        assert_eq!(
            now.since(now - Duration::from_millis(250)),
            Duration::from_millis(250)
        );
        assert_eq!(at.since(now), Duration::ZERO);
        assert_eq!(Timestamp::from_millis(i64::MAX).to_datetime(), None);
    }
}
