//! End-to-end tests of the `ferry` binary: real worker processes on a real database.

#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is what it should do

mod apps_process;
mod browser;
mod budget_process;
mod config_process;
mod mock_process;
mod orders_process;
/// Shared with `ferry bench chaos`, which starts the same PgBouncer.
#[path = "../../src/pgbouncer.rs"]
mod pgbouncer;
mod pgbouncer_process;
mod process;
mod serve_process;
mod serve_race;
mod sync_api_process;
mod sync_process;
mod ui_browser;
mod worker_process;
