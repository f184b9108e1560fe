//! Dashboard sessions: signing in with a token makes a session (a random id in an HttpOnly,
//! SameSite=Strict cookie, only its SHA-256 stored) with its own CSRF token, which every form
//! carries back. Sessions last a working day; signing out or revoking the token ends them.

use base64::Engine as _;
use ferry_db::{exec, row};
use rand::RngExt;
use sha2::Digest;

use crate::access::{Access, Caller, Role};
use crate::error::ServerError;

/// The session cookie's name. `__Host-` would bind it to https; plain http on loopback (a
/// first look, the tests) must work too, so the prefix-less name with `Secure` set when the
/// request came over https.
pub const COOKIE: &str = "ferry_session";
/// How long a session lasts after signing in.
pub const LIFETIME_MS: i64 = 12 * 60 * 60 * 1000;

/// A signed-in browser: who (the token's name and role) and the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub csrf: String,
}

fn random_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn digest(id: &str) -> String {
    hex::encode(sha2::Sha256::digest(id.as_bytes()))
}

impl Access {
    /// Signs in with `token`: a new session's id (for the cookie), or None for an unknown
    /// token. The `orders` role has no dashboard.
    pub async fn sign_in(&self, token: &str) -> Result<Option<String>, ServerError> {
        let Some(caller) = self.identify(token).await? else {
            return Ok(None);
        };
        if caller.role == Role::Orders {
            return Ok(None);
        }
        let now = self.now_ms();
        // Expired sessions go when someone signs in: the table grows only with sign-ins.
        exec!(
            self.db(),
            "DELETE FROM ferry_ui_sessions WHERE expires_ms < $1",
            now
        )?;
        let id = random_token();
        exec!(
            self.db(),
            "INSERT INTO ferry_ui_sessions (id_sha256, token_name, role, csrf, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5, $6)",
            digest(&id),
            &caller.name,
            caller.role,
            random_token(),
            now,
            now + LIFETIME_MS
        )?;
        Ok(Some(id))
    }

    /// The live session a cookie names, if any.
    pub async fn session(&self, id: &str) -> Result<Option<Session>, ServerError> {
        // A cookie that cannot be one of ours costs no query.
        if id.len() != 43
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Ok(None);
        }
        let found = row!(
            self.db(),
            (String, Role, String),
            "SELECT token_name, role, csrf FROM ferry_ui_sessions WHERE id_sha256 = $1 AND expires_ms >= $2",
            digest(id),
            self.now_ms()
        )?;
        Ok(found.map(|(name, role, csrf)| Session {
            caller: Caller {
                name,
                role,
                set_prices: false,
            },
            csrf,
        }))
    }

    /// Ends a session.
    pub async fn sign_out(&self, id: &str) -> Result<(), ServerError> {
        exec!(
            self.db(),
            "DELETE FROM ferry_ui_sessions WHERE id_sha256 = $1",
            digest(id)
        )?;
        Ok(())
    }

    /// Ends every session opened with the token named `name` (it was revoked).
    pub async fn end_sessions_of(&self, name: &str) -> Result<(), ServerError> {
        exec!(
            self.db(),
            "DELETE FROM ferry_ui_sessions WHERE token_name = $1",
            name
        )?;
        Ok(())
    }
}

/// The session id in a request's cookies.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// The `Set-Cookie` value for a session id (empty and expired: signed out). `Secure` when the
/// request came over https (directly or through a proxy that says so).
pub fn set_cookie(id: Option<&str>, https: bool) -> String {
    let secure = if https { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            LIFETIME_MS / 1000
        ),
        None => format!("{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

/// Whether a form's CSRF token is the session's (constant time).
pub fn csrf_ok(session: &Session, presented: &str) -> bool {
    ferry_core::ct_eq(session.csrf.as_bytes(), presented.as_bytes())
}
