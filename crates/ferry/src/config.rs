//! The effective configuration: built-in defaults, then a TOML file, then `FERRY_*`
//! environment variables; a command-line flag overrides all three. Loaded once at start.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::{Deserialize, Deserializer, Serialize};

/// The defaults, with a comment on every key (`ferry config --defaults` prints them).
pub const DEFAULTS: &str = include_str!("../config/ferry.default.toml");

/// The file read when no `--config` is given, if it exists.
pub const LOCAL_FILE: &str = "ferry.toml";

/// What a secret prints as.
const MASK: &str = "********";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub database_url: String,
    pub direct_database_url: String,
    pub encryption_key: String,
    pub log: String,
    pub listen: SocketAddr,
    #[serde(deserialize_with = "list")]
    pub admin_tokens: Vec<String>,
    #[serde(deserialize_with = "list")]
    pub cors_origins: Vec<String>,
    pub request_timeout_s: u64,
    pub body_limit: usize,
    pub header_read_timeout_s: u64,
    pub max_connections: usize,
    #[serde(deserialize_with = "list")]
    pub queues: Vec<String>,
    pub concurrency: usize,
    pub buffer: usize,
    pub public_url: String,
    pub reconcile_cron: String,
    pub payments_url: String,
    pub payments_token: String,
    pub idempotency_header: String,
    pub orders_create_per_min: i64,
    pub orders_list_per_min: i64,
    pub orders_detail_per_min: i64,
    pub orders_recover_after_s: u64,
    pub allow_insecure_store_urls: bool,
    #[serde(deserialize_with = "list")]
    pub allowed_store_hosts: Vec<String>,
    pub max_upstream_body_bytes: usize,
    pub shop_url: String,
    pub bulk_threshold_products: u64,
    pub bulk_poll_ms: u64,
    pub bulk_parts: usize,
    /// Named tokens with a role (`[[tokens]]` tables; last, as TOML wants tables after keys).
    #[serde(default)]
    pub tokens: Vec<TokenEntry>,
}

impl Config {
    /// Where stores may be called and how much of an answer is read.
    pub fn outbound(&self) -> ferry_connect::Outbound {
        ferry_connect::Outbound {
            allow_insecure: self.allow_insecure_store_urls,
            allowed_hosts: self.allowed_store_hosts.clone(),
            max_body_bytes: self.max_upstream_body_bytes.max(1024),
        }
    }

    /// The sync engine's options under this configuration, its webhooks sent to `public_url`.
    pub fn engine_options(&self, public_url: String) -> ferry_sync::EngineOptions {
        ferry_sync::EngineOptions {
            public_url,
            shop_url: self.shop_url.clone(),
            bulk_threshold_products: self.bulk_threshold_products,
            bulk: ferry_connect::shopify::bulk::BulkOptions {
                poll: std::time::Duration::from_millis(self.bulk_poll_ms.max(10)),
                parts: self.bulk_parts,
                ..Default::default()
            },
            ..ferry_sync::EngineOptions::default()
        }
    }

    /// The connectors' client options under this configuration.
    pub fn client_options(&self) -> ferry_connect::ClientOptions {
        ferry_connect::ClientOptions {
            outbound: self.outbound(),
            ..ferry_connect::ClientOptions::default()
        }
    }
}

/// One `[[tokens]]` table: a name, a role, and the token or (better) its SHA-256 in hex.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub name: String,
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    /// Orders made with it may give each line's unit price.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub set_prices: bool,
}

impl TokenEntry {
    /// The token as the server holds it; a clear error naming the entry when it is not usable.
    pub fn configured(&self) -> Result<ferry_http::access::ConfiguredToken> {
        let role = ferry_http::access::Role::parse(&self.role).with_context(|| {
            format!(
                "invalid configuration: token {:?} has role {:?} (admin, operator, read or orders)",
                self.name, self.role
            )
        })?;
        match (self.token.is_empty(), self.sha256.is_empty()) {
            (false, true) if self.token.len() >= 16 => Ok(ferry_http::access::ConfiguredToken {
                set_prices: self.set_prices,
                ..ferry_http::access::ConfiguredToken::from_plain(&self.name, role, &self.token)
            }),
            (true, false) => {
                let mut sha256 = [0u8; 32];
                hex::decode_to_slice(&self.sha256, &mut sha256).with_context(|| {
                    format!(
                        "invalid configuration: token {:?}: sha256 is 64 hex digits",
                        self.name
                    )
                })?;
                Ok(ferry_http::access::ConfiguredToken {
                    name: self.name.clone(),
                    role,
                    sha256,
                    set_prices: self.set_prices,
                })
            }
            _ => bail!(
                "invalid configuration: token {:?} needs either token (16 characters or more) or sha256",
                self.name
            ),
        }
    }
}

