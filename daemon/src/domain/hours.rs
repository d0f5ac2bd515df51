//! A merchant's opening hours, in its local time.

/// A merchant's opening hours (for the off-hours rule): minutes after local midnight, and
/// the local offset from UTC in minutes. `open > close` wraps midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpeningHours {
    pub open_min: u32,
    pub close_min: u32,
    pub utc_offset_min: i32,
}

impl OpeningHours {
    /// Parses `"08:00-22:00"` and an optional `"+08:00"`.
    pub fn parse(hours: &str, offset: Option<&str>) -> Result<OpeningHours, String> {
        let clock = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60 && t.trim().len() == 5).then_some(h * 60 + m)
        };
        let (open, close) = hours
            .split_once('-')
            .and_then(|(a, b)| Some((clock(a)?, clock(b)?)))
            .ok_or_else(|| format!("\"{hours}\" is not a range like \"08:00-22:00\""))?;
        if open == close {
            return Err(format!("\"{hours}\" opens and closes at the same minute"));
        }
        let utc_offset_min = match offset {
            None => 0,
            Some(text) => {
                let sign = match text.as_bytes().first() {
                    Some(b'+') => 1,
                    Some(b'-') => -1,
                    _ => return Err(format!("\"{text}\" is not an offset like \"+08:00\"")),
                };
                let minutes = clock(&text[1..])
                    .filter(|m| *m <= 14 * 60)
                    .ok_or_else(|| format!("\"{text}\" is not an offset like \"+08:00\""))?;
                sign * minutes as i32
            }
        };
        Ok(OpeningHours {
            open_min: open,
            close_min: close,
            utc_offset_min,
        })
    }

    /// Whether the merchant is open at `unix_ms`.
    pub fn is_open(&self, unix_ms: i64) -> bool {
        let local_min =
            (unix_ms.div_euclid(60_000) + i64::from(self.utc_offset_min)).rem_euclid(1440) as u32;
        if self.open_min < self.close_min {
            (self.open_min..self.close_min).contains(&local_min)
        } else {
            local_min >= self.open_min || local_min < self.close_min
        }
    }
}
