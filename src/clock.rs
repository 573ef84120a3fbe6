//! The current time in the configured zone, never the host's local zone.
//!
//! chrono-tz compiles the IANA database into the binary, so the container
//! image needs no tzdata and `TZ` on the host changes nothing.

use chrono::{DateTime, Offset, Utc};
use chrono_tz::Tz;

/// A moment, as shown to visitors.
#[derive(Debug, Clone)]
pub struct Now {
    /// The moment in the configured zone.
    pub local: DateTime<Tz>,
    /// The zone's offset from UTC at that moment, in seconds.
    pub offset_seconds: i32,
}

impl Now {
    /// The current moment in `zone`.
    pub fn in_zone(zone: Tz) -> Self {
        Self::at(Utc::now(), zone)
    }

    /// A given moment in `zone`.
    pub fn at(utc: DateTime<Utc>, zone: Tz) -> Self {
        let local = utc.with_timezone(&zone);
        let offset_seconds = local.offset().fix().local_minus_utc();
        Now {
            local,
            offset_seconds,
        }
    }

    /// The offset as `+03:00` (chrono's `%:z`).
    pub fn utc_offset(&self) -> String {
        self.local.format("%:z").to_string()
    }

    /// RFC 3339 with the zone's offset and milliseconds.
    pub fn rfc3339(&self) -> String {
        self.local
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
    }

    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(&self) -> i64 {
        self.local.timestamp_millis()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn moscow_is_three_hours_ahead_of_utc_in_winter_and_summer() {
        for (m, d) in [(1, 15), (7, 15)] {
            let utc = Utc.with_ymd_and_hms(2026, m, d, 12, 0, 0).unwrap();
            let now = Now::at(utc, chrono_tz::Europe::Moscow);
            assert_eq!(now.utc_offset(), "+03:00");
            assert_eq!(
                now.rfc3339(),
                format!("2026-{m:02}-{d:02}T15:00:00.000+03:00")
            );
        }
    }

    #[test]
    fn negative_and_half_hour_offsets_are_formatted() {
        let utc = Utc.with_ymd_and_hms(2026, 1, 15, 12, 0, 0).unwrap();
        assert_eq!(
            Now::at(utc, chrono_tz::America::St_Johns).utc_offset(),
            "-03:30"
        );
        assert_eq!(
            Now::at(utc, chrono_tz::Asia::Kolkata).utc_offset(),
            "+05:30"
        );
    }
}
