//! Wall-clock times of pushes, with the precision and formats upstream shows them in.

use std::time::{SystemTime, UNIX_EPOCH};

/// A point in time as nanoseconds since the Unix epoch; `Timestamp::ZERO` stands for "never",
/// which upstream shows as the value `0`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub const ZERO: Timestamp = Timestamp(0);

    pub fn now() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        Timestamp(nanos)
    }

    pub fn from_nanos(nanos: i64) -> Self {
        Timestamp(nanos)
    }

    pub fn as_nanos(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// This time plus `duration`, the far future if that does not fit.
    pub fn saturating_add(self, duration: std::time::Duration) -> Timestamp {
        let nanos = i64::try_from(duration.as_nanos()).unwrap_or(i64::MAX);
        Timestamp(self.0.saturating_add(nanos))
    }

    /// How long from this time until `later` (zero if `later` is not later).
    pub fn until(self, later: Timestamp) -> std::time::Duration {
        std::time::Duration::from_nanos(u64::try_from(later.0.saturating_sub(self.0)).unwrap_or(0))
    }

    /// Unix seconds as a float, the value of `push_time_seconds`.
    pub fn as_seconds_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// RFC 3339 with nanoseconds in UTC, as Go's `time.RFC3339Nano` prints it: trailing zeros of
    /// the fraction dropped, no fraction when it is zero.
    pub fn rfc3339_nanos(self) -> String {
        let nanos = self.0.rem_euclid(1_000_000_000);
        let mut out = self.rfc3339_seconds();
        if nanos != 0 {
            let fraction = format!("{nanos:09}");
            out.push('.');
            out.push_str(fraction.trim_end_matches('0'));
        }
        out.push('Z');
        out
    }

    /// RFC 3339 in UTC with exactly three fraction digits, as log lines show time.
    pub fn rfc3339_millis(self) -> String {
        let millis = self.0.rem_euclid(1_000_000_000) / 1_000_000;
        format!("{}.{millis:03}Z", self.rfc3339_seconds())
    }

    /// `YYYY-MM-DDTHH:MM:SS` in UTC.
    fn rfc3339_seconds(self) -> String {
        let secs = self.0.div_euclid(1_000_000_000);
        let days = secs.div_euclid(86_400);
        let secs_of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            secs_of_day / 3600,
            secs_of_day / 60 % 60,
            secs_of_day % 60
        )
    }
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day), using Howard
/// Hinnant's `civil_from_days` algorithm.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_like_go() {
        assert_eq!(Timestamp::ZERO.rfc3339_nanos(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_nanos(1_583_781_848_025_744_841).rfc3339_nanos(),
            "2020-03-09T19:24:08.025744841Z"
        );
        assert_eq!(
            Timestamp::from_nanos(1_795_727_317_690_000_000).rfc3339_nanos(),
            "2026-11-26T21:08:37.69Z"
        );
        assert_eq!(
            Timestamp::from_nanos(951_782_400_000_000_000).rfc3339_nanos(),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            Timestamp::from_nanos(1_795_727_317_690_000_000).rfc3339_millis(),
            "2026-11-26T21:08:37.690Z"
        );
    }

    #[test]
    fn seconds_keep_nanosecond_precision_as_far_as_f64_can() {
        let t = Timestamp::from_nanos(1_583_781_848_025_744_841);
        assert_eq!(
            crate::go::float_string(t.as_seconds_f64()),
            "1.583781848025745e+09"
        );
    }
}
