//! `ferry network …` (the stores of the network) and `ferry sync …` (reconciliation, the audit
//! log). Connecting and repairs are jobs: a `ferry worker` with the encryption key runs them.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_core::Cipher;
use ferry_sync::credentials::{AppRef, Kind};
use ferry_sync::{Engine, Role, Rules};

use crate::DbArgs;
use crate::serve::KeyArgs;

#[derive(clap::Args, Debug, Clone)]
pub struct EngineArgs {
    #[command(flatten)]
    pub db: DbArgs,
    #[command(flatten)]
    pub key: KeyArgs,
    /// Where the stores send their webhooks: the public URL of `ferry serve` (config:
    /// public_url).
    #[arg(long)]
    pub public_url: Option<String>,
}

impl EngineArgs {
    fn public_url(&self) -> String {
        self.public_url
            .clone()
            .unwrap_or_else(|| crate::config::get().public_url.clone())
    }
}

/// The sync engine on the database, opening tokens with the key.
pub async fn engine(a: &EngineArgs) -> Result<Engine> {
    let queue = crate::jobs::open(&a.db).await?;
    let cipher = Cipher::from_base64(a.key.key()?).context("the encryption key")?;
    let db = ferry_connect::db::open(&queue).await?;
    let client = ferry_connect::Client::new(
        db,
        queue.clock(),
        "shopify",
        crate::config::get().client_options(),
    );
    let opts = crate::config::get().engine_options(a.public_url());
    let stores = ferry_sync::webhooks::WebhookStores::new(
        ferry_sync::db::open(&queue).await?,
        cipher.clone(),
        queue.clock(),
    );
    Ok(Engine::new(queue, cipher, client, stores, opts).await?)
}

#[derive(clap::Subcommand, Debug)]
pub enum NetworkCommand {
    /// Adds a store to the network (or replaces its URL, token, secret and rules): through an
    /// app (`--shop-domain` with `--app` or `--client-id`), or with a legacy app's token
    /// (`--graphql-url`, FERRY_STORE_TOKEN, FERRY_WEBHOOK_SECRET).
    Add {
        #[command(flatten)]
        engine: EngineArgs,
        name: String,
        /// parent or child.
        #[arg(long)]
        role: String,
        /// The store's domain, such as example.myshopify.com (a store reached through an app).
        #[arg(long, conflicts_with = "graphql_url")]
        shop_domain: Option<String>,
        /// A registered app (`ferry apps add`) the store is reached through.
        #[arg(long, requires = "shop_domain", conflicts_with = "client_id")]
        app: Option<String>,
        /// The store's own app: its client id; the secret comes from FERRY_CLIENT_SECRET.
        #[arg(long, requires = "shop_domain")]
        client_id: Option<String>,
        /// client_credentials (an app of the store's organization: ferry asks for tokens) or
        /// authorization_code (the store installs the app through /oauth/shopify/install).
        #[arg(long, default_value = "client_credentials")]
        grant: String,
        /// A legacy app's Admin GraphQL endpoint (…/admin/api/2026-04/graphql.json).
        #[arg(long, required_unless_present = "shop_domain")]
        graphql_url: Option<String>,
        /// A legacy app's Admin API access token.
        #[arg(long, env = "FERRY_STORE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The secret a legacy app's webhooks are signed with.
        #[arg(long, env = "FERRY_WEBHOOK_SECRET", hide_env_values = true)]
        webhook_secret: Option<String>,
        /// Sync rules as JSON: `{"fields": ["title", …], "price": {"percent": 10, "ending": ".99"}}`.
        #[arg(long, default_value = "{}")]
        rules: String,
    },
    /// Replaces a store's rules.
    Rules {
        #[command(flatten)]
        engine: EngineArgs,
        name: String,
        rules: String,
    },
    /// Enqueues connecting a store: webhooks, location; a child's catalog linked by SKU.
    Connect {
        #[command(flatten)]
        engine: EngineArgs,
        name: String,
        /// Follow the job until it ends (a worker must be running), showing the phase: a
        /// large catalog's bulk export with its object count.
        #[arg(long)]
        wait: bool,
    },
    /// The stores of the network, as JSON lines.
    List {
        #[command(flatten)]
        engine: EngineArgs,
    },
    /// Parent products a child could not be linked for (blank or duplicate SKUs), and why.
    Problems {
        #[command(flatten)]
        engine: EngineArgs,
        child: String,
    },
}

