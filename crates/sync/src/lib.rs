//! The sync engine: what ferry is for.
//!
//! - `network`: the stores (one parent, any number of children), their credentials (sealed)
//!   and rules, the links between parent and child products and variants, the stock ferry
//!   believes each store holds, the intent ledger, the audit log.
//! - `rules`: which fields a child takes from the parent, price rules (pure).
//! - `plan`: what a child's copy of a parent product should be (pure).
//! - `webhooks`: the stores that send webhooks (secrets sealed), the job a delivery becomes,
//!   the group commit that records a delivery with its job.
//! - `engine`: the jobs: webhooks in, catalog fan-out, pushes to children (sagas), sales as
//!   deltas, stock checks, compare-and-set sets, connecting a child, reconciliation.

pub mod db;
pub mod engine;
pub mod error;
pub mod network;
pub mod orders;
pub mod plan;
pub mod rules;
pub mod webhooks;

pub use engine::{Engine, EngineOptions, SYNC_QUEUE};
pub use error::SyncError;
pub use network::{Network, Role, StoreConfig};
pub use rules::{Field, PriceRule, Rules};
