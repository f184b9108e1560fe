//! What every ferry crate shares. Time comes from an injected [`Clock`] (epoch milliseconds),
//! so tests move it instead of sleeping.

mod clock;

pub use clock::{Clock, FakeClock, SystemClock, ms};
