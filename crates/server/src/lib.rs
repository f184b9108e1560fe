pub mod crypto;
pub mod signature;
