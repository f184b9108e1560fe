//! `ferry healthcheck`: the container's HEALTHCHECK. A scratch image has no curl, so the binary
//! asks itself: `/healthz` of a running `ferry serve`, or, for a worker (no HTTP server), whether
//! the database answers. Exit 0 when healthy, 1 with one line on stderr when not.

use std::time::Duration;

use anyhow::{Result, bail};
use ferry_queue::{Queue, QueueOptions};

#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    /// The URL to GET (default: /healthz on the configured listen address, on loopback when
    /// it listens on every address).
    #[arg(long, conflicts_with = "database")]
    url: Option<String>,
    /// Check that the configured database answers instead (for `ferry worker`).
    #[arg(long)]
    database: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 3)]
    timeout_s: u64,
}

pub async fn run(a: HealthArgs) -> Result<()> {
    let limit = Duration::from_secs(a.timeout_s.max(1));
    if a.database {
        return match tokio::time::timeout(limit, database()).await {
            Ok(r) => r,
            Err(_) => bail!("the database did not answer within {} s", limit.as_secs()),
        };
    }
    let url = a.url.unwrap_or_else(default_url);
    let client = reqwest::Client::builder()
        .timeout(limit)
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let status = client.get(&url).send().await?.status();
    if !status.is_success() {
        bail!("{url} answered {status}");
    }
    Ok(())
}

fn default_url() -> String {
    let mut addr = crate::config::get().listen;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    format!("http://{addr}/healthz")
}

/// Opens the database without migrating (through a pooler too) and reads the queues.
async fn database() -> Result<()> {
    let url = &crate::config::get().database_url;
    let opts = QueueOptions {
        migrate: false,
        max_connections: 1,
        ..QueueOptions::default()
    };
    let q = Queue::connect_with(url, opts).await?;
    q.queue_names().await?;
    Ok(())
}
