//! Stock: sales as keyed deltas, the intent ledger of ferry's own writes, stock counts.

pub mod counts;
pub mod ledger;
pub mod sales;
