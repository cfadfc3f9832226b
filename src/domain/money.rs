//! Money: amounts are whole numbers of a currency's minor unit (cents), never floats, and
//! currencies are ISO 4217 codes from a maintained list, which also gives their exponent.

use super::error::Invalid;

/// The largest amount, balance or adjustment: 10^15 minor units.
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

/// An ISO 4217 currency that has a minor unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency(iso_currency::Currency);

impl Currency {
    /// A three-letter code such as `USD` (any case); currencies without a minor unit (gold,
    /// testing codes) are refused.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let code = raw.trim().to_ascii_uppercase();
        iso_currency::Currency::from_code(&code)
            .filter(|currency| currency.exponent().is_some())
            .map(Self)
            .ok_or_else(|| Invalid::new("invalid_currency", "must be an ISO 4217 currency code like USD"))
    }

    pub fn code(self) -> &'static str {
        self.0.code()
    }

    /// Digits of the minor unit: 2 for USD, 0 for JPY, 3 for KWD.
    pub fn exponent(self) -> u16 {
        self.0.exponent().unwrap_or(0)
    }
}

/// An amount to move: 1 to 10^15 minor units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount(i64);

impl Amount {
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if (1..=MAX_AMOUNT).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(Invalid::new("out_of_range", "must be from 1 to 10^15 minor units"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

/// A correction by an administrator: a non-zero amount, added or (negative) taken away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Adjustment(i64);

impl Adjustment {
    pub fn parse(raw: i64) -> Result<Self, Invalid> {
        if raw != 0 && (-MAX_AMOUNT..=MAX_AMOUNT).contains(&raw) {
            Ok(Self(raw))
        } else {
            Err(Invalid::new("out_of_range", "must be non-zero and at most 10^15 minor units either way"))
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_come_from_the_iso_list_with_their_exponent() {
        assert_eq!(Currency::parse("usd").map(|c| (c.code(), c.exponent())), Ok(("USD", 2)));
        assert_eq!(Currency::parse("JPY").map(Currency::exponent), Ok(0));
        assert_eq!(Currency::parse("KWD").map(Currency::exponent), Ok(3));
        assert!(Currency::parse("XAU").is_err(), "no minor unit");
        assert!(Currency::parse("ABC").is_err());
        assert!(Currency::parse("US").is_err());
    }

    #[test]
    fn amounts_are_bounded_integers() {
        assert!(Amount::parse(1).is_ok() && Amount::parse(MAX_AMOUNT).is_ok());
        assert!(Amount::parse(0).is_err() && Amount::parse(-5).is_err() && Amount::parse(MAX_AMOUNT + 1).is_err());
        assert!(Adjustment::parse(-MAX_AMOUNT).is_ok() && Adjustment::parse(0).is_err());
    }
}
