//! Human forms of times and durations: durations given as `90s`, `15m`,
//! `7d` on the command line, and wall-clock milliseconds printed as
//! RFC 3339 in text output (`--json` keeps the milliseconds).

use std::time::Duration;

/// Parses a duration: a number and an optional unit, `ms`, `s` (the
/// default), `m`, `h`, `d` or `w`; e.g. `90`, `90s`, `1.5h`, `7d`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let seconds_per_unit = match unit.trim() {
        "ms" => 0.001,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        other => {
            return Err(format!(
                "{text}: unknown unit {other:?} (use ms, s, m, h, d or w, e.g. 90s, 15m, 7d)"
            ));
        }
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text}: not a duration (a number and a unit, e.g. 90s, 15m, 7d)"))?;
    Duration::try_from_secs_f64(value * seconds_per_unit).map_err(|_| format!("{text}: out of range"))
}

/// `ms` milliseconds after the Unix epoch as RFC 3339 in UTC, to the
/// millisecond: `2026-12-04T19:54:56.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, of_day) = (seconds / 86_400, seconds % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60,
        ms % 1000
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01, counted in
/// 400-year eras of 146,097 days that start on 1 March (so the leap day
/// ends a year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let shifted = days + 719_468; // days from 0000-03-01
    let era = shifted / 146_097;
    let of_era = shifted % 146_097;
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_a_unit_or_mean_seconds() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("2w"), Ok(Duration::from_secs(14 * 86_400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        for bad in ["", "m", "15x", "-5s", "1.2.3s", "7 days"] {
            let error = parse_duration(bad).expect_err(bad);
            assert!(error.starts_with(bad), "{error}");
        }
    }

    #[test]
    fn times_print_as_rfc3339_in_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_413_496_123), "2026-12-04T19:44:56.123Z");
        assert_eq!(rfc3339(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
        assert_eq!(rfc3339(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }
}
