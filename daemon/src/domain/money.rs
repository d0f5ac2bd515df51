//! Money: `rust_decimal` amounts in an ISO 4217 currency, never floats.
//!
//! Amounts arrive as decimal strings (API.md §1): `"12.50"` with `"CNY"`. They must be plain
//! decimals (no sign, exponent, spaces or separators), greater than zero, with no more
//! decimals than the currency's minor unit, and at most the configured per-payment maximum.
//! Plugins receive integer minor units with the exponent (`1250`, `2`).

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;

/// The largest amount paygate takes in any currency, in major units: the ceiling of the
/// configurable per-payment maximum (`payments.amount_max`). Far above any real payment,
/// and far enough below `Decimal`'s and `i64`'s limits that every accepted amount is held
/// at its currency's scale and fits `i64` minor units.
pub const AMOUNT_CEILING: i64 = 1_000_000_000_000;

/// A currency this gateway handles, with its minor-unit exponent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

/// ISO 4217 codes and minor units of the currencies paygate accepts.
const CURRENCIES: &[Currency] = &[
    Currency {
        code: "CNY",
        exponent: 2,
    },
    Currency {
        code: "EUR",
        exponent: 2,
    },
    Currency {
        code: "GBP",
        exponent: 2,
    },
    Currency {
        code: "HKD",
        exponent: 2,
    },
    Currency {
        code: "JPY",
        exponent: 0,
    },
    Currency {
        code: "KRW",
        exponent: 0,
    },
    Currency {
        code: "SGD",
        exponent: 2,
    },
    Currency {
        code: "USD",
        exponent: 2,
    },
];

impl Currency {
    /// The currency with ISO code `code` (upper case), if paygate handles it.
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES.iter().copied().find(|c| c.code == code)
    }

    pub fn code(self) -> &'static str {
        self.code
    }

    /// Decimal places of the minor unit (2 for CNY, 0 for JPY).
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// Every supported code, for error messages.
    pub fn supported_codes() -> Vec<&'static str> {
        CURRENCIES.iter().map(|c| c.code).collect()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// A non-negative amount of one currency, at exactly the currency's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

/// Why an amount was refused; the message is meant for the API client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("currency \"{0}\" is not supported; use one of {1}")]
    UnknownCurrency(String, String),
    #[error("amount \"{0}\" is not a plain decimal string like \"12.50\"")]
    NotDecimal(String),
    #[error("amount \"{amount}\" has more decimals than {currency} allows ({exponent})")]
    TooManyDecimals {
        amount: String,
        currency: Currency,
        exponent: u8,
    },
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount {amount} {currency} is above the maximum of {maximum} {currency} per payment")]
    AboveMaximum {
        amount: String,
        currency: Currency,
        maximum: String,
    },
}

impl Money {
    /// Parses a client's amount string in `currency` (ISO code), applying API.md §1.
    pub fn parse(amount: &str, currency: &str) -> Result<Money, MoneyError> {
        let currency = Currency::from_code(currency).ok_or_else(|| {
            MoneyError::UnknownCurrency(currency.to_owned(), Currency::supported_codes().join(", "))
        })?;
        let plain = !amount.is_empty()
            && amount.len() <= 32
            && amount.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && amount.bytes().filter(|&b| b == b'.').count() <= 1
            && !amount.starts_with('.')
            && !amount.ends_with('.');
        if !plain {
            return Err(MoneyError::NotDecimal(amount.to_owned()));
        }
        let decimal =
            Decimal::from_str(amount).map_err(|_| MoneyError::NotDecimal(amount.to_owned()))?;
        if decimal.scale() > u32::from(currency.exponent) {
            return Err(MoneyError::TooManyDecimals {
                amount: amount.to_owned(),
                currency,
                exponent: currency.exponent,
            });
        }
        if decimal <= Decimal::ZERO {
            return Err(MoneyError::NotPositive);
        }
        // Refunds take no configured maximum: without this, a 20-digit amount would
        // overflow `minor()`, and a 29-digit one could not be held at the currency's scale.
        if decimal > Decimal::from(AMOUNT_CEILING) {
            return Err(MoneyError::AboveMaximum {
                amount: amount.to_owned(),
                currency,
                maximum: AMOUNT_CEILING.to_string(),
            });
        }
        Ok(Money::new(decimal, currency))
    }

    /// `amount` rescaled to the currency's exponent.
    fn new(mut amount: Decimal, currency: Currency) -> Money {
        amount.rescale(u32::from(currency.exponent));
        Money { amount, currency }
    }

    /// Zero of `currency`.
    pub fn zero(currency: Currency) -> Money {
        Money::new(Decimal::ZERO, currency)
    }

    /// From integer minor units (what plugins and the store use).
    pub fn from_minor(minor: i64, currency: Currency) -> Money {
        Money::new(Decimal::new(minor, u32::from(currency.exponent)), currency)
    }

    /// The amount in minor units. Amounts are bounded by [`AMOUNT_CEILING`], so this
    /// always fits; the `expect` states that invariant.
    pub fn minor(&self) -> i64 {
        let mut scaled = self.amount;
        scaled.rescale(u32::from(self.currency.exponent));
        i64::try_from(scaled.mantissa())
            .expect("amounts are bounded far below i64::MAX minor units")
    }

