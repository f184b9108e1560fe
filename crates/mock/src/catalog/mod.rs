//! A store's catalog, inventory and orders, as Shopify models them: products own an ordered
//! list of variants; each variant has one inventory item; an inventory level is (item,
//! location) with quantities; collections hold products; orders take stock.
//!
//! Every write goes through a method here that validates first and changes nothing on error,
//! bumps `updated_at`, and queues the webhook the real platform would send.

mod collections;
mod inventory;
mod media;
mod model;
mod orders;
mod products;
mod seed;
mod variants;

pub(crate) use media::basename;
pub use model::*;
pub(crate) use orders::order_payload;
use products::slug;