#[derive(clap::Subcommand, Debug)]
pub enum AppsCommand {
    /// Registers an app made in Shopify's Dev Dashboard (or replaces it): its client id, the
    /// scopes it asks for; the client secret from FERRY_CLIENT_SECRET (never a flag). Stores
    /// name it with `ferry network add … --app NAME`.
    Add {
        #[command(flatten)]
        engine: EngineArgs,
        name: String,
        #[arg(long)]
        client_id: String,
        /// Comma-separated (default: what ferry needs).
        #[arg(long)]
        scopes: Option<String>,
    },
    /// The registered apps, as JSON lines (never their secrets).
    List {
        #[command(flatten)]
        engine: EngineArgs,
    },
}

pub async fn run_apps(cmd: AppsCommand) -> Result<()> {
    match cmd {
        AppsCommand::Add {
            engine: e,
            name,
            client_id,
            scopes,
        } => {
            let secret = std::env::var("FERRY_CLIENT_SECRET")
                .context("set FERRY_CLIENT_SECRET to the app's client secret (never a flag)")?;
            let scopes = scopes.unwrap_or_else(|| ferry_sync::credentials::NEEDED_SCOPES.join(","));
            let missing = ferry_sync::credentials::missing_scopes(&scopes);
            engine(&e)
                .await?
                .network()
                .put_app(&name, &client_id, &secret, &scopes)
                .await?;
            println!("app {name} saved (scopes {scopes})");
            if !missing.is_empty() {
                eprintln!("warning: ferry also needs {}", missing.join(", "));
            }
        }
        AppsCommand::List { engine: e } => {
            for a in engine(&e).await?.network().apps().await? {
                println!("{}", serde_json::to_string(&a)?);
            }
        }
    }
    Ok(())
}

