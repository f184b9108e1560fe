//! Who may call what. Every token has a name and a role: `admin` (everything), `operator`
//! (jobs, queues, deliveries, reconciliation, connecting stores; no secrets, tokens or rules),
//! `read` (every GET) and `orders` (creating orders and reading its own). Tokens come from the
//! configuration (`admin_tokens`, `[[tokens]]`) or from the database (`ferry tokens add`,
//! `POST /api/tokens`), where only their SHA-256 is kept. Every call that changes something is
//! recorded with the name of the token that made it.

use ferry_db::{Db, exec, row, rows};
use ferry_queue::Queue;
use rand::RngExt;
use serde::Serialize;
use serde_json::{Value, json};
use sha2::Digest;

use crate::error::ServerError;

ferry_db::text_enum! {
    /// What a token may do.
    #[derive(Serialize)]
    #[serde(rename_all = "lowercase")]
    pub enum Role {
        Admin = "admin",
        Operator = "operator",
        Read = "read",
        Orders = "orders",
    }
}

/// A token from the configuration: its plain text (a file or variable the operator keeps)
/// or, better, only its SHA-256.
#[derive(Debug, Clone)]
pub struct ConfiguredToken {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token.
    pub sha256: [u8; 32],
    /// Orders made with it may carry their own unit prices.
    pub set_prices: bool,
}

impl ConfiguredToken {
    pub fn from_plain(name: &str, role: Role, token: &str) -> ConfiguredToken {
        ConfiguredToken {
            name: name.to_owned(),
            role,
            sha256: sha256(token),
            set_prices: false,
        }
    }
}

/// Who made a call: the token's name and role (a request extension after authentication).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    /// May give an order line's unit price (the token's `set_prices`; every admin may).
    pub set_prices: bool,
}

/// A token as listed: never the token itself.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    pub set_prices: bool,
    pub created_ms: i64,
}

/// The token registry and the record of actions.
#[derive(Clone)]
pub struct Access {
    db: Db,
    configured: std::sync::Arc<Vec<ConfiguredToken>>,
    clock: std::sync::Arc<dyn ferry_core::Clock>,
}

fn sha256(token: &str) -> [u8; 32] {
    sha2::Sha256::digest(token.as_bytes()).into()
}

/// The role a call needs, by method and route template; `None`: the orders routes, which the
/// `orders` and `admin` roles may write and every role but `operator` may read.
pub fn needed(method: &str, route: &str) -> Option<Role> {
    if route.starts_with("/api/orders") {
        return None;
    }
    Some(match (method, route) {
        ("GET", _) => Role::Read,
        (
            "POST",
            "/api/jobs/{id}/cancel"
            | "/api/jobs/{id}/replay"
            | "/api/dead/replay"
            | "/api/queues/{queue}/pause"
            | "/api/queues/{queue}/resume"
            | "/api/deliveries/{store}/{delivery}/replay"
            | "/api/sync/reconcile"
            | "/api/network/stores/{name}/connect",
        ) => Role::Operator,
        _ => Role::Admin,
    })
}

/// Whether `role` may make the call; else the role it would need.
pub fn permits(role: Role, method: &str, route: &str) -> Result<(), Role> {
    let ok = match (needed(method, route), role) {
        (_, Role::Admin) => true,
        (None, Role::Orders) => true,
        (None, Role::Read) => method == "GET",
        (None, Role::Operator) => false,
        (Some(_), Role::Orders) => false,
        (Some(Role::Read), _) => true,
        (Some(Role::Operator), Role::Operator) => true,
        (Some(_), _) => false,
    };
    if ok {
        return Ok(());
    }
    Err(needed(method, route).unwrap_or(Role::Orders))
}

impl Access {
    /// The registry's tables, on `queue`'s database (see [`Queue::migrate_shared`]).
    pub async fn migrate(queue: &Queue) -> Result<(), ServerError> {
        queue
            .migrate_shared(sqlx::migrate!("./migrations"), "")
            .await?;
        Ok(())
    }

    /// The registry on `queue`'s database, its tables migrated in (unless `queue` was opened
    /// without migrating).
    pub async fn open(
        queue: &Queue,
        configured: Vec<ConfiguredToken>,
    ) -> Result<Access, ServerError> {
        Access::migrate(queue).await?;
        let db = queue.db();
        Ok(Access {
            db,
            configured: std::sync::Arc::new(configured),
            clock: queue.clock(),
        })
    }

