//! Where a call's token comes from.

use std::future::Future;
use std::pin::Pin;

use crate::error::ConnectError;
use crate::secret::Secret;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A source of access tokens for one store.
pub trait Credentials: Send + Sync {
    /// The token to send now.
    fn token(&self) -> BoxFuture<'_, Result<Secret, ConnectError>>;
    /// Whether `refresh` can get a new token (after a 401).
    fn can_refresh(&self) -> bool {
        false
    }
    /// Replaces `stale` (the token a 401 refused) with a fresh one.
    fn refresh<'a>(&'a self, stale: &'a Secret) -> BoxFuture<'a, Result<(), ConnectError>> {
        let _ = stale;
        Box::pin(async { Ok(()) })
    }
}

/// A long-lived access token (a Shopify custom app's, an API key).
#[derive(Debug, Clone)]
pub struct StaticToken(pub Secret);

impl Credentials for StaticToken {
    fn token(&self) -> BoxFuture<'_, Result<Secret, ConnectError>> {
        let t = self.0.clone();
        Box::pin(async move { Ok(t) })
    }
}