/// The keys, as spelled in the file; the environment variable is `FERRY_` and the key in
/// capitals. Only these are read from the environment (FERRY_CONFIG, FERRY_WEBHOOK_SECRET
/// and the like are a command's inputs, not configuration).
const KEYS: [&str; 30] = [
    "database_url",
    "direct_database_url",
    "encryption_key",
    "log",
    "listen",
    "admin_tokens",
    "cors_origins",
    "request_timeout_s",
    "body_limit",
    "header_read_timeout_s",
    "max_connections",
    "queues",
    "concurrency",
    "buffer",
    "public_url",
    "reconcile_cron",
    "payments_url",
    "payments_token",
    "idempotency_header",
    "orders_create_per_min",
    "orders_list_per_min",
    "orders_detail_per_min",
    "orders_recover_after_s",
    "allow_insecure_store_urls",
    "allowed_store_hosts",
    "max_upstream_body_bytes",
    "shop_url",
    "bulk_threshold_products",
    "bulk_poll_ms",
    "bulk_parts",
];

/// A list from a TOML array or from one comma-separated string (`FERRY_ADMIN_TOKENS=a,b`).
fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Item {
        Text(String),
        Number(i64),
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        One(Item),
        Many(Vec<Item>),
    }
    let text = |i: Item| match i {
        Item::Text(s) => s,
        Item::Number(n) => n.to_string(),
    };
    let items: Vec<String> = match Raw::deserialize(d)? {
        Raw::One(i) => text(i).split(',').map(str::to_owned).collect(),
        Raw::Many(v) => v.into_iter().map(text).collect(),
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect())
}

/// Where the configuration came from: the file read, if any.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub file: Option<PathBuf>,
}

impl Config {
    /// Defaults ← `file` (or ./ferry.toml when it exists) ← the environment.
    pub fn load(file: Option<&Path>) -> Result<(Config, Source)> {
        let mut fig = Figment::from(Toml::string(DEFAULTS));
        let path = match file {
            Some(p) if !p.is_file() => bail!("config file {} not found", p.display()),
            Some(p) => Some(p.to_path_buf()),
            None => Some(PathBuf::from(LOCAL_FILE)).filter(|p| p.is_file()),
        };
        if let Some(p) = &path {
            fig = fig.merge(Toml::file_exact(p));
        }
        fig = fig.merge(Env::prefixed("FERRY_").only(&KEYS));
        let cfg: Config = fig.extract().map_err(|e| {
            // figment names the key and the layer it came from.
            anyhow::anyhow!("invalid configuration: {e}")
        })?;
        cfg.validate()?;
        Ok((cfg, Source { file: path }))
    }

    fn validate(&self) -> Result<()> {
        if self.request_timeout_s == 0 {
            bail!("invalid configuration: request_timeout_s must be at least 1");
        }
        if self.header_read_timeout_s == 0 {
            bail!("invalid configuration: header_read_timeout_s must be at least 1");
        }
        if self.max_connections == 0 {
            bail!("invalid configuration: max_connections must be at least 1");
        }
        if self.body_limit == 0 {
            bail!("invalid configuration: body_limit must be at least 1");
        }
        if self.concurrency == 0 {
            bail!("invalid configuration: concurrency must be at least 1");
        }
        if !(1..=5).contains(&self.bulk_parts) {
            bail!(
                "invalid configuration: bulk_parts is 1 to 5 (Shopify runs at most 5 bulk queries per shop at once)"
            );
        }
        if self.queues.is_empty() {
            bail!("invalid configuration: queues must name at least one queue");
        }
        if [
            self.orders_create_per_min,
            self.orders_list_per_min,
            self.orders_detail_per_min,
        ]
        .iter()
        .any(|n| *n < 1)
        {
            bail!("invalid configuration: the orders_*_per_min limits must be at least 1");
        }
        if reqwest::header::HeaderName::from_bytes(self.idempotency_header.as_bytes()).is_err() {
            bail!("invalid configuration: idempotency_header is not a header name");
        }
        if self.admin_tokens.iter().any(|t| t.len() < 16) {
            bail!("invalid configuration: admin tokens must be at least 16 characters");
        }
        for t in &self.tokens {
            t.configured()?;
        }
        Ok(())
    }

    /// The configuration as TOML with its secrets masked (and a database password).
    pub fn masked_toml(&self) -> Result<String> {
        let mut shown = self.clone();
        shown.database_url = ferry_queue::redact_url(&self.database_url);
        shown.direct_database_url = ferry_queue::redact_url(&self.direct_database_url);
        shown.payments_url = ferry_queue::redact_url(&self.payments_url);
        if !shown.encryption_key.is_empty() {
            shown.encryption_key = MASK.to_owned();
        }
        shown.admin_tokens = vec![MASK.to_owned(); self.admin_tokens.len()];
        if !shown.payments_token.is_empty() {
            shown.payments_token = MASK.to_owned();
        }
        for t in shown.tokens.iter_mut().filter(|t| !t.token.is_empty()) {
            t.token = MASK.to_owned();
        }
        toml::to_string(&shown).context("printing the configuration")
    }

