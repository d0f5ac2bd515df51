//! RFC 3339 times in China Standard Time (`+08:00`), the form WeChat Pay v3 uses for
//! `time_expire`, computed from Unix milliseconds. The plugin has no system clock (WASI's
//! traps), so this is the only calendar code it has: plain Gregorian arithmetic, no tables.

/// China Standard Time is UTC+8 all year (no daylight saving).
const OFFSET_SECONDS: u64 = 8 * 3600;
const SECONDS_PER_DAY: u64 = 86_400;
/// Any 400 consecutive Gregorian years hold exactly 97 leap years: 400 * 365 + 97 days.
const DAYS_PER_400_YEARS: u64 = 146_097;
/// The last year with four digits; RFC 3339 has no room for more.
const YEAR_MAX: u64 = 9999;

fn is_leap(year: u64) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_year(year: u64) -> u64 {
    if is_leap(year) { 366 } else { 365 }
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// `unix_millis` as `YYYY-MM-DDTHH:MM:SS+08:00` (whole seconds; the milliseconds are
/// dropped, not rounded). `None` past the year 9999.
pub fn rfc3339_china(unix_millis: u64) -> Option<String> {
    let local = unix_millis / 1000 + OFFSET_SECONDS;
    let mut days = local / SECONDS_PER_DAY;
    let second_of_day = local % SECONDS_PER_DAY;

    let mut year = 1970 + 400 * (days / DAYS_PER_400_YEARS);
    days %= DAYS_PER_400_YEARS;
    while days >= days_in_year(year) {
        days -= days_in_year(year);
        year += 1;
    }
    let mut month = 1;
    while days >= days_in_month(year, month) {
        days -= days_in_month(year, month);
        month += 1;
    }
    if year > YEAR_MAX {
        return None;
    }
    Some(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}+08:00",
        day = days + 1,
        hour = second_of_day / 3600,
        minute = second_of_day % 3600 / 60,
        second = second_of_day % 60,
    ))
}

/// The `time_expire` of an order placed at `now_millis` that must be paid within
/// `expires_in_seconds`.
pub fn expiry(now_millis: u64, expires_in_seconds: u32) -> Option<String> {
    let at = now_millis.checked_add(u64::from(expires_in_seconds) * 1000)?;
    rfc3339_china(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Milliseconds of a UTC civil time, computed independently (a day count per year).
    fn utc_millis(year: u64, month: u64, day: u64, h: u64, m: u64, s: u64) -> u64 {
        let mut days = 0;
        for y in 1970..year {
            days += if is_leap(y) { 366 } else { 365 };
        }
        for mo in 1..month {
            days += days_in_month(year, mo);
        }
        days += day - 1;
        ((days * 24 + h) * 60 + m) * 60 * 1000 + s * 1000
    }

    #[test]
    fn the_epoch_is_eight_in_the_morning_in_beijing() {
        assert_eq!(rfc3339_china(0).unwrap(), "1970-01-01T08:00:00+08:00");
    }

    #[test]
    fn the_documented_example_round_trips() {
        // WeChat Pay's own example: 2018-06-08T10:34:56+08:00 is 02:34:56 UTC.
        let millis = utc_millis(2018, 6, 8, 2, 34, 56);
        assert_eq!(millis, 1_528_425_296_000);
        assert_eq!(rfc3339_china(millis).unwrap(), "2018-06-08T10:34:56+08:00");
    }

    #[test]
    fn milliseconds_are_dropped_not_rounded() {
        assert_eq!(rfc3339_china(999).unwrap(), "1970-01-01T08:00:00+08:00");
        assert_eq!(rfc3339_china(1_999).unwrap(), "1970-01-01T08:00:01+08:00");
    }

    #[test]
    fn the_day_rolls_over_at_sixteen_utc() {
        let before = utc_millis(2024, 3, 14, 15, 59, 59);
        let at = utc_millis(2024, 3, 14, 16, 0, 0);
        assert_eq!(rfc3339_china(before).unwrap(), "2024-03-14T23:59:59+08:00");
        assert_eq!(rfc3339_china(at).unwrap(), "2024-03-15T00:00:00+08:00");
    }

    #[test]
    fn month_and_year_ends_roll_over_in_local_time() {
        let cases = [
            ((2023, 1, 31, 16, 0, 0), "2023-02-01T00:00:00+08:00"),
            ((2023, 4, 30, 16, 0, 0), "2023-05-01T00:00:00+08:00"),
            ((2023, 12, 31, 15, 59, 59), "2023-12-31T23:59:59+08:00"),
            ((2023, 12, 31, 16, 0, 0), "2024-01-01T00:00:00+08:00"),
            ((2024, 6, 30, 20, 30, 5), "2024-07-01T04:30:05+08:00"),
        ];
        for ((y, mo, d, h, mi, s), expected) in cases {
            assert_eq!(
                rfc3339_china(utc_millis(y, mo, d, h, mi, s)).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn leap_years_follow_the_gregorian_rules() {
        // 2024: divisible by 4. 2100: by 100, not a leap year. 2000: by 400, a leap year.
        let cases = [
            ((2024, 2, 28, 16, 0, 0), "2024-02-29T00:00:00+08:00"),
            ((2024, 2, 29, 16, 0, 0), "2024-03-01T00:00:00+08:00"),
            ((2023, 2, 28, 16, 0, 0), "2023-03-01T00:00:00+08:00"),
            ((2100, 2, 28, 16, 0, 0), "2100-03-01T00:00:00+08:00"),
            ((2000, 2, 28, 16, 0, 0), "2000-02-29T00:00:00+08:00"),
            ((2000, 12, 31, 12, 0, 0), "2000-12-31T20:00:00+08:00"),
        ];
        for ((y, mo, d, h, mi, s), expected) in cases {
            assert_eq!(
                rfc3339_china(utc_millis(y, mo, d, h, mi, s)).unwrap(),
                expected
            );
        }
    }

    #[test]
    fn every_day_of_four_centuries_is_consistent() {
        // Walk 1970-01-01 .. 2370 day by day: the date must advance by exactly one day.
        let mut previous = rfc3339_china(0).unwrap();
        for day in 1..DAYS_PER_400_YEARS {
            let now = rfc3339_china(day * SECONDS_PER_DAY * 1000).unwrap();
            assert!(now > previous, "{previous} then {now}");
            assert!(now.ends_with("T08:00:00+08:00"));
            previous = now;
        }
        assert_eq!(previous, "2369-12-31T08:00:00+08:00");
    }

    #[test]
    fn expiry_adds_the_seconds_and_stops_at_year_9999() {
        let now = utc_millis(2024, 12, 31, 15, 55, 0);
        assert_eq!(expiry(now, 300).unwrap(), "2025-01-01T00:00:00+08:00");
        assert_eq!(expiry(now, 0).unwrap(), "2024-12-31T23:55:00+08:00");
        assert!(rfc3339_china(utc_millis(9999, 12, 31, 15, 59, 59)).is_some());
        assert!(rfc3339_china(utc_millis(9999, 12, 31, 16, 0, 0)).is_none());
        assert!(expiry(u64::MAX, 1).is_none());
        assert!(rfc3339_china(u64::MAX).is_none());
    }
}