    pub fn currency(&self) -> Currency {
        self.currency
    }

    pub fn decimal(&self) -> Decimal {
        self.amount
    }

    /// Refuses amounts above `maximum` (in major units of this currency).
    pub fn check_maximum(&self, maximum: Decimal) -> Result<(), MoneyError> {
        if self.amount > maximum {
            return Err(MoneyError::AboveMaximum {
                amount: self.to_string(),
                currency: self.currency,
                maximum: maximum.to_string(),
            });
        }
        Ok(())
    }

    /// `self + other`; both must be in the same currency (a caller's invariant).
    pub fn checked_add(&self, other: &Money) -> Option<Money> {
        (self.currency == other.currency)
            .then(|| self.amount.checked_add(other.amount))
            .flatten()
            .map(|sum| Money::new(sum, self.currency))
    }

    /// `self - other`, if both share a currency and the result is not negative.
    pub fn checked_sub(&self, other: &Money) -> Option<Money> {
        (self.currency == other.currency && self.amount >= other.amount)
            .then(|| Money::new(self.amount - other.amount, self.currency))
    }
}

impl fmt::Display for Money {
    /// The amount as the API shows it: `"12.50"`, `"1500"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.amount)
    }
}

impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        (self.currency == other.currency).then(|| self.amount.cmp(&other.amount))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_amounts_at_the_currency_scale() {
        let m = Money::parse("12.5", "CNY").unwrap();
        assert_eq!(m.to_string(), "12.50");
        assert_eq!(m.minor(), 1250);
        assert_eq!(Money::parse("1500", "JPY").unwrap().to_string(), "1500");
        assert_eq!(Money::parse("0.01", "USD").unwrap().minor(), 1);
        assert_eq!(Money::parse("007.10", "EUR").unwrap().to_string(), "7.10");
    }

    #[test]
    fn refuses_what_section_1_forbids() {
        for bad in [
            "", "-1", "+1", "1e3", "1,00", " 1", "1 ", ".5", "5.", "1.2.3", "０", "NaN", "0x10",
        ] {
            assert!(
                matches!(Money::parse(bad, "CNY"), Err(MoneyError::NotDecimal(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            Money::parse("12.345", "CNY"),
            Err(MoneyError::TooManyDecimals { exponent: 2, .. })
        ));
        assert!(matches!(
            Money::parse("1.5", "JPY"),
            Err(MoneyError::TooManyDecimals { exponent: 0, .. })
        ));
        assert_eq!(Money::parse("0", "CNY"), Err(MoneyError::NotPositive));
        assert_eq!(Money::parse("0.00", "CNY"), Err(MoneyError::NotPositive));
        assert!(matches!(
            Money::parse("1", "cny"),
            Err(MoneyError::UnknownCurrency(..))
        ));
        assert!(matches!(
            Money::parse("1", "XAU"),
            Err(MoneyError::UnknownCurrency(..))
        ));
        assert!(matches!(
            Money::parse(&"9".repeat(40), "CNY"),
            Err(MoneyError::NotDecimal(_))
        ));
    }

    #[test]
    fn amounts_above_the_ceiling_are_refused_before_minor_units_overflow() {
        let ceiling = AMOUNT_CEILING.to_string();
        assert_eq!(
            Money::parse(&ceiling, "CNY").unwrap().minor(),
            AMOUNT_CEILING * 100
        );
        // Found by the money_parse fuzz target: 18 digits of GBP overflowed `minor()`.
        for above in [
            format!("{ceiling}.01"),
            "151101111111010100".to_owned(),
            "79228162514264337593543950335".to_owned(),
        ] {
            assert!(
                matches!(
                    Money::parse(&above, "GBP"),
                    Err(MoneyError::AboveMaximum { .. })
                ),
                "{above}"
            );
        }
    }

    #[test]
    fn the_maximum_is_enforced() {
        let max = Decimal::from(50_000);
        assert!(
            Money::parse("50000.00", "CNY")
                .unwrap()
                .check_maximum(max)
                .is_ok()
        );
        let err = Money::parse("50000.01", "CNY")
            .unwrap()
            .check_maximum(max)
            .unwrap_err();
        assert!(err.to_string().contains("above the maximum"), "{err}");
    }

    #[test]
    fn arithmetic_stays_in_one_currency() {
        let a = Money::parse("10.00", "CNY").unwrap();
        let b = Money::parse("2.50", "CNY").unwrap();
        assert_eq!(a.checked_add(&b).unwrap().to_string(), "12.50");
        assert_eq!(a.checked_sub(&b).unwrap().to_string(), "7.50");
        assert!(b.checked_sub(&a).is_none());
        let yen = Money::parse("10", "JPY").unwrap();
        assert!(a.checked_add(&yen).is_none());
        assert!(a.partial_cmp(&yen).is_none());
        assert_eq!(
            Money::from_minor(1250, a.currency()),
            Money::parse("12.50", "CNY").unwrap()
        );
        assert_eq!(Money::zero(a.currency()).to_string(), "0.00");
    }
}