#[derive(clap::Subcommand, Debug)]
pub enum SyncCommand {
    /// Compares children with the parent and enqueues the repairs (a worker applies them).
    Reconcile {
        #[command(flatten)]
        engine: EngineArgs,
        /// One child (default: every child).
        #[arg(long)]
        child: Option<String>,
        /// Every product, not only those changed since the last run.
        #[arg(long)]
        full: bool,
    },
    /// The audit log (every write ferry made to a store), oldest first, as JSON lines.
    Audit {
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long)]
        store: Option<String>,
        /// Only entries after this id (the last id of the previous page).
        #[arg(long, default_value = "")]
        after: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Reconciliation runs, newest first, as JSON lines.
    Runs {
        #[command(flatten)]
        engine: EngineArgs,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

fn parse_rules(s: &str) -> Result<Rules> {
    let rules: Rules = serde_json::from_str(s).context("--rules is not valid rules JSON")?;
    rules.validate().map_err(anyhow::Error::msg)?;
    Ok(rules)
}

pub async fn run_network(cmd: NetworkCommand) -> Result<()> {
    match cmd {
        NetworkCommand::Add {
            engine: e,
            name,
            role,
            shop_domain,
            app,
            client_id,
            grant,
            graphql_url,
            token,
            webhook_secret,
            rules,
        } => {
            let engine = engine(&e).await?;
            let role = Role::parse(&role)?;
            let rules = parse_rules(&rules)?;
            match (shop_domain, graphql_url) {
                (Some(domain), _) => {
                    let kind = match grant.as_str() {
                        "client_credentials" => Kind::ClientCredentials,
                        "authorization_code" => Kind::AuthorizationCode,
                        other => {
                            bail!("--grant {other:?}: client_credentials or authorization_code")
                        }
                    };
                    let app = match (app, client_id) {
                        (Some(a), _) => AppRef::Named(a),
                        (None, Some(id)) => AppRef::Own {
                            client_id: id,
                            client_secret: std::env::var("FERRY_CLIENT_SECRET").context(
                                "set FERRY_CLIENT_SECRET to the app's client secret (never a flag)",
                            )?,
                        },
                        (None, None) => {
                            bail!("give --app NAME or --client-id (with FERRY_CLIENT_SECRET)")
                        }
                    };
                    engine
                        .add_app_store(&name, role, &domain, kind, &app, &rules)
                        .await?;
                    if kind == Kind::AuthorizationCode {
                        println!(
                            "store {name} ({}) added; install the app on it: open {}/oauth/shopify/install?shop={domain}",
                            role.as_str(),
                            e.public_url().trim_end_matches('/')
                        );
                        return Ok(());
                    }
                }
                (None, Some(url)) => {
                    let (Some(token), Some(secret)) = (token, webhook_secret) else {
                        bail!(
                            "a store with --graphql-url needs FERRY_STORE_TOKEN and FERRY_WEBHOOK_SECRET"
                        );
                    };
                    engine
                        .add_store(&name, role, &url, &token, &secret, &rules)
                        .await?;
                }
                (None, None) => bail!("give --shop-domain (an app) or --graphql-url (a token)"),
            }
            println!(
                "store {name} ({}) added; its webhooks go to {}/webhooks/shopify/{name}; connect it with `ferry network connect {name}`",
                role.as_str(),
                e.public_url().trim_end_matches('/')
            );
        }
        NetworkCommand::Rules {
            engine: e,
            name,
            rules,
        } => {
            engine(&e)
                .await?
                .network()
                .set_rules(&name, &parse_rules(&rules)?)
                .await?;
            println!(
                "rules of {name} saved; `ferry sync reconcile --child {name} --full` applies them to every product"
            );
        }
        NetworkCommand::Connect {
            engine: e,
            name,
            wait,
        } => {
            let engine = engine(&e).await?;
            let job = engine.connect_store(&name).await?;
            println!("connecting {name}: job {job} (a worker runs it)");
            if wait {
                follow_connect(&engine, &name, &job).await?;
            }
        }
        NetworkCommand::List { engine: e } => {
            for s in engine(&e).await?.network().all().await? {
                println!("{}", serde_json::to_string(&s)?);
            }
        }
        NetworkCommand::Problems { engine: e, child } => {
            for (product, sku, reason) in engine(&e).await?.link_problems(&child).await? {
                println!(
                    "{}",
                    serde_json::json!({"parent_product": product, "sku": sku, "reason": reason})
                );
            }
        }
    }
    Ok(())
}

pub async fn run_sync(cmd: SyncCommand) -> Result<()> {
    match cmd {
        SyncCommand::Reconcile {
            engine: e,
            child,
            full,
        } => {
            let engine = engine(&e).await?;
            let children = match &child {
                Some(c) => vec![engine.network().store(c).await?],
                None => engine.network().children().await?,
            };
            if children.is_empty() {
                bail!("the network has no children");
            }
            for c in children {
                let bar = progress(&c.name);
                let report = engine
                    .reconcile_child(&c, full, &mut |p: &ferry_sync::bulk::RunProgress| {
                        if let Some(b) = &bar {
                            b.set_message(format!(
                                "{}: {} · {} products checked",
                                c.name, p.phase, p.checked
                            ));
                        }
                    })
                    .await;
                if let Some(b) = bar {
                    b.finish_and_clear();
                }
                let report = report?;
                println!(
                    "{}: {} checked · {} to copy · {} to update · {} stock levels to fix (the repairs are jobs for the workers)",
                    c.name, report.checked, report.created, report.updated, report.stock_fixed
                );
                let mut line = serde_json::to_value(&report)?;
                line["peak_rss_mb"] = serde_json::json!(peak_rss_mb());
                println!("{line}");
            }
        }
        SyncCommand::Audit {
            engine: e,
            store,
            after,
            limit,
        } => {
            let entries = engine(&e)
                .await?
                .network()
                .audit_log(store.as_deref(), &after, limit.clamp(1, 1000))
                .await?;
            for a in entries {
                println!("{}", serde_json::to_string(&a)?);
            }
        }
        SyncCommand::Runs { engine: e, limit } => {
            for r in engine(&e).await?.runs(limit.clamp(1, 1000)).await? {
                println!("{}", serde_json::to_string(&r)?);
            }
        }
    }
    Ok(())
}

/// Follows a connect job to its end, showing the child's run phase as it moves.
async fn follow_connect(engine: &Engine, name: &str, job: &str) -> Result<()> {
    use ferry_queue::JobState;
    let id: uuid::Uuid = job.parse().context("the job id")?;
    let since = engine.queue().clock().now_ms();
    let bar = progress(name);
    let mut last = String::new();
    let state = loop {
        let record = engine
            .queue()
            .get(id)
            .await?
            .context("the connect job is gone")?;
        let run = engine
            .latest_run(name)
            .await?
            .filter(|r| r.started_ms >= since);
        if let Some(r) = &run {
            let line = format!("{name}: {} ({})", r.phase, r.mode);
            if line != last {
                match &bar {
                    Some(b) => b.set_message(line.clone()),
                    None => eprintln!("{line}"),
                }
                last = line;
            }
        }
        if !matches!(
            record.state,
            JobState::Queued | JobState::Running | JobState::Retrying
        ) {
            break (record.state, run);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    let (state, run) = state;
    if let Some(r) = run {
        println!("{}", serde_json::to_string(&r)?);
    }
    if state != JobState::Completed {
        bail!("connecting {name} ended {state}: see `ferry jobs get {job}`");
    }
    Ok(())
}

fn progress(name: &str) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(200));
    bar.set_message(format!("{name}: reading the parent's catalog"));
    Some(bar)
}

/// The most memory this process has held (VmHWM), in MB; 0 where /proc is not there.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| (kb / 1024.0 * 10.0).round() / 10.0)
        .unwrap_or(0.0)
}
