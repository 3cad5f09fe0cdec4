//! Times as the CLI and the desktop app show them: UTC calendar dates of Unix times, and
//! durations or positions in a song as a clock reads them.

/// `M:SS`, or `H:MM:SS` from an hour on, of a duration or a position in seconds (rounded;
/// negative reads as 0:00).
pub fn clock(secs: f64) -> String {
    let total = secs.max(0.0).round() as u64;
    let (hours, minutes, seconds) = (total / 3600, (total / 60) % 60, total % 60);
    if hours > 0 {
        format!("{hours}:{minutes:02}:{seconds:02}")
    } else {
        format!("{minutes}:{seconds:02}")
    }
}

/// `YYYY-MM-DD` (UTC, proleptic Gregorian calendar) for seconds since the Unix epoch.
pub fn utc_date(unix_secs: i64) -> String {
    let (year, month, day) = civil_from_days(unix_secs.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub fn utc_date_time(unix_secs: i64) -> String {
    let secs_of_day = unix_secs.rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        utc_date(unix_secs),
        secs_of_day / 3600,
        (secs_of_day / 60) % 60
    )
}

/// (year, month, day) of a count of days since 1970-01-01: Howard Hinnant's days-to-civil
/// algorithm, in eras of 400 years.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    (year_of_era + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_a_clock() {
        assert_eq!(clock(83.4), "1:23");
        assert_eq!(clock(59.6), "1:00");
        assert_eq!(clock(3725.0), "1:02:05");
        assert_eq!(clock(-3.0), "0:00");
    }

    #[test]
    fn unix_times_read_as_utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_764_000_000), "2025-11-24");
        assert_eq!(utc_date_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date_time(-60), "1969-12-31 23:59 UTC");
        // A leap day, and the last minute of a century year that is a leap year.
        assert_eq!(utc_date_time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date_time(978_307_140), "2000-12-31 23:59 UTC");
        // 2100 is not a leap year: 28 February is followed by 1 March.
        assert_eq!(
            utc_date_time(4_107_542_400 - 86_400),
            "2100-02-28 00:00 UTC"
        );
        assert_eq!(utc_date_time(4_107_542_400), "2100-03-01 00:00 UTC");
        assert_eq!(utc_date_time(1_795_942_800), "2026-11-29 09:00 UTC");
    }
}
