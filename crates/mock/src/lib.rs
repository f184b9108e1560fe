//! `ferry mock`: a simulated commerce platform, as a real HTTP server on loopback. Many stores in
//! one server, each with its own catalog, credentials and rate limits, so that ferry is tested
//! against something that throttles, pages and deduplicates like the real platforms do.
//!
//! Implemented so far: stores and tokens, the REST items API for the generic connector
//! (cursor pagination by `updated_at` then id, idempotent PUT, POST with `Idempotency-Key`), the
//! request-count leaky bucket, the Stripe-style payments API, signed webhooks with retries
//! (emitted by `Platform::emit` until the catalog and orders fire them), and the control API.
//! The GraphQL Admin API, orders and faults are still to come.

mod bucket;
mod error;
mod faults;
mod payments;
mod platform;
mod rest;
mod server;
mod signing;
mod webhooks;

pub use bucket::LeakyBucket;
pub use error::MockError;
pub use faults::Faults;
pub use payments::DECLINED_CARD;
pub use platform::{Platform, StoreInfo};
pub use server::{MockConfig, MockServer};
pub use signing::shopify_hmac;
pub use webhooks::{Subscription, TOPICS, WebhookCounters};