    /// The caller a presented token belongs to. The configured tokens are all compared (in
    /// constant time, on their digests); the database is asked by digest, so neither reveals
    /// by its timing how much of a token was right.
    pub async fn identify(&self, presented: &str) -> Result<Option<Caller>, ServerError> {
        let digest = sha256(presented);
        let mut found = None;
        for t in self.configured.iter() {
            let same = ferry_core::ct_eq(&t.sha256, &digest);
            if same && found.is_none() {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                    set_prices: t.set_prices || t.role == Role::Admin,
                });
            }
        }
        if found.is_some() {
            return Ok(found);
        }
        let stored = row!(
            &self.db,
            (String, Role, bool),
            "SELECT name, role, set_prices FROM ferry_api_tokens WHERE sha256 = $1",
            hex::encode(digest),
        )?;
        Ok(stored.map(|(name, role, set_prices)| Caller {
            name,
            role,
            set_prices: set_prices || role == Role::Admin,
        }))
    }

    /// Makes a token named `name` with `role` (and whether its orders may carry their own
    /// prices): the token, shown this once.
    pub async fn add(
        &self,
        name: &str,
        role: Role,
        set_prices: bool,
    ) -> Result<String, ServerError> {
        if !valid_name(name) {
            return Err(ServerError::BadRequest(
                "a token's name is 1 to 64 letters, digits, '-', '_' or '.'".into(),
            ));
        }
        if self.configured.iter().any(|t| t.name == name) {
            return Err(ServerError::Conflict(format!(
                "a configured token is named {name:?}"
            )));
        }
        let bytes: [u8; 32] = rand::rng().random();
        let token = format!("ferry_{}", hex::encode(bytes));
        let added = exec!(
            &self.db,
            "INSERT INTO ferry_api_tokens (name, role, sha256, created_ms, set_prices) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO NOTHING",
            name,
            role,
            hex::encode(sha256(&token)),
            self.clock.now_ms(),
            set_prices,
        )?;
        if added == 0 {
            return Err(ServerError::Conflict(format!(
                "a token named {name:?} exists; revoke it first"
            )));
        }
        Ok(token)
    }

    /// The tokens in the database, by name (configured ones are the configuration's).
    pub async fn list(&self) -> Result<Vec<TokenInfo>, ServerError> {
        Ok(rows!(
            &self.db,
            TokenInfo,
            "SELECT name, role, set_prices, created_ms FROM ferry_api_tokens ORDER BY name LIMIT 1000",
        )?)
    }

    /// Removes a token: calls with it fail from now on. Whether there was one.
    pub async fn revoke(&self, name: &str) -> Result<bool, ServerError> {
        let n = exec!(
            &self.db,
            "DELETE FROM ferry_api_tokens WHERE name = $1",
            name
        )?;
        if n > 0 {
            self.end_sessions_of(name).await?;
        }
        Ok(n > 0)
    }

    pub(crate) fn db(&self) -> &Db {
        &self.db
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Records a call that changed something (or tried to).
    pub async fn record(
        &self,
        caller: &Caller,
        method: &str,
        path: &str,
        status: u16,
        request_id: &str,
    ) -> Result<(), ServerError> {
        exec!(
            &self.db,
            "INSERT INTO ferry_api_actions (id, at_ms, actor, role, method, path, status, request_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            uuid::Uuid::now_v7().to_string(),
            self.clock.now_ms(),
            &caller.name,
            caller.role,
            method,
            path,
            i32::from(status),
            request_id,
        )?;
        Ok(())
    }

    /// The recorded actions, oldest first, after the id `after`: `{results, next}`.
    pub async fn actions(&self, after: Option<&str>, limit: i64) -> Result<Value, ServerError> {
        type Row = (String, i64, String, String, String, String, i32, String);
        let rows = rows!(
            &self.db,
            Row,
            "SELECT id, at_ms, actor, role, method, path, status, request_id FROM ferry_api_actions
             WHERE id > $1 ORDER BY id LIMIT $2",
            after.unwrap_or(""),
            limit,
        )?;
        let next = (rows.len() as i64 == limit)
            .then(|| rows.last().map(|r| r.0.clone()))
            .flatten();
        let results: Vec<Value> = rows
            .into_iter()
            .map(
                |(id, at_ms, actor, role, method, path, status, request_id)| {
                    json!({"id": id, "at_ms": at_ms, "actor": actor, "role": role, "method": method,
                       "path": path, "status": status, "request_id": request_id})
                },
            )
            .collect();
        Ok(json!({ "results": results, "next": next }))
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reaches_what_it_is_for_and_nothing_else() {
        // The roles allowed, as letters: a(dmin), o(perator), r(ead), (order)s.
        let cases = [
            ("GET /api/jobs", "aor"),
            ("POST /api/jobs/{id}/replay", "ao"),
            ("POST /api/queues/{queue}/pause", "ao"),
            ("POST /api/sync/reconcile", "ao"),
            ("POST /api/stores", "a"),
            ("POST /api/stores/{name}/rotate", "a"),
            ("POST /api/network/stores", "a"),
            ("PUT /api/network/stores/{name}/rules", "a"),
            ("POST /api/tokens", "a"),
            ("POST /api/orders", "as"),
            ("GET /api/orders", "ars"),
            ("GET /api/orders/{id}", "ars"),
        ];
        let roles = [
            (Role::Admin, 'a'),
            (Role::Operator, 'o'),
            (Role::Read, 'r'),
            (Role::Orders, 's'),
        ];
        for (call, allowed) in cases {
            let (method, route) = call.split_once(' ').unwrap_or_default();
            for (role, letter) in roles {
                let want = allowed.contains(letter);
                assert_eq!(permits(role, method, route).is_ok(), want, "{role} {call}");
            }
        }
        assert_eq!(
            permits(Role::Read, "POST", "/api/jobs/{id}/cancel"),
            Err(Role::Operator)
        );
        assert_eq!(
            permits(Role::Operator, "POST", "/api/stores"),
            Err(Role::Admin)
        );
    }
}
