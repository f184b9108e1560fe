//! `ferry bench abuse`: what a client with no token can make `ferry serve` do. A real
//! `ferry serve` (this binary, or `--server-bin` to measure another build) on a fresh database
//! with one Standard Webhooks store, then, over loopback:
//!
//! - `signature_flood_ms`: one delivery with a 1 MiB body and `webhook-signature: v1, v1, …`
//!   (5,000 empty candidates, 20 KB of header): how long the server takes to refuse it; and
//!   `signature_flood_6kb_ms`, the same with 1,500 candidates, under the header limit;
//! - `new_metric_series`: series added to `/metrics` by 100 deliveries to made-up platforms;
//! - `enumeration_distinguishable`: whether a wrong signature for the real store and one for a
//!   store that does not exist get different answers;
//! - `slow_connections_open_after_20s`: of 100 connections that send a request line and then a
//!   header line every 2 s, how many the server still holds after 20 s;
//! - `healthz_p99_ms_under_flood`: `/healthz` latency while 8 clients send the flood request.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine;
use ferry_core::Cipher;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::bench::{FreshDb, percentile, round2};

#[derive(clap::Args, Debug)]
pub struct AbuseArgs {
    /// A PostgreSQL server (a fresh database is created on it) or a new SQLite file.
    /// Default: a temporary SQLite file.
    #[arg(long)]
    database_url: Option<String>,
    /// The `ferry` binary whose `serve` is measured. Default: this one.
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// How long the slow clients keep trickling before they are counted, in seconds.
    #[arg(long, default_value_t = 20)]
    slow_for_s: u64,
}

pub async fn run(a: AbuseArgs) -> Result<()> {
    let db = FreshDb::create(a.database_url.as_deref()).await?;
    let result = bench(&db, &a).await;
    db.drop_db().await;
    result
}

/// A spawned `ferry serve`, killed when dropped.
struct Server {
    _child: tokio::process::Child,
    url: String,
    addr: String,
}

async fn start(bin: &PathBuf, db: &str, key: &str, secret: &str) -> Result<Server> {
    let added = tokio::process::Command::new(bin)
        .args(["stores", "add", "shop", "--platform", "standard"])
        .args(["--database-url", db])
        .env("FERRY_ENCRYPTION_KEY", key)
        .env("FERRY_WEBHOOK_SECRET", secret)
        .env("FERRY_LOG", "error")
        .output()
        .await
        .context("running ferry stores add")?;
    if !added.status.success() {
        bail!(
            "ferry stores add failed: {}",
            String::from_utf8_lossy(&added.stderr)
        );
    }
    let mut serve = tokio::process::Command::new(bin);
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--database-url", db])
        .env("FERRY_ENCRYPTION_KEY", key)
        .env("FERRY_LOG", "error");
    let (child, url, _) = crate::bench::spawn_listening(&mut serve, "ferry serve").await?;
    let addr = url.trim_start_matches("http://").to_owned();
    Ok(Server {
        _child: child,
        url,
        addr,
    })
}

/// The flood delivery: a 1 MiB body and 5,000 empty signature candidates.
fn flood(
    http: &reqwest::Client,
    url: &str,
    store: &str,
    body: &bytes::Bytes,
) -> reqwest::RequestBuilder {
    flood_of(http, url, store, body, 5_000)
}

/// A delivery with `n` empty signature candidates.
fn flood_of(
    http: &reqwest::Client,
    url: &str,
    store: &str,
    body: &bytes::Bytes,
    n: usize,
) -> reqwest::RequestBuilder {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    http.post(format!("{url}/webhooks/standard/{store}"))
        .header("content-type", "application/json")
        .header("webhook-id", "msg_flood")
        .header("webhook-timestamp", now.to_string())
        .header("webhook-signature", "v1, ".repeat(n).trim_end().to_owned())
        .body(body.clone())
}

/// The fastest of three flood requests with `n` candidates (the figure is the server's work)
/// and the status it answered: 0 when it closed the connection before the body was sent.
async fn time_flood(
    http: &reqwest::Client,
    url: &str,
    body: &bytes::Bytes,
    n: usize,
) -> (f64, u16) {
    let mut best = f64::MAX;
    let mut status = 0;
    for _ in 0..3 {
        let t = Instant::now();
        status = match flood_of(http, url, "shop", body, n).send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                let _ = r.bytes().await;
                s
            }
            Err(_) => 0,
        };
        best = best.min(t.elapsed().as_secs_f64() * 1000.0);
    }
    (best, status)
}

/// The series of a `/metrics` page (name and labels), without its values.
async fn series(http: &reqwest::Client, url: &str) -> Result<std::collections::BTreeSet<String>> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(k, _)| k.to_owned()))
        .collect())
}

