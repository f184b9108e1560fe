//! `ferry serve`: the web tier (webhook ingress, admin API, health). Any number can run against one
//! PostgreSQL; one on the embedded SQLite. `ferry stores …` registers the stores that send
//! webhooks (until the admin API does).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use ferry_server::app::AppState;
use ferry_server::crypto::Cipher;
use ferry_server::stores::{Platform, Stores};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    db: crate::DbArgs,
    /// Where to listen (config: listen).
    #[arg(long)]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    key: KeyArgs,
    /// Bearer tokens of the admin API, comma-separated (config: admin_tokens; none: the admin
    /// API refuses every call).
    #[arg(long = "admin-tokens", value_delimiter = ',')]
    admin_tokens: Option<Vec<String>>,
    /// Origins allowed to call the API from a browser, comma-separated (config: cors_origins).
    #[arg(long = "cors-origins", value_delimiter = ',')]
    cors_origins: Option<Vec<String>>,
    /// Seconds before an unanswered request gets 408 (config: request_timeout_s).
    #[arg(long)]
    request_timeout_s: Option<u64>,
    /// The largest request body accepted, in bytes (config: body_limit).
    #[arg(long)]
    body_limit: Option<usize>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct KeyArgs {
    /// The key that seals secrets at rest: base64 of 32 random bytes (config:
    /// encryption_key, FERRY_ENCRYPTION_KEY; `ferry stores new-key` prints one).
    #[arg(long = "encryption-key")]
    encryption_key: Option<String>,
}

impl KeyArgs {
    /// The flag, else the configuration's; an error when neither has one.
    pub fn key(&self) -> Result<&str> {
        match &self.encryption_key {
            Some(k) => Ok(k),
            None => crate::config::get().key(),
        }
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum StoresCommand {
    /// Registers a store that sends webhooks (or replaces its platform and secrets).
    Add {
        #[command(flatten)]
        db: crate::DbArgs,
        #[command(flatten)]
        key: KeyArgs,
        name: String,
        /// shopify, standard or stripe.
        #[arg(long)]
        platform: String,
        /// Its webhook secret (`FERRY_WEBHOOK_SECRET` keeps it out of the shell history).
        #[arg(long, env = "FERRY_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
    },
    /// Puts a new webhook secret in front; `--keep 1` keeps the previous one valid meanwhile.
    Rotate {
        #[command(flatten)]
        db: crate::DbArgs,
        #[command(flatten)]
        key: KeyArgs,
        name: String,
        #[arg(long, env = "FERRY_WEBHOOK_SECRET", hide_env_values = true)]
        secret: String,
        #[arg(long, default_value_t = 1)]
        keep: usize,
    },
    /// Prints a fresh encryption key.
    NewKey,
}

async fn stores(
    db: &crate::DbArgs,
    key: &KeyArgs,
) -> Result<(ferry_queue::Queue, ferry_server::db::Db, Stores)> {
    let queue = crate::jobs::open(db).await?;
    let cipher = Cipher::from_base64(key.key()?).context("the encryption key")?;
    let db = ferry_server::db::Db::of(&queue)
        .await
        .context("migrating the server's tables")?;
    let stores = Stores::new(db.clone(), cipher, queue.clock());
    Ok((queue, db, stores))
}

pub async fn run(a: ServeArgs) -> Result<()> {
    let cfg = crate::config::get();
    let (queue, db, stores) = stores(&a.db, &a.key).await?;
    let listen = a.listen.unwrap_or(cfg.listen);
    let admin_tokens: Vec<String> = a
        .admin_tokens
        .unwrap_or_else(|| cfg.admin_tokens.clone())
        .into_iter()
        .filter(|t| !t.trim().is_empty())
        .collect();
    if admin_tokens.iter().any(|t| t.len() < 16) {
        anyhow::bail!("admin tokens must be at least 16 characters");
    }
    let connect_db = ferry_connect::Db::of(&queue)
        .await
        .context("migrating the connectors' tables")?;
    let breakers = ferry_connect::Breakers::new(
        connect_db,
        queue.clock(),
        ferry_connect::BreakerPolicy::default(),
    );
    let state = Arc::new(AppState {
        breakers,
        committer: ferry_server::commit::Committer::start(queue.clone()),
        queue: queue.clone(),
        db,
        stores,
        body_limit: a.body_limit.unwrap_or(cfg.body_limit),
        admin_tokens,
        hardening: ferry_server::app::Hardening {
            request_timeout: std::time::Duration::from_secs(
                a.request_timeout_s.unwrap_or(cfg.request_timeout_s).max(1),
            ),
            cors_origins: a
                .cors_origins
                .unwrap_or_else(|| cfg.cors_origins.clone())
                .into_iter()
                .filter(|o| !o.is_empty())
                .collect(),
        },
    });
    // The network's admin routes: the sync engine on the same database (its jobs run in the
    // workers).
    let client = ferry_connect::Client::new(
        ferry_connect::Db::of(&queue).await?,
        queue.clock(),
        "shopify",
        ferry_connect::ClientOptions::default(),
    );
    let cipher = Cipher::from_base64(a.key.key()?).context("the encryption key")?;
    let engine = ferry_sync::Engine::new(
        queue.clone(),
        cipher,
        client,
        state.stores.clone(),
        ferry_sync::EngineOptions::default(),
    )
    .await
    .context("the sync engine's tables")?;
    let orders = ferry_sync::orders::Orders::new(engine.clone(), cfg.orders());
    let routes = ferry_sync::api::routes(engine).merge(ferry_sync::orders_api::routes(orders));
    let running = ferry_server::app::start_with(listen, state, routes)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(addr = %running.addr, backend = queue.backend(), "serving");
    println!("ferry serve listening on {}", running.url());
    let stop = CancellationToken::new();
    tokio::spawn(crate::worker::signal_on(stop.clone()));
    stop.cancelled().await;
    drop(running);
    Ok(())
}

pub async fn run_stores(cmd: StoresCommand) -> Result<()> {
    match cmd {
        StoresCommand::NewKey => println!("{}", Cipher::generate_key()),
        StoresCommand::Add {
            db,
            key,
            name,
            platform,
            secret,
        } => {
            let (_, _, s) = stores(&db, &key).await?;
            s.put(&name, Platform::parse(&platform)?, &[secret]).await?;
            println!("store {name} ({platform}) saved; webhooks go to /webhooks/{platform}/{name}");
        }
        StoresCommand::Rotate {
            db,
            key,
            name,
            secret,
            keep,
        } => {
            let (_, _, s) = stores(&db, &key).await?;
            s.rotate(&name, &secret, keep).await?;
            println!("store {name}: new secret in front, {keep} older kept");
        }
    }
    Ok(())
}
