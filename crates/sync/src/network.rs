//! The network's state in the database: its stores (credentials sealed at rest), the links
//! between parent and child products and variants, the stock ferry believes each store holds,
//! the intent ledger, the order marks and the audit log.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use ferry_core::Cipher;
use ferry_core::Clock;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::SyncError;
use crate::rules::Rules;
use ferry_db::{Db, exec, row, rows, tx_exec};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Parent,
    Child,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Parent => "parent",
            Role::Child => "child",
        }
    }

    pub fn parse(s: &str) -> Result<Role, SyncError> {
        match s {
            "parent" => Ok(Role::Parent),
            "child" => Ok(Role::Child),
            other => Err(SyncError::Invalid(format!(
                "role {other:?} is neither parent nor child"
            ))),
        }
    }
}

ferry_db::text_enum! {
    /// Where a store of the network stands: `Connected` once its webhooks are subscribed and
    /// its location known (a child's catalog linked too).
    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum StoreState {
        New = "new",
        Connected = "connected",
    }
}

ferry_db::text_enum! {
    /// Where a parent product's copy in a child stands.
    #[derive(Serialize)]
    #[serde(rename_all = "snake_case")]
    pub enum LinkState {
        /// A create is in flight (its intent recorded, so a retry finds the copy by its tag).
        Creating = "creating",
        Linked = "linked",
        /// Deleted in the parent: the copy is archived.
        Archived = "archived",
        /// A create failed for good and was undone.
        Failed = "failed",
    }
}

/// A store of the network, without its token (see `Network::token`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoreConfig {
    pub name: String,
    pub role: Role,
    pub graphql_url: String,
    /// The location whose stock ferry keeps in line (the store's first, found on connect).
    pub location_id: String,
    pub rules: Rules,
    pub state: StoreState,
    /// How ferry gets its token: `static`, `client_credentials` or `authorization_code`.
    pub credentials: crate::credentials::Kind,
    /// For a store reached through an app: its myshopify.com domain.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub shop_domain: String,
}

#[derive(sqlx::FromRow)]
struct StoreRow {
    name: String,
    role: String,
    graphql_url: String,
    location_id: String,
    rules: String,
    state: StoreState,
    credentials: crate::credentials::Kind,
    shop_domain: String,
}

impl StoreRow {
    fn into_config(self) -> Result<StoreConfig, SyncError> {
        Ok(StoreConfig {
            role: Role::parse(&self.role)?,
            rules: serde_json::from_str(&self.rules)
                .map_err(|e| SyncError::Invalid(format!("rules of {}: {e}", self.name)))?,
            name: self.name,
            graphql_url: self.graphql_url,
            location_id: self.location_id,
            state: self.state,
            credentials: self.credentials,
            shop_domain: self.shop_domain,
        })
    }
}

/// A parent product and its copy in a child.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Link {
    pub child: String,
    pub parent_product: String,
    pub child_product: Option<String>,
    pub state: LinkState,
    /// The parent's `updated_at` of the last state pushed (older snapshots are not applied).
    pub parent_updated: i64,
}

/// A parent variant and its copy in a child.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, sqlx::FromRow)]
pub struct VariantLink {
    pub child: String,
    pub parent_variant: String,
    pub parent_item: String,
    pub child_variant: String,
    pub child_item: String,
    pub sku: Option<String>,
    pub parent_product: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at_ms: i64,
    pub store: String,
    pub entity: String,
    pub action: String,
    /// `{field: [old, new]}`, or what the action moved.
    pub fields: Value,
    /// The event or job that caused it.
    pub cause: String,
}

type AuditRow = (String, i64, String, String, String, String, String);

#[derive(Clone)]
pub struct Network {
    pub(crate) db: Db,
    cipher: Cipher,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Network").finish_non_exhaustive()
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

const STORE_COLUMNS: &str =
    "name, role, graphql_url, location_id, rules, state, credentials, shop_domain";

impl Network {
    pub fn new(db: Db, cipher: Cipher, clock: Arc<dyn Clock>) -> Network {
        Network { db, cipher, clock }
    }

