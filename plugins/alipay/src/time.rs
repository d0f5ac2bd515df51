//! Alipay's `timestamp`: `yyyy-MM-dd HH:mm:ss` in Beijing time, computed from Unix
//! milliseconds (the host's clock). The plugin has no system clock (WASI's traps), so this
//! is the only calendar code it has: plain Gregorian arithmetic, no tables. Pure.

/// `yyyy-MM-dd HH:mm:ss` in Beijing time (UTC+8, no daylight saving) for a Unix time in
/// milliseconds: Alipay's `timestamp`.
pub fn beijing_timestamp(unix_millis: u64) -> String {
    let seconds = unix_millis / 1000 + 8 * 3600;
    let days = seconds / 86_400;
    let of_day = seconds % 86_400;
    let (year, month, day) = civil_date(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01.
///
/// Counts in 400-year cycles (146097 days each) of years that start on 1 March, so the
/// leap day is the last day of its year and month lengths follow a fixed 153-day pattern
/// per five months.
pub fn civil_date(days: u64) -> (u64, u32, u32) {
    // 1970-01-01 is day 719468 counted from 0000-03-01.
    let since_0000_03_01 = days + 719_468;
    let cycle = since_0000_03_01 / 146_097;
    let day_of_cycle = since_0000_03_01 % 146_097; // 0..=146096
    // Years into the cycle: remove the leap days before `day_of_cycle` (one per 4 years,
    // none per 100, one per 400; the cycle's very last day is the 400th year's leap day).
    let year_of_cycle =
        (day_of_cycle - day_of_cycle / 1460 + day_of_cycle / 36_524 - day_of_cycle / 146_096) / 365; // 0..=399
    let day_of_year =
        day_of_cycle - (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100); // 0..=365
    // Months from March: 31,30,31,30,31 | 31,30,31,30,31 | 31,28/29.
    let month_from_march = (5 * day_of_year + 2) / 153; // 0..=11
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = cycle * 400 + year_of_cycle + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_is_utc_plus_eight() {
        assert_eq!(beijing_timestamp(0), "1970-01-01 08:00:00");
        // The vector's gmt_create, 2019-08-15 15:56:22 Beijing = 07:56:22Z.
        assert_eq!(beijing_timestamp(1_565_855_782_000), "2019-08-15 15:56:22");
        assert_eq!(beijing_timestamp(1_565_855_782_999), "2019-08-15 15:56:22");
        // The Beijing date rolls over at 16:00Z.
        assert_eq!(beijing_timestamp(1_704_038_399_000), "2023-12-31 23:59:59");
        assert_eq!(beijing_timestamp(1_704_038_400_000), "2024-01-01 00:00:00");
        // Leap days, including the century rules.
        assert_eq!(beijing_timestamp(1_709_136_000_000), "2024-02-29 00:00:00");
        assert_eq!(beijing_timestamp(951_753_600_000), "2000-02-29 00:00:00");
        assert_eq!(civil_date(47_541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_date(47_540), (2100, 2, 28));
        assert_eq!(beijing_timestamp(4_102_415_999_000), "2099-12-31 23:59:59");
    }

    #[test]
    fn civil_dates_count_every_day_in_order() {
        // Walk 1970..2500 day by day and check each date follows the previous one.
        let days_in = |y: u64, m: u32| match m {
            4 | 6 | 9 | 11 => 30,
            2 if (y.is_multiple_of(4) && !y.is_multiple_of(100)) || y.is_multiple_of(400) => 29,
            2 => 28,
            _ => 31,
        };
        let mut expected = (1970u64, 1u32, 1u32);
        for days in 0..193_000u64 {
            assert_eq!(civil_date(days), expected, "day {days}");
            let (y, m, d) = expected;
            expected = if d < days_in(y, m) {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
        // Far away still works (no overflow).
        let _ = beijing_timestamp(u64::MAX);
    }
}
