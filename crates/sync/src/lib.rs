//! The sync engine: what ferry is for.
//!
//! - `network`: the stores (one parent, any number of children), their credentials (sealed)
//!   and rules, the links between parent and child products and variants, the stock ferry
//!   believes each store holds, the intent ledger, the audit log.
//! - `rules`: which fields a child takes from the parent, price rules (pure).
//! - `plan`: what a child's copy of a parent product should be (pure).
//! - `webhooks`: the stores that send webhooks (secrets sealed), the job a delivery becomes,
//!   the group commit that records a delivery with its job.
//! - `engine`: the engine itself (one per process): its options, the job handlers it registers
//!   on a worker, adding and connecting stores, starting reconciliations.
//! - `jobs`: every sync job's payload, defined once with its kind and queue.
//! - `catalog`: parent products fanned out to children; `catalog::push`, the push saga;
//!   `catalog::collections`, collections matched by handle.
//! - `stock`: `sales` (orders counted once, keyed deltas), `ledger` (ferry's own writes, so
//!   echoes are dropped), `counts` (stock counts, last write wins, compare-and-set).
//! - `onboarding`: connecting a store, linking a child's catalog by SKU.
//! - `reconcile`: comparing every child with the parent and repairing drift, runs recorded.
//! - `orders`: the orders saga (reserve, charge, confirm as deltas) and its recovery.

pub mod whole;

/// Whether any string in a JSON document (keys included) holds a NUL: PostgreSQL's text can
/// not, so requests are refused before anything is stored.
pub fn has_nul(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => s.contains('\0'),
        serde_json::Value::Array(a) => a.iter().any(has_nul),
        serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Replaces every NUL in the strings (and keys) of a JSON document with U+FFFD: a signed
/// webhook is the platform's word and is kept, but PostgreSQL's jsonb can not hold U+0000.
/// Done on both engines, so a delivery reads the same whichever one stores it.
pub fn replace_nul(v: &mut serde_json::Value) {
    if !has_nul(v) {
        return;
    }
    match v {
        serde_json::Value::String(s) if s.contains('\0') => *s = s.replace('\0', "\u{FFFD}"),
        serde_json::Value::Array(a) => a.iter_mut().for_each(replace_nul),
        serde_json::Value::Object(o) => {
            let taken = std::mem::take(o);
            for (k, mut item) in taken {
                replace_nul(&mut item);
                o.insert(k.replace('\0', "\u{FFFD}"), item);
            }
        }
        _ => {}
    }
}

/// The longest webhook secret taken (a key, not a document).
pub const MAX_SECRET: usize = 1024;

/// Nothing but ASCII whitespace (the API documents `[^ \t\n\r\v\f]` for "not blank").
pub fn blank(s: &str) -> bool {
    s.bytes()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c))
}

pub mod bulk;
pub mod catalog;
pub mod credentials;
pub mod db;
pub mod engine;
pub mod error;
pub mod install;
pub mod jobs;
pub mod network;
pub mod onboarding;
pub mod orders;
pub mod plan;
pub mod reconcile;
pub mod rules;
pub mod stock;
pub mod webhooks;

pub use engine::{Engine, EngineOptions, SYNC_QUEUE};
pub use error::SyncError;
pub use network::{Network, Role, StoreConfig};
pub use rules::{Field, PriceRule, Rules};