    pub(crate) fn cipher(&self) -> &Cipher {
        &self.cipher
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// What [`Network::put`] refuses, checked without writing: 400 for a bad field, 409
    /// for a second parent.
    pub async fn check(
        &self,
        name: &str,
        role: Role,
        graphql_url: &str,
        token: &str,
        rules: &Rules,
    ) -> Result<(), SyncError> {
        if !valid_name(name) {
            return Err(SyncError::Invalid(
                "a store name is 1 to 64 of [A-Za-z0-9_-]".into(),
            ));
        }
        if !(graphql_url.starts_with("http://") || graphql_url.starts_with("https://")) {
            return Err(SyncError::Invalid(format!(
                "graphql_url {graphql_url:?} is not an http(s) URL"
            )));
        }
        if crate::blank(token) || token.chars().count() > 4096 {
            return Err(SyncError::Invalid(
                "the access token is 1 to 4096 characters, not only spaces".into(),
            ));
        }
        rules.validate().map_err(SyncError::Invalid)?;
        if role == Role::Parent
            && let Ok(p) = self.parent().await
            && p.name != name
        {
            return Err(SyncError::Conflict(format!(
                "the network already has a parent ({})",
                p.name
            )));
        }
        Ok(())
    }

    /// Adds a store to the network (or replaces its URL, token and rules).
    pub async fn put(
        &self,
        name: &str,
        role: Role,
        graphql_url: &str,
        token: &str,
        rules: &Rules,
    ) -> Result<(), SyncError> {
        self.check(name, role, graphql_url, token, rules).await?;
        let sealed = self
            .cipher
            .seal(&format!("network:{name}"), token.as_bytes());
        let rules = serde_json::to_string(rules).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let now = self.now_ms();
        let sql = "INSERT INTO ferry_network (name, role, graphql_url, token, rules, created_ms, updated_ms)
                   VALUES ($1, $2, $3, $4, $5, $6, $6)
                   ON CONFLICT (name) DO UPDATE SET role = $2, graphql_url = $3, token = $4, rules = $5, updated_ms = $6";
        exec!(
            &self.db,
            sql,
            name,
            role.as_str(),
            graphql_url,
            &sealed,
            &rules,
            now
        )?;
        Ok(())
    }

    pub async fn set_rules(&self, name: &str, rules: &Rules) -> Result<(), SyncError> {
        rules.validate().map_err(SyncError::Invalid)?;
        let rules = serde_json::to_string(rules).map_err(|e| SyncError::Invalid(e.to_string()))?;
        let n = exec!(
            &self.db,
            "UPDATE ferry_network SET rules = $2, updated_ms = $3 WHERE name = $1",
            name,
            &rules,
            self.now_ms()
        )?;
        if n == 0 {
            return Err(SyncError::UnknownStore(name.to_owned()));
        }
        Ok(())
    }

    pub async fn set_connected(&self, name: &str, location_id: &str) -> Result<(), SyncError> {
        exec!(
            &self.db,
            "UPDATE ferry_network SET location_id = $2, state = $4, updated_ms = $3 WHERE name = $1",
            name,
            location_id,
            self.now_ms(),
            StoreState::Connected
        )?;
        Ok(())
    }

    pub async fn get(&self, name: &str) -> Result<Option<StoreConfig>, SyncError> {
        let sql = format!("SELECT {STORE_COLUMNS} FROM ferry_network WHERE name = $1");
        let r = row!(&self.db, StoreRow, sqlx::AssertSqlSafe(sql), name)?;
        r.map(StoreRow::into_config).transpose()
    }

    pub async fn store(&self, name: &str) -> Result<StoreConfig, SyncError> {
        self.get(name)
            .await?
            .ok_or_else(|| SyncError::UnknownStore(name.to_owned()))
    }

    /// Every store, parent first (a network is a handful of stores).
    pub async fn all(&self) -> Result<Vec<StoreConfig>, SyncError> {
        let sql = format!("SELECT {STORE_COLUMNS} FROM ferry_network ORDER BY role DESC, name");
        rows!(&self.db, StoreRow, sqlx::AssertSqlSafe(sql))?
            .into_iter()
            .map(StoreRow::into_config)
            .collect()
    }

    pub async fn parent(&self) -> Result<StoreConfig, SyncError> {
        self.all()
            .await?
            .into_iter()
            .find(|s| s.role == Role::Parent)
            .ok_or(SyncError::NoParent)
    }

    pub async fn children(&self) -> Result<Vec<StoreConfig>, SyncError> {
        Ok(self
            .all()
            .await?
            .into_iter()
            .filter(|s| s.role == Role::Child)
            .collect())
    }

    /// The store's access token, opened.
    pub async fn token(&self, name: &str) -> Result<String, SyncError> {
        let sealed: Option<(String,)> = row!(
            &self.db,
            (String,),
            "SELECT token FROM ferry_network WHERE name = $1",
            name
        )?;
        let (sealed,) = sealed.ok_or_else(|| SyncError::UnknownStore(name.to_owned()))?;
        let plain = self
            .cipher
            .open(&format!("network:{name}"), &sealed)
            .map_err(|e| SyncError::Crypto(format!("{name}: {e}")))?;
        String::from_utf8(plain).map_err(|e| SyncError::Crypto(e.to_string()))
    }

    // ---- links ------------------------------------------------------------------------

    /// Takes the push lock of (`child`, `product`) for `holder` until `until_ms`: true when
    /// it is free, lapsed or already `holder`'s.
    pub async fn lock_push(
        &self,
        child: &str,
        product: &str,
        holder: &str,
        until_ms: i64,
    ) -> Result<bool, SyncError> {
        let taken = exec!(
            &self.db,
            "INSERT INTO ferry_push_locks (child, product, holder, until_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (child, product) DO UPDATE SET holder = $3, until_ms = $4
             WHERE ferry_push_locks.holder = $3 OR ferry_push_locks.until_ms < $5",
            child,
            product,
            holder,
            until_ms,
            self.now_ms()
        )?;
        Ok(taken == 1)
    }

    /// Lets the push lock go, if `holder` still has it.
    pub async fn unlock_push(
        &self,
        child: &str,
        product: &str,
        holder: &str,
    ) -> Result<(), SyncError> {
        exec!(
            &self.db,
            "DELETE FROM ferry_push_locks WHERE child = $1 AND product = $2 AND holder = $3",
            child,
            product,
            holder
        )?;
        Ok(())
    }

    pub async fn link(&self, child: &str, parent_product: &str) -> Result<Option<Link>, SyncError> {
        Ok(row!(
            &self.db,
            Link,
            "SELECT child, parent_product, child_product, state, parent_updated FROM ferry_links WHERE child = $1 AND parent_product = $2",
            child,
            parent_product
        )?)
    }

    /// The links of many parent products to one child at once (a page being compared), by
    /// parent product.
    pub async fn links_of(
        &self,
        child: &str,
        parent_products: &[&str],
    ) -> Result<HashMap<String, Link>, SyncError> {
        let sql = format!(
            "SELECT child, parent_product, child_product, state, parent_updated FROM ferry_links
             WHERE child = $1 AND parent_product IN ({})",
            self.db.dialect().json_texts("$2")
        );
        let ids = json_list(parent_products);
        let links: Vec<Link> = rows!(&self.db, Link, sqlx::AssertSqlSafe(sql), child, ids)?;
        Ok(links
            .into_iter()
            .map(|l| (l.parent_product.clone(), l))
            .collect())
    }

    pub async fn set_link(
        &self,
        child: &str,
        parent_product: &str,
        child_product: Option<&str>,
        state: LinkState,
        parent_updated: i64,
    ) -> Result<(), SyncError> {
        let sql = "INSERT INTO ferry_links (child, parent_product, child_product, state, parent_updated, updated_ms)
                   VALUES ($1, $2, $3, $4, $5, $6)
                   ON CONFLICT (child, parent_product) DO UPDATE SET child_product = $3, state = $4, parent_updated = $5, updated_ms = $6";
        exec!(
            &self.db,
            sql,
            child,
            parent_product,
            child_product,
            state,
            parent_updated,
            self.now_ms()
        )?;
        Ok(())
    }

    /// Links of a child in parent-product order, after `after` (keyset pages).
    pub async fn links(
        &self,
        child: &str,
        after: &str,
        limit: i64,
    ) -> Result<Vec<Link>, SyncError> {
        Ok(rows!(
            &self.db,
            Link,
            "SELECT child, parent_product, child_product, state, parent_updated FROM ferry_links
             WHERE child = $1 AND parent_product > $2 ORDER BY parent_product LIMIT $3",
            child,
            after,
            limit
        )?)
    }

    pub async fn variant_links(
        &self,
        child: &str,
        parent_product: &str,
    ) -> Result<Vec<VariantLink>, SyncError> {
        self.variant_links_where(
            "child = $1 AND parent_product = $2",
            &[child, parent_product],
        )
        .await
    }

    /// The variant links of many parent products in one child at once, by parent product.
    pub async fn variant_links_of(
        &self,
        child: &str,
        parent_products: &[&str],
    ) -> Result<HashMap<String, Vec<VariantLink>>, SyncError> {
        let filter = format!(
            "child = $1 AND parent_product IN ({})",
            self.db.dialect().json_texts("$2")
        );
        let ids = json_list(parent_products);
        let mut out: HashMap<String, Vec<VariantLink>> = HashMap::new();
        for l in self.variant_links_where(&filter, &[child, &ids]).await? {
            out.entry(l.parent_product.clone()).or_default().push(l);
        }
        Ok(out)
    }

    /// Variant links matching `filter` (with `$1`… bound to `binds`), sorted by child and
    /// parent variant. Sorted here: an ORDER BY lets SQLite walk a child's every link in key
    /// order instead of taking the filter's index.
    async fn variant_links_where(
        &self,
        filter: &str,
        binds: &[&str],
    ) -> Result<Vec<VariantLink>, SyncError> {
        let sql = format!(
            "SELECT child, parent_variant, parent_item, child_variant, child_item, sku, parent_product
             FROM ferry_variant_links WHERE {filter}"
        );
        let mut links: Vec<VariantLink> = match &self.db {
            Db::Postgres(p) => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_all(p).await?
            }
            Db::Sqlite(p) => {
                let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for b in binds {
                    q = q.bind(*b);
                }
                q.fetch_all(p).await?
            }
        };
        links.sort();
        Ok(links)
    }