    /// The orders API's options.
    pub fn orders(&self) -> ferry_sync::orders::OrdersOptions {
        ferry_sync::orders::OrdersOptions {
            payments_url: self.payments_url.clone(),
            payments_token: self.payments_token.clone(),
            key_header: self.idempotency_header.clone(),
            limits: ferry_sync::orders::Limits {
                create: self.orders_create_per_min,
                list: self.orders_list_per_min,
                detail: self.orders_detail_per_min,
            },
            recover_after: std::time::Duration::from_secs(self.orders_recover_after_s),
            body_limit: self.body_limit,
        }
    }

    /// The encryption key, or why there is none.
    pub fn key(&self) -> Result<&str> {
        if self.encryption_key.is_empty() {
            bail!(
                "no encryption key: set encryption_key in the config file or FERRY_ENCRYPTION_KEY \
                 (`ferry stores new-key` makes one)"
            );
        }
        Ok(&self.encryption_key)
    }
}

static CONFIG: OnceLock<Config> = OnceLock::new();

/// Loads the configuration for this process (once, before any command runs).
pub fn init(file: Option<&Path>) -> Result<Source> {
    let (cfg, source) = Config::load(file)?;
    let _ = CONFIG.set(cfg);
    Ok(source)
}

/// The process's configuration (the defaults if `init` was not called, as in unit tests).
pub fn get() -> &'static Config {
    CONFIG.get_or_init(|| {
        Figment::from(Toml::string(DEFAULTS))
            .extract()
            .unwrap_or_else(|e| panic!("the built-in defaults do not parse: {e}"))
    })
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return its error type
mod tests {
    use super::*;

    #[test]
    fn the_layers_override_in_order_and_secrets_are_masked() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "custom.toml",
                r#"
                listen = "0.0.0.0:9000"
                concurrency = 4
                admin_tokens = ["from-the-file-0123456789"]
                encryption_key = "c2VjcmV0LWtleS1vZi0zMi1ieXRlcy1mb3ItdGVzdHM="
                "#,
            )?;
            jail.set_env("FERRY_CONCURRENCY", "8");
            jail.set_env(
                "FERRY_ADMIN_TOKENS",
                "token-one-0123456789, token-two-0123456789",
            );
            jail.set_env("FERRY_WEBHOOK_SECRET", "not configuration");
            let (cfg, source) =
                Config::load(Some(Path::new("custom.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(source.file.as_deref(), Some(Path::new("custom.toml")));
            assert_eq!(cfg.listen.port(), 9000, "the file over the default");
            assert_eq!(cfg.concurrency, 8, "the environment over the file");
            assert_eq!(cfg.admin_tokens.len(), 2, "a comma-separated list");
            assert_eq!(cfg.request_timeout_s, 30, "a default nothing overrides");
            let shown = cfg.masked_toml().map_err(|e| e.to_string())?;
            assert!(!shown.contains("token-one"), "{shown}");
            assert!(!shown.contains("c2VjcmV0"), "{shown}");
            assert!(shown.contains("concurrency = 8"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn the_defaults_are_the_servers() {
        let d = get();
        assert_eq!(d.body_limit, ferry_http::app::DEFAULT_BODY_LIMIT);
        assert_eq!(d.database_url, "sqlite:ferry.db");
        assert!(d.admin_tokens.is_empty() && d.encryption_key.is_empty());
    }

    #[test]
    fn bad_values_and_unknown_keys_say_which() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("ferry.toml", "concurency = 4\n")?;
            let e = Config::load(None)
                .expect_err("a typo is refused")
                .to_string();
            assert!(e.contains("concurency"), "{e}");
            jail.create_file("ferry.toml", "listen = \"not an address\"\n")?;
            let e = Config::load(None).expect_err("not an address").to_string();
            assert!(e.contains("listen"), "{e}");
            jail.create_file("ferry.toml", "")?;
            jail.set_env("FERRY_ADMIN_TOKENS", "short");
            let e = Config::load(None).expect_err("a short token").to_string();
            assert!(e.contains("16 characters"), "{e}");
            jail.set_env("FERRY_ADMIN_TOKENS", "a-token-long-enough-to-pass");
            jail.set_env("FERRY_BULK_PARTS", "6");
            let e = Config::load(None)
                .expect_err("more parts than Shopify runs")
                .to_string();
            assert!(e.contains("bulk_parts"), "{e}");
            jail.set_env("FERRY_BULK_PARTS", "3");
            let (c, _) = Config::load(None).map_err(|e| e.to_string())?;
            assert_eq!(c.engine_options(String::new()).bulk.parts, 3);
            let e = Config::load(Some(Path::new("missing.toml"))).expect_err("no such file");
            assert!(e.to_string().contains("missing.toml"));
            Ok(())
        });
    }
}
