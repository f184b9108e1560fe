//! Connectors: the client stack every platform shares, and the platforms' adapters.
//!
//! - `client`: breaker → budget → request with timeout → classify → retry or hand back.
//! - `budget`: a leaky bucket per store in the database, shared by all workers of all processes.
//! - `breaker`: a circuit breaker per store in the database, visible to every process.
//! - `rest`: the generic JSON connector; `sync_api`: API-to-API sync on it.

pub mod auth;
pub mod breaker;
pub mod budget;
pub mod client;
pub mod db;
pub mod error;
pub mod oauth;
pub mod outbound;
pub mod pages;
pub mod payments;
pub mod rest;
pub mod secret;
pub mod shopify;
pub mod sync_api;

pub use auth::{Credentials, StaticToken};
pub use breaker::{BreakerPolicy, BreakerState, Breakers};
pub use budget::{BucketShape, Budget, ServerBucket};
pub use client::{Answer, Call, Client, ClientOptions, Verdict};
pub use error::{ConnectError, ErrorClass};
pub use ferry_db::Db;
pub use outbound::Outbound;
pub use pages::Pages;
pub use secret::Secret;