    /// Makes `links` the variant links of a product in a child.
    /// Replaces the variant links of one child's copy of a parent product, atomically: a sale
    /// counted meanwhile reads either the old links or the new ones, never none (with none,
    /// that child's share of the sale would be dropped).
    pub async fn replace_variant_links(
        &self,
        child: &str,
        parent_product: &str,
        links: &[VariantLink],
    ) -> Result<(), SyncError> {
        let mut tx = self.db.begin().await?;
        tx_exec!(
            tx,
            "DELETE FROM ferry_variant_links WHERE child = $1 AND parent_product = $2",
            child,
            parent_product
        )?;
        for l in links {
            tx_exec!(
                tx,
                "INSERT INTO ferry_variant_links (child, parent_variant, parent_item, child_variant, child_item, sku, parent_product)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (child, parent_variant) DO UPDATE SET parent_item = $3, child_variant = $4, child_item = $5, sku = $6, parent_product = $7",
                &l.child,
                &l.parent_variant,
                &l.parent_item,
                &l.child_variant,
                &l.child_item,
                &l.sku,
                &l.parent_product
            )?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The link of a child's variant, by the child's variant id.
    pub async fn by_child_variant(
        &self,
        child: &str,
        child_variant: &str,
    ) -> Result<Option<VariantLink>, SyncError> {
        Ok(self
            .variant_links_where("child = $1 AND child_variant = $2", &[child, child_variant])
            .await?
            .into_iter()
            .next())
    }

    /// The copies of a parent variant, in every child.
    pub async fn copies_of(&self, parent_variant: &str) -> Result<Vec<VariantLink>, SyncError> {
        self.variant_links_where("parent_variant = $1", &[parent_variant])
            .await
    }

    /// The network's copies of one stock-keeping unit, found from any store's inventory item:
    /// (store, item) for the parent and every child that has it.
    pub async fn sku_copies(
        &self,
        store: &str,
        item: &str,
    ) -> Result<Vec<(String, String)>, SyncError> {
        let parent = self.parent().await?;
        let parent_item: Option<String> = if store == parent.name {
            Some(item.to_owned())
        } else {
            row!(
                &self.db,
                (String,),
                "SELECT parent_item FROM ferry_variant_links WHERE child = $1 AND child_item = $2",
                store,
                item
            )?
            .map(|(p,)| p)
        };
        let Some(parent_item) = parent_item else {
            return Ok(Vec::new());
        };
        let mut out = vec![(parent.name.clone(), parent_item.clone())];
        let copies: Vec<(String, String)> = rows!(
            &self.db,
            (String, String),
            "SELECT child, child_item FROM ferry_variant_links WHERE parent_item = $1",
            &parent_item
        )?;
        let mut copies = copies;
        copies.sort();
        out.extend(copies);
        Ok(out)
    }

    // ---- stock ------------------------------------------------------------------------

    /// What ferry believes a store's `available` of an item is, and when the last absolute
    /// value of its copies was taken.
    pub async fn level(&self, store: &str, item: &str) -> Result<Option<(i64, i64)>, SyncError> {
        Ok(row!(
            &self.db,
            (i64, i64),
            "SELECT expected, last_set_ms FROM ferry_levels WHERE store = $1 AND item = $2",
            store,
            item
        )?)
    }

    /// The items among `items` whose level ferry holds for `store` (one statement a page).
    pub async fn items_with_levels(
        &self,
        store: &str,
        items: &[&str],
    ) -> Result<HashSet<String>, SyncError> {
        let sql = format!(
            "SELECT item FROM ferry_levels WHERE store = $1 AND item IN ({})",
            self.db.dialect().json_texts("$2")
        );
        let ids = json_list(items);
        let found: Vec<(String,)> =
            rows!(&self.db, (String,), sqlx::AssertSqlSafe(sql), store, ids)?;
        Ok(found.into_iter().map(|(i,)| i).collect())
    }

    /// Sets what ferry believes a store holds.
    pub async fn set_level(&self, store: &str, item: &str, expected: i64) -> Result<(), SyncError> {
        exec!(
            &self.db,
            "INSERT INTO ferry_levels (store, item, expected, updated_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (store, item) DO UPDATE SET expected = $3, updated_ms = $4",
            store,
            item,
            expected,
            self.now_ms()
        )?;
        Ok(())
    }

    /// Pending writes to a store's item newer than `since_ms`: (kind, amount).
    pub async fn pending(
        &self,
        store: &str,
        item: &str,
        since_ms: i64,
    ) -> Result<Vec<(String, i64)>, SyncError> {
        Ok(rows!(
            &self.db,
            (String, i64),
            "SELECT kind, amount FROM ferry_intents WHERE store = $1 AND item = $2 AND state = 'pending' AND created_ms >= $3",
            store,
            item,
            since_ms
        )?)
    }

    /// Whether a write of ferry's to a store's item may be missing from a snapshot read
    /// after `since_ms`: one made since then, or one still pending (newer than `pending_ms`).
    pub async fn touched_since(
        &self,
        store: &str,
        item: &str,
        since_ms: i64,
        pending_ms: i64,
    ) -> Result<bool, SyncError> {
        let n: Option<(i64,)> = row!(
            &self.db,
            (i64,),
            "SELECT COUNT(*) FROM ferry_intents WHERE store = $1 AND item = $2
             AND (created_ms >= $3 OR (state = 'pending' AND created_ms >= $4))",
            store,
            item,
            since_ms,
            pending_ms
        )?;
        Ok(n.is_some_and(|(n,)| n > 0))
    }

    pub async fn order_mark(&self, store: &str) -> Result<u64, SyncError> {
        let r: Option<(i64,)> = row!(
            &self.db,
            (i64,),
            "SELECT number FROM ferry_order_marks WHERE store = $1",
            store
        )?;
        Ok(r.map(|(n,)| n.max(0) as u64).unwrap_or(0))
    }

    // ---- audit ------------------------------------------------------------------------

    /// Records a write to a store: what changed and what caused it.
    pub async fn audit(
        &self,
        store: &str,
        entity: &str,
        action: &str,
        fields: &Value,
        cause: &str,
    ) -> Result<(), SyncError> {
        exec!(
            &self.db,
            "INSERT INTO ferry_audit (id, at_ms, store, entity, action, fields, cause) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            uuid::Uuid::now_v7().to_string(),
            self.now_ms(),
            store,
            entity,
            action,
            fields.to_string(),
            cause
        )?;
        metrics::counter!("ferry_sync_writes_total", "action" => action.to_owned()).increment(1);
        Ok(())
    }

    /// How many writes of each action ferry made to each store: (store, action, count).
    pub async fn write_counts(&self) -> Result<Vec<(String, String, i64)>, SyncError> {
        Ok(rows!(
            &self.db,
            (String, String, i64),
            "SELECT store, action, COUNT(*) FROM ferry_audit GROUP BY store, action ORDER BY store, action"
        )?)
    }

    /// A store's audit entries newest first, before the id `before` (empty: from the newest).
    pub async fn audit_recent(
        &self,
        store: &str,
        before: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, SyncError> {
        let rows: Vec<AuditRow> = rows!(
            &self.db,
            AuditRow,
            "SELECT id, at_ms, store, entity, action, fields, cause FROM ferry_audit
             WHERE store = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
            store,
            before,
            limit
        )?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    /// The writes one event caused (its `cause`, as a job's payload or an order names it),
    /// oldest first, at most `limit`.
    pub async fn audit_by_cause(
        &self,
        cause: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, SyncError> {
        let rows: Vec<AuditRow> = rows!(
            &self.db,
            AuditRow,
            "SELECT id, at_ms, store, entity, action, fields, cause FROM ferry_audit
             WHERE cause = $1 ORDER BY id LIMIT $2",
            cause,
            limit
        )?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }

    /// How many parent products each child could not be linked for (children with none are
    /// absent).
    pub async fn link_problem_counts(
        &self,
    ) -> Result<std::collections::HashMap<String, i64>, SyncError> {
        let rows = rows!(
            &self.db,
            (String, i64),
            "SELECT child, COUNT(*) FROM ferry_link_problems GROUP BY child"
        )?;
        Ok(rows.into_iter().collect())
    }

    /// Up to `limit` parent products a child's catalog could not be linked for: (product,
    /// SKU, reason).
    pub async fn link_problems(
        &self,
        child: &str,
        limit: i64,
    ) -> Result<Vec<(String, String, String)>, SyncError> {
        Ok(rows!(
            &self.db,
            (String, String, String),
            "SELECT parent_product, sku, reason FROM ferry_link_problems WHERE child = $1
             ORDER BY parent_product, sku LIMIT $2",
            child,
            limit
        )?)
    }

    /// Audit entries oldest first, after the id `after`, optionally of one store.
    pub async fn audit_log(
        &self,
        store: Option<&str>,
        after: &str,
        limit: i64,
    ) -> Result<Vec<AuditEntry>, SyncError> {
        let rows: Vec<AuditRow> = rows!(
            &self.db,
            AuditRow,
            "SELECT id, at_ms, store, entity, action, fields, cause FROM ferry_audit
             WHERE ($1 = '' OR store = $1) AND id > $2 ORDER BY id LIMIT $3",
            store.unwrap_or(""),
            after,
            limit
        )?;
        Ok(rows.into_iter().map(audit_entry).collect())
    }
}

fn audit_entry((id, at_ms, store, entity, action, fields, cause): AuditRow) -> AuditEntry {
    AuditEntry {
        id,
        at_ms,
        store,
        entity,
        action,
        fields: serde_json::from_str(&fields).unwrap_or(Value::Null),
        cause,
    }
}

/// Strings as a JSON array, for [`ferry_db::Dialect::json_texts`].
pub(crate) fn json_list(items: &[&str]) -> String {
    serde_json::Value::from(items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).to_string()
}
