//! What every ferry crate shares. Time comes from an injected [`Clock`] (epoch milliseconds),
//! so tests move it instead of sleeping; secrets at rest are sealed by one [`Cipher`].

mod clock;
pub mod crypto;

pub use clock::{Clock, FakeClock, SystemClock, ms};
pub use crypto::{Cipher, CryptoError, ct_eq};