async fn bench(db: &FreshDb, a: &AbuseArgs) -> Result<()> {
    let bin = match &a.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?,
    };
    let key = Cipher::generate_key();
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    );
    let server = start(&bin, &db.url, &key, &secret).await?;
    let url = server.url.clone();
    let http = reqwest::Client::new();
    let pad = "x".repeat(1024 * 1024 - 16);
    let body = bytes::Bytes::from(json!({ "pad": pad }).to_string());

    // 1. The flood request, over and under the header limit, timed.
    let (flood_ms, flood_status) = time_flood(&http, &url, &body, 5_000).await;
    println!(
        "signature flood: refused {flood_status} in {flood_ms:.1} ms (0: closed before the body was sent)"
    );
    // The same under the header limit: 1,500 candidates (6 KB), so the signature is checked.
    let (small_ms, small_status) = time_flood(&http, &url, &body, 1_500).await;
    println!("signature flood under 8 KB of headers: refused {small_status} in {small_ms:.1} ms");

    // 2. Metric series from made-up platforms (after one of them and one scrape, so the
    // scrape's own series are there before counting).
    let post_made_up = |i: u32| {
        http.post(format!("{url}/webhooks/made-up-{i}/x"))
            .header("content-type", "application/json")
            .body("{}")
            .send()
    };
    post_made_up(0).await?;
    series(&http, &url).await?;
    let before = series(&http, &url).await?;
    for i in 1..=100 {
        post_made_up(i).await?;
    }
    let after = series(&http, &url).await?;
    let new_series = after.difference(&before).count();
    println!("metric series added by 100 made-up platforms: {new_series}");

    // 3. The real store and a missing one, both with a wrong signature.
    let wrong = |store: &str| {
        http.post(format!("{url}/webhooks/standard/{store}"))
            .header("content-type", "application/json")
            .header("webhook-id", "msg_probe")
            .header("webhook-timestamp", "1700000000")
            .header("webhook-signature", format!("v1,{}", "A".repeat(43) + "="))
            .body("{}")
            .send()
    };
    let known = wrong("shop").await?;
    let known = (known.status().as_u16(), known.text().await?);
    let unknown = wrong("no-such-store").await?;
    let unknown = (unknown.status().as_u16(), unknown.text().await?);
    let distinguishable = known != unknown;
    println!(
        "enumeration: known store {} / unknown store {}: {}",
        known.0,
        unknown.0,
        if distinguishable {
            "distinguishable"
        } else {
            "the same answer"
        }
    );

    // 4. Slow clients: a request line, then a header line every 2 s.
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = tokio::net::TcpStream::connect(&server.addr).await?;
        s.write_all(b"POST /webhooks/standard/shop HTTP/1.1\r\nHost: x\r\n")
            .await?;
        slow.push(s);
    }
    let until = Instant::now() + Duration::from_secs(a.slow_for_s);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_secs(2).min(until - Instant::now())).await;
        for s in &mut slow {
            // A connection the server closed fails here or reads its end below.
            let _ = s.write_all(b"X-Slow: 1\r\n").await;
        }
    }
    let mut open = 0;
    for s in &slow {
        let mut buf = [0u8; 256];
        let closed = match s.try_read(&mut buf) {
            Ok(0) => true,
            Ok(_) => true, // the server answered (408 or the like) and is closing
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(_) => true,
        };
        if !closed {
            open += 1;
        }
    }
    drop(slow);
    println!(
        "slow clients still connected after {} s: {open} of 100",
        a.slow_for_s
    );

    // 5. /healthz while 8 clients send the flood request back to back.
    let stop = tokio_util::sync::CancellationToken::new();
    let mut flooders = Vec::new();
    for _ in 0..8 {
        let (http, url, body, stop) = (http.clone(), url.clone(), body.clone(), stop.clone());
        flooders.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                if let Ok(r) = flood(&http, &url, "shop", &body).send().await {
                    let _ = r.bytes().await;
                }
            }
        }));
    }
    let mut lat = Vec::new();
    let probe = reqwest::Client::new();
    // 200 probes, or as many as 60 s allow (a probe that gets no answer in 10 s counts 10 s).
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..200 {
        if Instant::now() > deadline {
            break;
        }
        let t = Instant::now();
        let ok = tokio::time::timeout(
            Duration::from_secs(10),
            probe.get(format!("{url}/healthz")).send(),
        )
        .await
        .is_ok_and(|r| r.is_ok_and(|r| r.status().is_success()));
        lat.push(if ok {
            t.elapsed().as_secs_f64() * 1000.0
        } else {
            10_000.0
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.cancel();
    for f in flooders {
        let _ = f.await;
    }
    lat.sort_by(f64::total_cmp);
    let p99 = percentile(&lat, 0.99);
    println!(
        "/healthz under 8 flooding clients: p50 {:.1} ms, p99 {p99:.1} ms",
        percentile(&lat, 0.50)
    );
    println!(
        "{}",
        json!({
            "bench": "abuse",
            "signature_flood_ms": round2(flood_ms),
            "signature_flood_status": flood_status,
            "signature_flood_6kb_ms": round2(small_ms),
            "signature_flood_6kb_status": small_status,
            "new_metric_series": new_series,
            "enumeration_distinguishable": distinguishable,
            "slow_connections_open_after_20s": open,
            "slow_for_s": a.slow_for_s,
            "healthz_p99_ms_under_flood": round2(p99),
        })
    );
    Ok(())
}
