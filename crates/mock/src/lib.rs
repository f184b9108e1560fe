//! `ferry mock`: a simulated commerce platform, as a real HTTP server on loopback. Many stores in
//! one server, each with its own catalog, credentials and rate limits, so that ferry is tested
//! against something that throttles, pages and deduplicates like the real platforms do.
//!
//! Parts: `catalog` (products, variants, inventory, collections, orders: the state and the rules
//! of every write), `graphql` (the Admin API: schema, resolvers, cost), `rest` (the items API for
//! the generic connector), `payments`, `webhooks` (signed deliveries with retries), `faults`,
//! `actors` (merchant and shopper actions), `apps` (Dev Dashboard apps: the token endpoint's three
//! grants, the consent page, expiring tokens), `server` (routes and the control API).

mod actors;
mod apps;
mod bucket;
mod bulk;
mod catalog;
mod error;
mod faults;
mod graphql;
mod oauth;
mod payments;
mod platform;
mod rest;
mod server;
mod signing;
mod webhooks;

pub use actors::OrderLine;
pub use apps::{
    AppCounters, AppInfo, DEFAULT_ORGANIZATION, LEGACY_SCOPES, consent_form, sign_query,
};
pub use bucket::LeakyBucket;
pub use bulk::{BulkSettings, DEFAULT_ROWS_PER_S};
pub use catalog::{FileSpec, ProductSpec, UserError, VariantSpec};
pub use error::MockError;
pub use faults::Faults;
pub use graphql::{API_VERSION, MAX_QUERY_COST};
pub use oauth::OAuthCounters;
pub use payments::DECLINED_CARD;
pub use platform::{Counters, Platform, StoreInfo};
pub use server::{MockConfig, MockServer};
pub use signing::shopify_hmac;
pub use webhooks::{Subscription, TOPICS, WebhookCounters};
