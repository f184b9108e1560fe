//! `ferry`: one binary for every role. This file is the edge: arguments, logging, exit codes.

mod bench;
mod bench_abuse;
mod bench_api;
mod bench_chaos;
mod bench_ingest;
mod bench_orders;
mod bench_reconcile;
mod bench_sync;
mod bench_tokens;
mod bench_ui;
mod config;
mod demo;
mod health;
mod jobs;
mod mock;
mod network;
mod pgbouncer;
mod serve;
mod simulated;
mod sync_api;
mod tokens;
mod worker;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "Keeps a network of online stores in sync."
)]
struct Cli {
    /// A TOML config file (default: ./ferry.toml when it exists); `FERRY_*` variables and
    /// flags override it. `ferry config` shows the result.
    #[arg(long, global = true, env = "FERRY_CONFIG")]
    config: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone, Debug)]
pub struct DbArgs {
    /// postgres://… or sqlite:path (config: database_url; default sqlite:ferry.db).
    #[arg(long)]
    database_url: Option<String>,
}

impl DbArgs {
    /// The flag, else the configuration's.
    pub fn url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| config::get().database_url.clone())
    }
}

#[derive(Subcommand)]
enum Command {
    /// The whole product in one process on an embedded SQLite file: a simulated parent and
    /// children, the API and a worker; plays a scenario and checks that every store matches.
    Demo(demo::DemoArgs),
    /// Run jobs until SIGINT or SIGTERM, then shut down gracefully.
    Worker(worker::WorkerArgs),
    /// Apply every table's migrations (queue, connectors, sync) and exit; every command also
    /// applies the ones it needs at start.
    Migrate(DbArgs),
    /// Inspect, enqueue, cancel and replay jobs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Queue depth, pause and resume.
    #[command(subcommand)]
    Queues(jobs::QueuesCommand),
    /// Run the simulated commerce platform (stores, REST API, control API).
    Mock(mock::MockArgs),
    /// Serve webhook ingress and health until SIGINT or SIGTERM.
    Serve(serve::ServeArgs),
    /// Register the stores that send webhooks, rotate their secrets.
    #[command(subcommand)]
    Stores(serve::StoresCommand),
    /// API tokens with a name and a role: make, list, revoke.
    #[command(subcommand)]
    Tokens(tokens::TokensCommand),
    /// Apps made in Shopify's Dev Dashboard that stores are reached through: add, list.
    #[command(subcommand)]
    Apps(network::AppsCommand),
    /// The stores of the sync network: add, rules, connect, list, link problems.
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Reconciliation, its runs, and the audit log of every write to a store.
    #[command(subcommand)]
    Sync(network::SyncCommand),
    /// Copy new and changed records from one JSON API to another (`--once` or `--every 30s`).
    SyncApi(sync_api::SyncApiArgs),
    /// Benchmarks that print figures (the last line is JSON).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Exit 0 when `ferry serve` answers on /healthz (or, with --database, when the database
    /// does): the container image's HEALTHCHECK.
    Healthcheck(health::HealthArgs),
    /// Print the effective configuration (defaults ← file ← FERRY_* variables), secrets
    /// masked; `--defaults` prints the built-in defaults with what each key means.
    Config {
        #[arg(long)]
        defaults: bool,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let source = match config::init(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    // The demo talks to its terminal; its logs only say what went wrong.
    init_logging(if matches!(cli.command, Command::Demo(_)) {
        "warn"
    } else {
        &config::get().log
    });
    if let Some(file) = &source.file {
        tracing::debug!(file = %file.display(), "configuration read");
    }
    match run(cli, source).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, source: config::Source) -> Result<()> {
    match cli.command {
        Command::Config { defaults: true } => {
            print!("{}", config::DEFAULTS);
            Ok(())
        }
        Command::Config { defaults: false } => {
            let from = match &source.file {
                Some(f) => format!("the defaults, {}, FERRY_* variables", f.display()),
                None => "the defaults and FERRY_* variables (no config file)".to_owned(),
            };
            println!("# effective configuration, from {from}; secrets masked");
            print!("{}", config::get().masked_toml()?);
            Ok(())
        }
        Command::Demo(args) => demo::run(args).await,
        Command::Healthcheck(args) => health::run(args).await,
        Command::Worker(args) => worker::run(args).await,
        Command::Migrate(db) => {
            // Through the direct connection when one is configured (see jobs::open).
            let url = jobs::direct_url().unwrap_or_else(|| db.url());
            println!("migrations applied ({})", jobs::migrate(&url).await?);
            Ok(())
        }
        Command::Jobs(cmd) => jobs::run_jobs(cmd).await,
        Command::Queues(cmd) => jobs::run_queues(cmd).await,
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Mock(args) => mock::run(args).await,
        Command::SyncApi(args) => sync_api::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Apps(cmd) => network::run_apps(cmd).await,
        Command::Network(cmd) => network::run_network(cmd).await,
        Command::Sync(cmd) => network::run_sync(cmd).await,
        Command::Stores(cmd) => serve::run_stores(cmd).await,
        Command::Tokens(cmd) => tokens::run(cmd).await,
    }
}

/// JSON logs on stderr, filtered by the config's `log` (FERRY_LOG); the demo's own default
/// gives way to an explicit FERRY_LOG.
fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
