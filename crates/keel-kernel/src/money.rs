//! Money: an int64 amount in minor units of an ISO 4217 currency. The currency knows its number
//! of minor units (JPY 0, EUR 2, KWD 3), so amounts are never floats and never guessed. Rounding
//! is done once, here, in integers (half away from zero). Billing's taxes and the marketplace's
//! commissions are built on it.

use std::fmt;

use crate::error::Error;

/// ISO 4217 codes the platform accepts, with their minor-unit exponent. Codes not listed are
/// refused rather than assumed to have two decimals: a wrong exponent bills 100x too much or
/// too little.
const CURRENCIES: &[(&str, u8)] = &[
    // Zero-decimal currencies.
    ("BIF", 0),
    ("CLP", 0),
    ("DJF", 0),
    ("GNF", 0),
    ("ISK", 0),
    ("JPY", 0),
    ("KMF", 0),
    ("KRW", 0),
    ("PYG", 0),
    ("RWF", 0),
    ("UGX", 0),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XOF", 0),
    ("XPF", 0),
    // Three-decimal currencies.
    ("BHD", 3),
    ("IQD", 3),
    ("JOD", 3),
    ("KWD", 3),
    ("LYD", 3),
    ("OMR", 3),
    ("TND", 3),
    // Two-decimal currencies.
    ("AED", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("BGN", 2),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("COP", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EGP", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("MAD", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("PHP", 2),
    ("PLN", 2),
    ("QAR", 2),
    ("RON", 2),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TRY", 2),
    ("TWD", 2),
    ("UAH", 2),
    ("USD", 2),
    ("ZAR", 2),
];

/// An ISO 4217 currency the platform knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

impl Currency {
    /// Parse an upper-case ISO 4217 code; VALIDATION naming `field` for anything else.
    pub fn parse(field: &str, value: &str) -> Result<Currency, Error> {
        if value.is_empty() {
            return Err(Error::invalid(field, "is required"));
        }
        CURRENCIES
            .iter()
            .find(|(code, _)| *code == value)
            .map(|(code, exponent)| Currency {
                code,
                exponent: *exponent,
            })
            .ok_or_else(|| {
                Error::invalid(
                    field,
                    format!("`{value}` is not a supported ISO 4217 currency code"),
                )
            })
    }

    pub fn code(&self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point: 0 for JPY, 2 for EUR, 3 for KWD.
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// `amount` minor units for humans: `1999` EUR is `19.99 EUR`, `1500` KWD `1.500 KWD`.
    pub fn format(&self, amount: i64) -> String {
        let sign = if amount < 0 { "-" } else { "" };
        let abs = amount.unsigned_abs();
        match self.exponent {
            0 => format!("{sign}{abs} {}", self.code),
            exponent => {
                let scale = 10u64.pow(u32::from(exponent));
                format!(
                    "{sign}{}.{:0width$} {}",
                    abs / scale,
                    abs % scale,
                    self.code,
                    width = usize::from(exponent)
                )
            }
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

/// `numerator / denominator` rounded half away from zero (half-up on magnitudes), in integers:
/// a tax of 2.5 cents is 3 cents, a credit of -2.5 cents is -3 cents.
pub fn div_round_half_up(numerator: i128, denominator: i128) -> i128 {
    debug_assert!(denominator > 0, "a positive denominator");
    let quotient = numerator / denominator;
    let remainder = numerator % denominator;
    if remainder.abs() * 2 >= denominator {
        quotient + numerator.signum()
    } else {
        quotient
    }
}

/// `amount * numerator / denominator`, rounded half-up, as minor units; `None` on overflow.
pub fn scale(amount: i64, numerator: i64, denominator: i64) -> Option<i64> {
    if denominator <= 0 {
        return None;
    }
    let product = i128::from(amount).checked_mul(i128::from(numerator))?;
    i64::try_from(div_round_half_up(product, i128::from(denominator))).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn currencies_know_their_minor_units() {
        assert_eq!(Currency::parse("c", "JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("c", "EUR").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("c", "KWD").unwrap().exponent(), 3);
        assert_eq!(
            Currency::parse("c", "KWD").unwrap().format(1500),
            "1.500 KWD"
        );
        assert_eq!(Currency::parse("c", "EUR").unwrap().format(-5), "-0.05 EUR");
        assert_eq!(Currency::parse("c", "JPY").unwrap().format(500), "500 JPY");
    }

    #[test]
    fn unknown_or_lowercase_codes_are_refused_naming_the_field() {
        for code in ["eur", "XXX", "EU", ""] {
            let err = Currency::parse("price.currency", code).unwrap_err();
            assert_eq!(err.violations()[0].field, "price.currency");
        }
    }

    #[test]
    fn rounding_is_half_up_in_integers() {
        assert_eq!(div_round_half_up(25, 10), 3);
        assert_eq!(div_round_half_up(24, 10), 2);
        assert_eq!(div_round_half_up(-25, 10), -3);
        assert_eq!(div_round_half_up(-24, 10), -2);
        assert_eq!(scale(1999, 2100, 10_000), Some(420)); // 419.79
        assert_eq!(scale(i64::MAX, 2, 1), None);
    }
}
