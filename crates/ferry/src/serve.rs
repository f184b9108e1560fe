//! `ferry serve`: the web tier (webhook ingress, admin API, health). Any number can run against one
//! PostgreSQL; one on the embedded SQLite. `ferry stores …` registers the stores that send
//! webhooks (until the admin API does).

use std::net::SocketAddr;

use anyhow::{Context, Result};
use ferry_core::Cipher;
use ferry_http::stack::AppConfig;
use ferry_sync::webhooks::{WebhookScheme, WebhookStores};
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
    /// Seconds a connection may take to send a request head (config: header_read_timeout_s).
    #[arg(long)]
    header_read_timeout_s: Option<u64>,
    /// The most connections served at once (config: max_connections).
    #[arg(long)]
    max_connections: Option<usize>,
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

async fn stores(db: &crate::DbArgs, key: &KeyArgs) -> Result<WebhookStores> {
    let queue = crate::jobs::open(db).await?;
    let cipher = Cipher::from_base64(key.key()?).context("the encryption key")?;
    let db = ferry_sync::db::open(&queue)
        .await
        .context("migrating the engine's tables")?;
    Ok(WebhookStores::new(db, cipher, queue.clock()))
}

pub async fn run(a: ServeArgs) -> Result<()> {
    let cfg = crate::config::get();
    let queue = crate::jobs::open(&a.db).await?;
    let cipher = Cipher::from_base64(a.key.key()?).context("the encryption key")?;
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
    let mut app = AppConfig::new(cipher);
    app.admin_tokens = admin_tokens;
    app.tokens = cfg
        .tokens
        .iter()
        .map(|t| t.configured())
        .collect::<Result<_>>()?;
    app.body_limit = a.body_limit.unwrap_or(cfg.body_limit);
    app.hardening = ferry_http::app::Hardening {
        request_timeout: std::time::Duration::from_secs(
            a.request_timeout_s.unwrap_or(cfg.request_timeout_s).max(1),
        ),
        cors_origins: a
            .cors_origins
            .unwrap_or_else(|| cfg.cors_origins.clone())
            .into_iter()
            .filter(|o| !o.is_empty())
            .collect(),
        header_read_timeout: std::time::Duration::from_secs(
            a.header_read_timeout_s
                .unwrap_or(cfg.header_read_timeout_s)
                .max(1),
        ),
        max_connections: a.max_connections.unwrap_or(cfg.max_connections).max(1),
    };
    app.orders = cfg.orders();
    app.client = cfg.client_options();
    app.engine = cfg.engine_options(cfg.public_url.clone());
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    // The network's and the orders' routes run on the same database; their jobs run in the
    // workers.
    let serving = ferry_http::stack::serve_on(listener, queue.clone(), app)
        .await
        .context("starting the application")?;
    tracing::info!(addr = %serving.server.addr, backend = queue.backend(), "serving");
    println!("ferry serve listening on {}", serving.server.url());
    let stop = CancellationToken::new();
    tokio::spawn(crate::worker::signal_on(stop.clone()));
    stop.cancelled().await;
    drop(serving);
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
            let s = stores(&db, &key).await?;
            let p = WebhookScheme::parse(&platform).with_context(|| {
                format!("unknown platform {platform:?} (shopify, standard or stripe)")
            })?;
            s.put(&name, p, &[secret]).await?;
            println!("store {name} ({platform}) saved; webhooks go to /webhooks/{platform}/{name}");
        }
        StoresCommand::Rotate {
            db,
            key,
            name,
            secret,
            keep,
        } => {
            let s = stores(&db, &key).await?;
            s.rotate(&name, &secret, keep).await?;
            println!("store {name}: new secret in front, {keep} older kept");
        }
    }
    Ok(())
}
