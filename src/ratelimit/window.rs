//! The calendar windows of quotas: a UTC day (00:00:00Z to the next 00:00:00Z) or a UTC
//! month (the 1st at 00:00:00Z to the next 1st), in Unix seconds. Pure arithmetic on a
//! given instant, so it is tested without a clock; which clock gives the instant is the
//! store's business (`quota`: this instance's wall clock; `shared`: Redis' `TIME`, choosing
//! among the windows around this instance's).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Period;

const DAY: u64 = 86_400;

/// `[start, end)` in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window {
    pub start: u64,
    pub end: u64,
}

impl Window {
    /// The window of `period` that holds the instant `now` (Unix seconds).
    pub fn containing(period: Period, now: u64) -> Window {
        let day = now / DAY;
        match period {
            Period::Day => Window {
                start: day * DAY,
                end: (day + 1) * DAY,
            },
            Period::Month => {
                let (year, month) = year_month(day);
                let (next_year, next_month) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                Window {
                    start: first_of_month(year, month) * DAY,
                    end: first_of_month(next_year, next_month) * DAY,
                }
            }
        }
    }

    /// The window before this one, then this one, then the next: the candidates a store
    /// with another clock chooses from (see `shared`).
    pub fn around(period: Period, now: u64) -> [Window; 3] {
        let current = Window::containing(period, now);
        let previous = Window::containing(period, current.start.saturating_sub(1));
        [previous, current, Window::containing(period, current.end)]
    }

    /// The window's length in seconds (`w` in `RateLimit-Policy`).
    pub fn seconds(&self) -> u64 {
        self.end - self.start
    }

    /// Seconds from `now` until the window ends and the quota is whole again.
    pub fn resets_in(&self, now: u64) -> u64 {
        self.end.saturating_sub(now)
    }

    /// The instant the window ends, RFC 3339 in UTC: `2026-11-30T00:00:00Z`.
    pub fn resets_at(&self) -> String {
        let end = UNIX_EPOCH + Duration::from_secs(self.end);
        humantime::format_rfc3339_seconds(end).to_string()
    }
}

/// Now in Unix seconds, by this instance's wall clock (UTC). Quota windows are calendar
/// dates, which the monotonic clock of the rules does not know.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The (year, month 1..=12) of the day `days` after 1970-01-01. Counted in 400-year eras
/// of 146097 days, with years starting on 1 March so that a leap day ends its year.
fn year_month(days: u64) -> (u64, u64) {
    // Days from 0000-03-01 (proleptic Gregorian) to 1970-01-01.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    // 0 = March ... 11 = February; 153 days make five months (31, 30, 31, 30, 31).
    let shifted_month = (5 * day_of_year + 2) / 153;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month)
}

