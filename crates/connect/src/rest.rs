//! The generic JSON connector: a REST API with items changed since an `updated_at` cursor,
//! idempotent `PUT items/{id}`, and `POST items` with an `Idempotency-Key`.

use std::sync::Arc;

use serde_json::Value;

use crate::auth::Credentials;
use crate::budget::{BucketShape, ServerBucket};
use crate::client::{Answer, Call, Client, Verdict};
use crate::error::ConnectError;

/// Until the server says otherwise: Shopify's REST bucket, 40 requests leaking 2 per second.
pub const REST_SHAPE: BucketShape = BucketShape {
    capacity: 40.0,
    restore_per_s: 2.0,
};

/// One page of items.
#[derive(Debug, Clone)]
pub struct Page {
    pub items: Vec<Value>,
    /// Give it back to get the next page; `None` on the last one.
    pub next_cursor: Option<String>,
}

#[derive(Clone)]
pub struct RestConnector {
    client: Client,
    base: String,
    /// The budget and breaker key: one per API.
    key: String,
    creds: Arc<dyn Credentials>,
    shape: BucketShape,
}

impl std::fmt::Debug for RestConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestConnector")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// How full the server's bucket is: `X-Shopify-Shop-Api-Call-Limit: 32/40`, or
/// `X-RateLimit-Limit` with `X-RateLimit-Remaining`.
pub fn rest_verdict(a: &Answer) -> Verdict {
    let header = |n: &str| a.headers.get(n).and_then(|v| v.to_str().ok());
    let mut server = ServerBucket::default();
    if let Some((used, cap)) =
        header("x-shopify-shop-api-call-limit").and_then(|v| v.split_once('/'))
    {
        server.level = used.trim().parse().ok();
        server.capacity = cap.trim().parse().ok();
    } else if let (Some(limit), Some(rem)) = (
        header("x-ratelimit-limit").and_then(|v| v.parse::<f64>().ok()),
        header("x-ratelimit-remaining").and_then(|v| v.parse::<f64>().ok()),
    ) {
        server.level = Some(limit - rem);
        server.capacity = Some(limit);
    }
    Verdict {
        throttled: None,
        actual_cost: None,
        server,
    }
}

fn json_body(endpoint: &str, a: &Answer) -> Result<Value, ConnectError> {
    serde_json::from_slice(&a.body)
        .map_err(|e| ConnectError::data(endpoint, "$", format!("not JSON: {e}")))
}

impl RestConnector {
    /// `base` is the API root (`…/items` hangs under it).
    pub fn new(client: Client, base: &str, creds: Arc<dyn Credentials>) -> RestConnector {
        let base = base.trim_end_matches('/').to_owned();
        RestConnector {
            key: format!("rest:{base}"),
            client,
            base,
            creds,
            shape: REST_SHAPE,
        }
    }

    /// The API's rate limit when it is not Shopify's default (the call-limit header gives the
    /// size, but not the leak rate).
    pub fn with_shape(mut self, shape: BucketShape) -> RestConnector {
        self.shape = shape;
        self
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    fn call<'a>(&'a self, endpoint: &'a str) -> Call<'a> {
        Call {
            key: &self.key,
            endpoint,
            cost: 1.0,
            shape: self.shape,
        }
    }

    /// Items updated at or after `updated_since` (epoch ms), a page at a time in
    /// (`updated_at`, id) order.
    pub async fn list(
        &self,
        updated_since: Option<i64>,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, ConnectError> {
        let endpoint = "GET items";
        let url = format!("{}/items", self.base);
        let answer = self
            .client
            .send(
                self.call(endpoint),
                self.creds.as_ref(),
                |http, token| {
                    let mut q: Vec<(&str, String)> = vec![("limit", limit.to_string())];
                    if let Some(s) = updated_since {
                        q.push(("updated_since", s.to_string()));
                    }
                    if let Some(c) = cursor {
                        q.push(("cursor", c.to_owned()));
                    }
                    http.get(&url).query(&q).bearer_auth(token.expose())
                },
                |a| Ok(rest_verdict(a)),
            )
            .await?;
        let body = json_body(endpoint, &answer)?;
        let items = match body.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => {
                return Err(ConnectError::data(
                    endpoint,
                    "items",
                    "expected an array of items",
                ));
            }
        };
        let next_cursor = match body.get("next_cursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => Some(c.clone()),
            Some(_) => {
                return Err(ConnectError::data(
                    endpoint,
                    "next_cursor",
                    "expected a string or null",
                ));
            }
        };
        let more = body
            .get("has_more")
            .and_then(Value::as_bool)
            .unwrap_or(next_cursor.is_some());
        Ok(Page {
            items,
            next_cursor: next_cursor.filter(|_| more),
        })
    }

    /// One item, or `None` when the API has none with that id.
    pub async fn get(&self, id: &str) -> Result<Option<Value>, ConnectError> {
        let endpoint = "GET items/{id}";
        let url = format!("{}/items/{}", self.base, encode(id));
        match self
            .client
            .send(
                self.call(endpoint),
                self.creds.as_ref(),
                |http, t| http.get(&url).bearer_auth(t.expose()),
                |a| Ok(rest_verdict(a)),
            )
            .await
        {
            Ok(a) => json_body(endpoint, &a).map(Some),
            Err(ConnectError::Client { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes an item under its id: the same PUT twice changes nothing the second time.
    pub async fn put(&self, id: &str, fields: &Value) -> Result<Value, ConnectError> {
        let endpoint = "PUT items/{id}";
        let url = format!("{}/items/{}", self.base, encode(id));
        let a = self
            .client
            .send(
                self.call(endpoint),
                self.creds.as_ref(),
                |http, t| http.put(&url).bearer_auth(t.expose()).json(fields),
                |a| Ok(rest_verdict(a)),
            )
            .await?;
        json_body(endpoint, &a)
    }

    /// Creates an item; `idempotency_key` must be the same for every retry of one intent, so a
    /// write applied but answered with an error is not made twice.
    pub async fn post(&self, fields: &Value, idempotency_key: &str) -> Result<Value, ConnectError> {
        let endpoint = "POST items";
        let url = format!("{}/items", self.base);
        let a = self
            .client
            .send(
                self.call(endpoint),
                self.creds.as_ref(),
                |http, t| {
                    http.post(&url)
                        .bearer_auth(t.expose())
                        .header("idempotency-key", idempotency_key)
                        .json(fields)
                },
                |a| Ok(rest_verdict(a)),
            )
            .await?;
        json_body(endpoint, &a)
    }
}

/// An id as one path segment.
fn encode(id: &str) -> String {
    id.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
