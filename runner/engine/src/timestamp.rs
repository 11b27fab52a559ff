//! Time values handed to the engine by its caller (the engine never reads a clock).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::time::Duration;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant, serialized as an RFC 3339 string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub OffsetDateTime);

impl Timestamp {
    pub const UNIX_EPOCH: Timestamp = Timestamp(OffsetDateTime::UNIX_EPOCH);

    pub fn from_unix_millis(ms: i64) -> Timestamp {
        Timestamp(OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms))
    }
    pub fn unix_millis(&self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1_000_000) as i64
    }
    /// Parse an ASL timestamp: RFC 3339 with an uppercase `T` and, if no offset, an uppercase `Z`.
    pub fn parse(s: &str) -> Option<Timestamp> {
        if s.len() < 11 || s.as_bytes()[10] != b'T' || s.ends_with('z') {
            return None;
        }
        OffsetDateTime::parse(s, &Rfc3339).ok().map(Timestamp)
    }
    /// RFC 3339 in UTC with millisecond precision, like Step Functions' context timestamps.
    pub fn to_rfc3339(&self) -> String {
        let t = self.0.to_offset(time::UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            t.month() as u8,
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        )
    }
    pub fn add(&self, d: Duration) -> Timestamp {
        Timestamp(self.0 + d)
    }
    /// `self - earlier`, zero if `earlier` is later.
    pub fn since(&self, earlier: Timestamp) -> Duration {
        let d = self.0 - earlier.0;
        if d.is_negative() {
            Duration::ZERO
        } else {
            d.unsigned_abs()
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0.format(&Rfc3339).map_err(serde::ser::Error::custom)?;
        s.serialize_str(&t)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        OffsetDateTime::parse(&s, &Rfc3339)
            .map(Timestamp)
            .map_err(serde::de::Error::custom)
    }
}
