//! `ferry tokens …`: API tokens kept in the database with a name and a role. A new token is
//! printed once; only its SHA-256 is stored.

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use ferry_http::access::{Access, Role};

use crate::DbArgs;

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Make a token and print it (the only time it is shown).
    Add {
        #[command(flatten)]
        db: DbArgs,
        /// Letters, digits, '-', '_' or '.'; recorded with every action the token takes.
        name: String,
        /// admin (everything), operator (jobs, queues, deliveries, reconcile, connecting
        /// stores), read (every GET) or orders (create orders, read its own).
        #[arg(long)]
        role: String,
        /// Orders made with this token may give each line's unit price (`price_cents`)
        /// instead of paying the parent's current price.
        #[arg(long)]
        set_prices: bool,
    },
    /// The tokens in the database, as JSON lines (never the tokens themselves).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a token: calls with it are refused from now on.
    Revoke {
        #[command(flatten)]
        db: DbArgs,
        name: String,
    },
}

async fn access(db: &DbArgs) -> Result<Access> {
    let queue = crate::jobs::open(db).await?;
    let configured = crate::config::get()
        .tokens
        .iter()
        .map(|t| t.configured())
        .collect::<Result<_>>()?;
    Ok(Access::open(&queue, configured).await?)
}

pub async fn run(cmd: TokensCommand) -> Result<()> {
    match cmd {
        TokensCommand::Add {
            db,
            name,
            role,
            set_prices,
        } => {
            let role = Role::parse(&role).with_context(|| {
                format!("unknown role {role:?} (admin, operator, read or orders)")
            })?;
            let token = access(&db).await?.add(&name, role, set_prices).await?;
            println!("{token}");
            eprintln!("token {name} ({role}) made; it is not shown again");
        }
        TokensCommand::List { db } => {
            let listed = access(&db).await?.list().await?;
            for t in listed {
                println!("{}", serde_json::to_string(&t)?);
            }
        }
        TokensCommand::Revoke { db, name } => {
            let gone = access(&db).await?.revoke(&name).await?;
            if !gone {
                bail!("no token named {name:?}");
            }
            println!("token {name} revoked");
        }
    }
    Ok(())
}
