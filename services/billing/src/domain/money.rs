//! Money on billing's side: amounts and currencies are the kernel's (`keel_kernel::money`);
//! the tax rate is billing's.

pub use keel_kernel::money::{Currency, div_round_half_up, scale};

/// A tax rate in basis points (1/100 of a percent): 2100 is 21 %.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaxRate(u32);

impl TaxRate {
    pub const MAX_BASIS_POINTS: u32 = 10_000;

    pub fn from_basis_points(basis_points: u32) -> Option<TaxRate> {
        (basis_points <= Self::MAX_BASIS_POINTS).then_some(TaxRate(basis_points))
    }

    /// `basis_points`, capped at 100 %.
    pub fn saturating(basis_points: u32) -> TaxRate {
        TaxRate(basis_points.min(Self::MAX_BASIS_POINTS))
    }

    pub fn basis_points(&self) -> u32 {
        self.0
    }

    /// The tax on `subtotal` minor units, rounded half-up to the minor unit.
    pub fn tax_on(&self, subtotal: i64) -> Option<i64> {
        scale(subtotal, i64::from(self.0), 10_000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tax_is_rounded_half_up_to_the_minor_unit() {
        let vat = TaxRate::from_basis_points(2100).unwrap();
        assert_eq!(vat.tax_on(1999), Some(420)); // 419.79
        assert_eq!(vat.tax_on(50), Some(11)); // 10.5
        assert!(TaxRate::from_basis_points(10_001).is_none());
    }
}
