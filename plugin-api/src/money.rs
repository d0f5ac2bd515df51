//! Money across the boundary: integer minor units with the currency's exponent, converted to
//! and from decimal strings exactly (no floats anywhere).

use crate::Money;

impl Money {
    /// `12.50 CNY` from ("12.50", "CNY", 2). Refuses signs, exponents, more decimals than
    /// `exponent`, and values that do not fit in i64 minor units.
    pub fn from_decimal(text: &str, currency: &str, exponent: u8) -> Result<Money, String> {
        let (whole, fraction) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        let digits_only = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) {
            return Err(format!("\"{text}\" is not a plain decimal amount"));
        }
        if text.contains('.') && fraction.is_empty() {
            return Err(format!("\"{text}\" ends with a decimal point"));
        }
        if fraction.len() > usize::from(exponent) {
            return Err(format!(
                "\"{text}\" has more decimals than {currency} allows ({exponent})"
            ));
        }
        let scale = 10i64
            .checked_pow(u32::from(exponent))
            .ok_or_else(|| format!("exponent {exponent} is too large"))?;
        let too_large = || format!("\"{text}\" is too large");
        let whole: i64 = whole.parse().map_err(|_| too_large())?;
        let mut fraction_minor: i64 = if fraction.is_empty() {
            0
        } else {
            fraction.parse().map_err(|_| too_large())?
        };
        for _ in fraction.len()..usize::from(exponent) {
            fraction_minor *= 10;
        }
        let minor = whole
            .checked_mul(scale)
            .and_then(|m| m.checked_add(fraction_minor))
            .ok_or_else(too_large)?;
        Ok(Money {
            minor,
            currency: currency.to_owned(),
            exponent,
        })
    }

    /// The amount as a decimal string with exactly `exponent` decimals: `"12.50"`.
    pub fn to_decimal_string(&self) -> String {
        let exponent = usize::from(self.exponent);
        let sign = if self.minor < 0 { "-" } else { "" };
        let digits = self.minor.unsigned_abs().to_string();
        if exponent == 0 {
            return format!("{sign}{digits}");
        }
        let padded = format!("{digits:0>width$}", width = exponent + 1);
        let (whole, fraction) = padded.split_at(padded.len() - exponent);
        format!("{sign}{whole}.{fraction}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(text: &str) -> Result<i64, String> {
        Money::from_decimal(text, "CNY", 2).map(|m| m.minor)
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(cny("12.50"), Ok(1250));
        assert_eq!(cny("12.5"), Ok(1250));
        assert_eq!(cny("0.01"), Ok(1));
        assert_eq!(cny("7"), Ok(700));
        assert_eq!(Money::from_decimal("1500", "JPY", 0).unwrap().minor, 1500);
    }

    #[test]
    fn refuses_what_is_not_plain_money() {
        for bad in [
            "", ".5", "5.", "-1", "+1", "1e3", "1.234", "1,00", " 1", "９",
        ] {
            assert!(cny(bad).is_err(), "{bad:?}");
        }
        assert!(Money::from_decimal("1.5", "JPY", 0).is_err());
        assert!(cny("92233720368547758.08").is_err());
    }

    #[test]
    fn formats_with_the_exponent() {
        let m = |minor, exponent| Money {
            minor,
            currency: "X".into(),
            exponent,
        };
        assert_eq!(m(1250, 2).to_decimal_string(), "12.50");
        assert_eq!(m(1, 2).to_decimal_string(), "0.01");
        assert_eq!(m(0, 2).to_decimal_string(), "0.00");
        assert_eq!(m(1500, 0).to_decimal_string(), "1500");
        assert_eq!(m(-5, 2).to_decimal_string(), "-0.05");
        assert_eq!(m(i64::MIN, 2).to_decimal_string(), "-92233720368547758.08");
    }

    #[test]
    fn round_trips() {
        for text in ["0.00", "0.01", "12.50", "99999999.99"] {
            assert_eq!(
                Money::from_decimal(text, "CNY", 2)
                    .unwrap()
                    .to_decimal_string(),
                text
            );
        }
    }
}