/// Days from 1970-01-01 to the 1st of `month` in `year` (a year from 1970 on).
fn first_of_month(year: u64, month: u64) -> u64 {
    let (year, shifted_month) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = year / 400;
    let year_of_era = year % 400;
    let day_of_year = (153 * shifted_month + 2) / 5;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unix seconds of an RFC 3339 instant.
    fn at(text: &str) -> u64 {
        humantime::parse_rfc3339(text)
            .expect("an RFC 3339 instant")
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    }

    fn window(period: Period, now: &str) -> (String, String) {
        let w = Window::containing(period, at(now));
        let start = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(w.start));
        (start.to_string(), w.resets_at())
    }

    #[test]
    fn a_day_runs_from_midnight_to_midnight_utc() {
        assert_eq!(
            window(Period::Day, "2026-11-29T13:45:10Z"),
            ("2026-11-29T00:00:00Z".into(), "2026-11-30T00:00:00Z".into())
        );
        // The first and the last second belong to it; midnight starts the next day.
        assert_eq!(
            window(Period::Day, "2026-11-29T00:00:00Z").0,
            "2026-11-29T00:00:00Z"
        );
        assert_eq!(
            window(Period::Day, "2026-11-29T23:59:59Z").1,
            "2026-11-30T00:00:00Z"
        );
        let w = Window::containing(Period::Day, at("2026-11-29T23:00:00Z"));
        assert_eq!(w.seconds(), 86_400);
        assert_eq!(w.resets_in(at("2026-11-29T23:00:00Z")), 3_600);
        assert_eq!(w.resets_in(at("2026-11-30T00:00:01Z")), 0, "never negative");
    }

    #[test]
    fn a_month_runs_from_the_first_to_the_next_first() {
        assert_eq!(
            window(Period::Month, "2026-11-29T13:45:10Z"),
            ("2026-11-01T00:00:00Z".into(), "2026-12-01T00:00:00Z".into())
        );
        // End of a 31-day month, to the second.
        assert_eq!(
            window(Period::Month, "2026-01-31T23:59:59Z"),
            ("2026-01-01T00:00:00Z".into(), "2026-02-01T00:00:00Z".into())
        );
        assert_eq!(
            window(Period::Month, "2026-02-01T00:00:00Z").0,
            "2026-02-01T00:00:00Z"
        );
        // December to January: the year turns.
        assert_eq!(
            window(Period::Month, "2026-12-31T23:59:59Z"),
            ("2026-12-01T00:00:00Z".into(), "2027-01-01T00:00:00Z".into())
        );
        assert_eq!(
            window(Period::Month, "2027-01-01T00:00:00Z"),
            ("2027-01-01T00:00:00Z".into(), "2027-02-01T00:00:00Z".into())
        );
        let november = Window::containing(Period::Month, at("2026-11-15T00:00:00Z"));
        assert_eq!(november.seconds(), 30 * 86_400);
        assert_eq!(november.resets_in(at("2026-11-30T12:00:00Z")), 12 * 3_600);
    }

    #[test]
    fn february_has_29_days_in_a_leap_year_only() {
        let days = |now: &str| Window::containing(Period::Month, at(now)).seconds() / 86_400;
        assert_eq!(days("2026-02-10T00:00:00Z"), 28);
        assert_eq!(days("2028-02-10T00:00:00Z"), 29);
        // Centuries are leap years only when divisible by 400.
        assert_eq!(days("2100-02-10T00:00:00Z"), 28);
        assert_eq!(days("2000-02-10T00:00:00Z"), 29);
        assert_eq!(
            window(Period::Month, "2028-02-29T23:59:59Z"),
            ("2028-02-01T00:00:00Z".into(), "2028-03-01T00:00:00Z".into())
        );
        assert_eq!(
            window(Period::Day, "2028-02-29T12:00:00Z"),
            ("2028-02-29T00:00:00Z".into(), "2028-03-01T00:00:00Z".into())
        );
        assert_eq!(
            window(Period::Month, "2028-03-01T00:00:00Z").0,
            "2028-03-01T00:00:00Z"
        );
    }

    #[test]
    fn every_month_of_four_centuries_follows_the_one_before() {
        // Each window ends where the next begins, from 1970 to 2370, and lasts 28 to 31 days.
        let mut w = Window::containing(Period::Month, 0);
        assert_eq!(w.start, 0);
        for _ in 0..12 * 400 {
            let next = Window::containing(Period::Month, w.end);
            assert_eq!(next.start, w.end);
            assert!((28..=31).contains(&(next.seconds() / 86_400)), "{next:?}");
            w = next;
        }
        assert_eq!(w.resets_at(), "2370-02-01T00:00:00Z");
    }

    #[test]
    fn the_windows_around_an_instant_are_adjacent() {
        let [previous, current, next] = Window::around(Period::Month, at("2027-01-15T08:00:00Z"));
        assert_eq!(previous.end, current.start);
        assert_eq!(current.end, next.start);
        assert_eq!(previous.resets_at(), "2027-01-01T00:00:00Z");
        assert_eq!(next.resets_at(), "2027-03-01T00:00:00Z");
        let [previous, _, next] = Window::around(Period::Day, at("2028-03-01T00:00:00Z"));
        assert_eq!(previous.start, at("2028-02-29T00:00:00Z"));
        assert_eq!(next.end, at("2028-03-03T00:00:00Z"));
    }
}
