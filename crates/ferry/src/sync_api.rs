//! `ferry sync-api`: copies new and changed records from one JSON API to another, once or
//! every interval, with the cursor kept in the database.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_connect::rest::RestConnector;
use ferry_connect::sync_api::{SyncApi, SyncReport};
use ferry_connect::{Client, Secret, StaticToken};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct SyncApiArgs {
    #[command(flatten)]
    db: crate::DbArgs,
    /// The source API's root (`…/items` under it).
    #[arg(long)]
    source: String,
    /// The destination API's root.
    #[arg(long)]
    dest: String,
    /// Bearer token for the source.
    #[arg(
        long,
        env = "FERRY_SOURCE_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    source_token: String,
    #[arg(
        long,
        env = "FERRY_DEST_TOKEN",
        default_value = "",
        hide_env_values = true
    )]
    dest_token: String,
    /// One run, then exit (the default).
    #[arg(long, conflicts_with = "every")]
    once: bool,
    /// Run again after each interval (`30s`, `5m`, `1h`) until SIGINT or SIGTERM.
    #[arg(long, value_parser = parse_interval)]
    every: Option<Duration>,
    /// Records per page read from the source.
    #[arg(long, default_value_t = 250)]
    page_size: usize,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
}

/// `30s`, `5m`, `1h`, `500ms`, or plain seconds.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| (&s[..i], &s[i..]));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not an interval like 30s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?}: the unit is one of ms, s, m, h")),
    };
    if d.is_zero() {
        return Err("the interval must be more than zero".into());
    }
    Ok(d)
}

fn progress_bar() -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    Some(bar)
}

fn summary(r: &SyncReport) -> String {
    format!(
        "synced {} · skipped {} · failed {} · pages {}",
        r.synced, r.skipped, r.failed, r.pages
    )
}

pub async fn run(args: SyncApiArgs) -> Result<()> {
    for url in [&args.source, &args.dest] {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("{url:?} is not an http(s) URL");
        }
    }
    let queue = crate::jobs::open(&args.db).await?;
    let db = ferry_connect::db::open(&queue)
        .await
        .context("preparing the database")?;
    let client = Client::new(
        db.clone(),
        queue.clock(),
        "rest",
        crate::config::get().client_options(),
    );
    let token = |t: &str| Arc::new(StaticToken(Secret::new(t.to_owned())));
    let mut sync = SyncApi::new(
        RestConnector::new(client.clone(), &args.source, token(&args.source_token)),
        RestConnector::new(client, &args.dest, token(&args.dest_token)),
        db,
        queue.clock(),
    );
    sync.page_size = args.page_size.clamp(1, 1000);
    sync.concurrency = args.concurrency.clamp(1, 64);
    let stop = CancellationToken::new();
    tokio::spawn(crate::worker::signal_on(stop.clone()));
    let _ = args.once;
    loop {
        let bar = progress_bar();
        let shown = bar.clone();
        let report = sync
            .run_once(&move |r| {
                if let Some(b) = &shown {
                    b.set_message(summary(r));
                }
            })
            .await;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let report = report.context("sync failed")?;
        println!("{}", summary(&report));
        println!("{}", serde_json::to_string(&report)?);
        let Some(every) = args.every else {
            if report.failed > 0 {
                bail!(
                    "{} records failed; the next run starts again at the first of them",
                    report.failed
                );
            }
            return Ok(());
        };
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = tokio::time::sleep(every) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("7"), Ok(Duration::from_secs(7)));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("5 parsecs").is_err());
    }
}
