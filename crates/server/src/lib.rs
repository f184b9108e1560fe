//! `ferry serve`, the stateless web tier: signed webhook ingress into the queue (deduplicated
//! in the same transaction as the job), the admin API, health and Prometheus metrics.

pub mod admin;
pub mod app;
pub mod commit;
pub mod crypto;
pub mod db;
pub mod error;
pub mod ingress;
pub mod signature;
pub mod stores;
pub mod telemetry;
