//! `ferry serve`, the stateless web tier: signed webhook ingress into the queue (deduplicated
//! in the same transaction as the job), health; the admin API and metrics are to come.

pub mod admin;
pub mod app;
pub mod crypto;
pub mod db;
pub mod error;
pub mod ingress;
pub mod signature;
pub mod stores;
