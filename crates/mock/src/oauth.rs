//! OAuth2 refresh tokens, as an app with expiring offline tokens sees them: `POST
//! /stores/{s}/oauth/token` with `grant_type=refresh_token` returns a short-lived access token
//! and a new refresh token; the old refresh token stops working (rotation).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::MockError;
use crate::platform::{Platform, store_mut};

#[derive(Debug, Clone, Default)]
pub(crate) struct OAuthState {
    pub refresh_token: String,
    /// Issued access tokens and when each expires (epoch ms).
    pub access: Vec<(String, i64)>,
    pub lifetime_ms: i64,
    pub refreshes: u64,
    pub refused: u64,
}

#[derive(Deserialize)]
struct TokenRequest {
    grant_type: String,
    refresh_token: String,
}

pub(crate) fn routes() -> Router<Arc<Platform>> {
    Router::new().route("/stores/{store}/oauth/token", post(token))
}

async fn token(
    State(p): State<Arc<Platform>>,
    Path(store): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, MockError> {
    let req: TokenRequest = serde_json::from_slice(&body)
        .or_else(|_| serde_urlencoded_pairs(&body))
        .map_err(|_| MockError::BadRequest("expected grant_type and refresh_token".into()))?;
    if req.grant_type != "refresh_token" {
        return Err(MockError::BadRequest("unsupported_grant_type".into()));
    }
    let access = p.secret("shpua_");
    let refresh = p.secret("shprt_");
    let now = p.now_ms();
    let mut stores = p.lock();
    let s = store_mut(&mut stores, &store)?;
    let Some(o) = s.oauth.as_mut() else {
        return Err(MockError::BadRequest(
            "this store does not issue OAuth tokens".into(),
        ));
    };
    if !crate::platform::ct_eq(req.refresh_token.as_bytes(), o.refresh_token.as_bytes()) {
        o.refused += 1;
        return Err(MockError::BadRequest(
            "invalid_grant: the refresh token is not valid".into(),
        ));
    }
    o.refreshes += 1;
    o.refresh_token = refresh.clone();
    o.access.retain(|(_, exp)| *exp > now);
    o.access.push((access.clone(), now + o.lifetime_ms));
    Ok(Json(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": o.lifetime_ms / 1000,
        "refresh_token": refresh,
    })))
}

/// `a=b&c=d` bodies (the form encoding OAuth clients usually send).
fn serde_urlencoded_pairs(body: &[u8]) -> Result<TokenRequest, ()> {
    let text = std::str::from_utf8(body).map_err(|_| ())?;
    let mut grant = None;
    let mut refresh = None;
    for pair in text.split('&') {
        let (k, v) = pair.split_once('=').ok_or(())?;
        let v = v.replace("%2F", "/").replace("%3D", "=").replace('+', " ");
        match k {
            "grant_type" => grant = Some(v),
            "refresh_token" => refresh = Some(v),
            _ => {}
        }
    }
    Ok(TokenRequest {
        grant_type: grant.ok_or(())?,
        refresh_token: refresh.ok_or(())?,
    })
}

/// What the OAuth side of a store did, for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct OAuthCounters {
    pub refreshes: u64,
    /// Refresh attempts with a wrong (or already rotated) refresh token.
    pub refused: u64,
}

impl Platform {
    /// Makes a store issue expiring access tokens (valid `lifetime_ms`) for a refresh token;
    /// returns the first refresh token. The store's static token keeps working too.
    pub fn enable_oauth(&self, store: &str, lifetime_ms: i64) -> Result<String, MockError> {
        let refresh = self.secret("shprt_");
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        s.oauth = Some(OAuthState {
            refresh_token: refresh.clone(),
            lifetime_ms: lifetime_ms.max(1),
            ..OAuthState::default()
        });
        Ok(refresh)
    }

    /// Revokes every issued access token (the next call with one gets a 401).
    pub fn revoke_access_tokens(&self, store: &str) -> Result<(), MockError> {
        let mut stores = self.lock();
        let s = store_mut(&mut stores, store)?;
        if let Some(o) = s.oauth.as_mut() {
            o.access.clear();
        }
        Ok(())
    }

    pub fn oauth_counters(&self, store: &str) -> Result<OAuthCounters, MockError> {
        let stores = self.lock();
        let s = crate::platform::store_ref(&stores, store)?;
        let o = s.oauth.clone().unwrap_or_default();
        Ok(OAuthCounters {
            refreshes: o.refreshes,
            refused: o.refused,
        })
    }
}
