//! Money on the marketplace's side: amounts and currencies are the kernel's
//! (`keel_kernel::money`); the commission rule and order totals are the marketplace's.

use keel_kernel::Error;
pub use keel_kernel::money::{Currency, div_round_half_up, scale};

/// The platform's commission on an order: `basis_points` of the total, rounded half-up to the
/// minor unit (half away from zero), plus `fixed` minor units; never more than the total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commission {
    pub basis_points: u32,
    pub fixed: i64,
}

impl Commission {
    pub const MAX_BASIS_POINTS: u32 = 10_000;

    /// The commission on `total` minor units; None on overflow (not reachable with a total
    /// that fits an i64 and at most 100 %).
    pub fn on(&self, total: i64) -> Option<i64> {
        let percent = scale(total, i64::from(self.basis_points), 10_000)?;
        Some(percent.checked_add(self.fixed)?.clamp(0, total.max(0)))
    }
}

/// `unit_price * quantity`, VALIDATION naming `field` when it does not fit an i64.
pub fn total(unit_price: i64, quantity: i64, field: &str) -> Result<i64, Error> {
    unit_price
        .checked_mul(quantity)
        .ok_or_else(|| Error::invalid(field, "the order total does not fit in 64 bits"))
}

/// A price in minor units: zero or more.
pub fn parse_price(field: &str, value: i64) -> Result<i64, Error> {
    if value < 0 {
        return Err(Error::invalid(field, "must not be negative"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commission_rounds_half_up_to_the_minor_unit_and_adds_the_fixed_part() {
        let rule = Commission {
            basis_points: 250,
            fixed: 0,
        };
        // 2.5 % of 1.234 KWD (1234 fils) = 30.85 fils -> 31.
        assert_eq!(rule.on(1234), Some(31));
        // 2.5 % of 1,020 JPY = 25.5 yen -> 26; of 1,019 = 25.475 -> 25.
        assert_eq!(rule.on(1020), Some(26));
        assert_eq!(rule.on(1019), Some(25));
        let with_fixed = Commission {
            basis_points: 500,
            fixed: 100,
        };
        assert_eq!(with_fixed.on(10_000), Some(600));
        // Never more than the total.
        assert_eq!(with_fixed.on(50), Some(50));
        assert_eq!(with_fixed.on(0), Some(0));
    }
}
