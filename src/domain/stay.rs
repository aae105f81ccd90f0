//! A booking's dates: the range a named unit (a room) is held for.
//!
//! Sent as `"from"` and `"to"`, both ISO 8601 dates (`2027-03-01`, a stay
//! by night: from the first night to the morning of `to`) or both RFC 3339
//! date-times (`2027-03-01T15:00:00+09:00`). A range is half-open, so a
//! guest leaving on the 3rd and one arriving on the 3rd do not overlap.

use super::Invalid;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::{Iso8601, Rfc3339};
use time::{Date, OffsetDateTime, Time};

/// Longest booking accepted.
pub const MAX_NIGHTS: i64 = 366;

/// Shown to clients as `{"from": …, "to": …}` as they sent it, stored as
/// numbers (serde's human-readable flag tells the two apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stay {
    /// Start, seconds since the Unix epoch (UTC).
    pub from_s: i64,
    /// End (exclusive), seconds since the Unix epoch (UTC).
    pub to_s: i64,
    /// Given as dates: shown as dates, counted by night.
    pub by_night: bool,
}

/// How a stay is stored.
#[derive(Serialize, Deserialize)]
struct Stored {
    from_s: i64,
    to_s: i64,
    by_night: bool,
}

/// How a stay is shown: both ISO 8601 dates (by night), or both RFC 3339
/// date-times.
#[derive(Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = Stay, example = json!({"from": "2027-03-01", "to": "2027-03-03"}))]
struct Shown {
    /// The first night (`2027-03-01`), or the start (`2027-03-01T15:00:00+09:00`).
    from: String,
    /// The morning of leaving, or the end (exclusive).
    to: String,
}

/// A stay's schema is the shape it is shown in.
impl utoipa::PartialSchema for Stay {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        Shown::schema()
    }
}

impl utoipa::ToSchema for Stay {
    fn name() -> std::borrow::Cow<'static, str> {
        "Stay".into()
    }
}

impl Serialize for Stay {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match serializer.is_human_readable() {
            true => Shown { from: self.from(), to: self.to() }.serialize(serializer),
            false => {
                Stored { from_s: self.from_s, to_s: self.to_s, by_night: self.by_night }.serialize(serializer)
            }
        }
    }
}

impl<'de> Deserialize<'de> for Stay {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Stay, D::Error> {
        match deserializer.is_human_readable() {
            true => {
                let shown = Shown::deserialize(deserializer)?;
                Stay::parse(&shown.from, &shown.to).map_err(serde::de::Error::custom)
            }
            false => {
                let s = Stored::deserialize(deserializer)?;
                Ok(Stay { from_s: s.from_s, to_s: s.to_s, by_night: s.by_night })
            }
        }
    }
}

impl Stay {
    /// Parses a request's `from` and `to`.
    pub fn parse(from: &str, to: &str) -> Result<Stay, Invalid> {
        let stay = match (point("from", from)?, point("to", to)?) {
            ((from_s, true), (to_s, true)) => Stay { from_s, to_s, by_night: true },
            ((from_s, false), (to_s, false)) => Stay { from_s, to_s, by_night: false },
            _ => return Err(Invalid::new("from and to must both be dates (2027-03-01) or both date-times")),
        };
        if stay.to_s <= stay.from_s {
            return Err(Invalid::new(format!("to ({to}) must be after from ({from})")));
        }
        if stay.to_s - stay.from_s > MAX_NIGHTS * 86_400 {
            return Err(Invalid::new(format!("a booking lasts at most {MAX_NIGHTS} days")));
        }
        Ok(stay)
    }

    /// Whether the two ranges share any moment.
    pub fn overlaps(&self, other: &Stay) -> bool {
        self.from_s < other.to_s && other.from_s < self.to_s
    }

    /// When it starts, as the client sent it (a date or a UTC date-time).
    pub fn from(&self) -> String {
        self.show(self.from_s)
    }

    /// When it ends, as the client sent it.
    pub fn to(&self) -> String {
        self.show(self.to_s)
    }

    /// Milliseconds since the epoch at its end: when a stay's time is up.
    pub fn end_ms(&self) -> u64 {
        u64::try_from(self.to_s).unwrap_or(0).saturating_mul(1000)
    }

    fn show(&self, s: i64) -> String {
        let Ok(t) = OffsetDateTime::from_unix_timestamp(s) else { return s.to_string() };
        match self.by_night {
            true => t.date().to_string(),
            false => t.format(&Rfc3339).unwrap_or_default(),
        }
    }
}

/// One end of a range: its seconds since the epoch, and whether it was a
/// calendar date (`2027-03-01`, taken at its midnight UTC).
fn point(field: &str, s: &str) -> Result<(i64, bool), Invalid> {
    let wrong =
        || Invalid::new(format!("{field} must be a date (2027-03-01) or an RFC 3339 date-time (got {s:?})"));
    if s.len() == 10 {
        let date = Date::parse(s, &Iso8601::DATE).map_err(|_| wrong())?;
        return Ok((date.with_time(Time::MIDNIGHT).assume_utc().unix_timestamp(), true));
    }
    let instant = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| wrong())?;
    Ok((instant.unix_timestamp(), false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_nights_and_back_to_back_stays_do_not_overlap() {
        let first = Stay::parse("2027-03-01", "2027-03-03").unwrap();
        let next = Stay::parse("2027-03-03", "2027-03-05").unwrap();
        let inside = Stay::parse("2027-03-02", "2027-03-04").unwrap();
        assert!(first.by_night);
        assert_eq!((first.from(), first.to()), ("2027-03-01".to_owned(), "2027-03-03".to_owned()));
        assert!(!first.overlaps(&next) && !next.overlaps(&first));
        assert!(first.overlaps(&inside) && inside.overlaps(&next));
        assert!(first.overlaps(&first));
        let shown = serde_json::to_value(first).unwrap();
        assert_eq!(shown, serde_json::json!({"from": "2027-03-01", "to": "2027-03-03"}));
        assert_eq!(serde_json::from_value::<Stay>(shown).unwrap(), first);
    }

    #[test]
    fn date_times_keep_their_instant_in_utc() {
        let ride = Stay::parse("2027-03-01T15:00:00+09:00", "2027-03-01T16:30:00+09:00").unwrap();
        assert!(!ride.by_night);
        assert_eq!(ride.from(), "2027-03-01T06:00:00Z");
        assert_eq!(ride.to_s - ride.from_s, 5400);
    }

    #[test]
    fn bad_ranges_say_what_is_wrong() {
        let err = |f, t| Stay::parse(f, t).unwrap_err().0;
        assert!(err("2027-03-03", "2027-03-01").contains("must be after"));
        assert!(err("2027-03-01", "2027-03-01").contains("must be after"));
        assert!(err("2027-03-01", "2027-03-02T10:00:00Z").contains("both"));
        assert!(err("2027-02-30", "2027-03-02").contains("from must be a date"));
        assert!(err("soon", "later").contains("RFC 3339"));
        assert!(err("2027-01-01", "2028-06-01").contains("at most"));
    }
}
