//! The client every connector shares: for each call, the store's circuit breaker, then its
//! rate budget, then the request with a timeout; the answer classed (transient, rate limited,
//! client, auth, data); short retries in process with backoff and jitter that honour
//! `Retry-After`; anything longer handed back to the caller (and from there to the queue).

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::Clock;
use rand::RngExt;
use reqwest::header::HeaderMap;

use crate::breaker::{BreakerPolicy, Breakers};
use crate::budget::{BucketShape, Budget, ServerBucket};
use crate::error::ConnectError;
use crate::outbound::Outbound;
use crate::secret::Secret;
use ferry_db::Db;

#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per request.
    pub timeout: Duration,
    /// In-process retries of transient and rate-limited failures.
    pub max_retries: u32,
    /// The longest a call waits in process (for the budget or a Retry-After); beyond it the
    /// caller gets `RateLimited` and the job is snoozed instead of holding a worker.
    pub max_wait: Duration,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    pub breaker: BreakerPolicy,
    /// Reserve each call's cost in the shared budget before sending (the default). Off, calls
    /// go out at once and only react to refusals: how most clients work, kept as a peer for
    /// `ferry bench api`.
    pub pace: bool,
    /// Where calls may go and how much of an answer is read.
    pub outbound: Outbound,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            max_retries: 3,
            max_wait: Duration::from_secs(10),
            backoff_base: Duration::from_millis(200),
            backoff_cap: Duration::from_secs(5),
            breaker: BreakerPolicy::default(),
            pace: true,
            outbound: Outbound::default(),
        }
    }
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

/// What a 2xx response said about throttling and cost (the protocol's part: the GraphQL
/// `extensions.cost`, the REST call-limit header).
#[derive(Debug, Clone, Copy, Default)]
pub struct Verdict {
    /// Refused for rate inside a 2xx (GraphQL `THROTTLED`), with how long to wait.
    pub throttled: Option<Duration>,
    /// What the call really cost, when the server says.
    pub actual_cost: Option<f64>,
    pub server: ServerBucket,
}

/// One call: whose budget and breaker (`key`, one per store and API), which endpoint (for
/// metrics and errors), its cost in the budget's units, and the bucket's starting shape.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub key: &'a str,
    pub endpoint: &'a str,
    pub cost: f64,
    pub shape: BucketShape,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    budget: Budget,
    breakers: Breakers,
    opts: ClientOptions,
    connector: &'static str,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connector", &self.connector)
            .field("opts", &self.opts)
            .finish_non_exhaustive()
    }
}

/// The longest `Retry-After` believed: a server asking for more is asked again in an hour.
const MAX_RETRY_AFTER_S: f64 = 3600.0;

/// `Retry-After` in seconds (the HTTP-date form is not used by the platforms we talk to), at
/// most an hour: whatever an upstream sends (`1e20`) is a wait, never a panic.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| Duration::from_secs_f64(s.min(MAX_RETRY_AFTER_S)))
}

pub(crate) enum Read {
    TooLarge,
    Failed(reqwest::Error),
}

/// The body, refused past `max` bytes (by its declared length at once, else while reading).
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<bytes::Bytes, Read> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(Read::TooLarge);
    }
    let mut out = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(Read::Failed)? {
        if out.len() + chunk.len() > max {
            return Err(Read::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.freeze())
}

/// The outbound policy's reason, when the resolver refused every address of a host.
fn refused(e: &reqwest::Error) -> Option<String> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<crate::outbound::Refused>() {
            return Some(r.0.clone());
        }
        source = s.source();
    }
    None
}

fn snippet(body: &[u8]) -> String {
    let s = String::from_utf8_lossy(body);
    let mut out: String = s.chars().take(300).collect();
    if s.chars().count() > 300 {
        out.push('…');
    }
    out
}

impl Client {
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        connector: &'static str,
        opts: ClientOptions,
    ) -> Client {
        Client {
            http: crate::outbound::http_client(&opts.outbound),
            budget: Budget::new(db.clone(), clock.clone()),
            breakers: Breakers::new(db, clock, opts.breaker),
            opts,
            connector,
        }
    }

    pub fn budget(&self) -> &Budget {
        &self.budget
    }

    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// The HTTP client under the policy, for what is not an API call (a bulk result file).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn options(&self) -> &ClientOptions {
        &self.opts
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .opts
            .backoff_base
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.opts.backoff_cap);
        // Jitter in [d/2, d]: retries of many workers spread out instead of arriving together.
        let half = exp / 2;
        half + Duration::from_millis(rand::rng().random_range(0..=half.as_millis() as u64))
    }

    fn record(&self, call: &Call<'_>, outcome: &'static str, started: Instant) {
        let labels = [
            ("connector", self.connector.to_owned()),
            ("store", call.key.to_owned()),
            ("endpoint", call.endpoint.to_owned()),
        ];
        metrics::counter!(
            "ferry_connector_calls_total",
            &[
                ("connector", self.connector.to_owned()),
                ("store", call.key.to_owned()),
                ("endpoint", call.endpoint.to_owned()),
                ("outcome", outcome.to_owned()),
            ]
        )
        .increment(1);
        metrics::histogram!("ferry_connector_call_seconds", &labels)
            .record(started.elapsed().as_secs_f64());
    }

    /// Sends a call, retrying in process what may be retried. `build` makes the request (it is
    /// called again for each attempt, with the current token); `inspect` reads a 2xx answer's
    /// throttling and cost. `refresh` is tried once on a 401.
    pub async fn send<B, I>(
        &self,
        call: Call<'_>,
        creds: &dyn crate::auth::Credentials,
        build: B,
        inspect: I,
    ) -> Result<Answer, ConnectError>
    where
        B: Fn(&reqwest::Client, &Secret) -> reqwest::RequestBuilder,
        I: Fn(&Answer) -> Result<Verdict, ConnectError>,
    {
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            let admission = self.breakers.allow(call.key).await?;
            if self.opts.pace {
                self.budget
                    .reserve(
                        call.key,
                        call.endpoint,
                        call.cost,
                        call.shape,
                        self.opts.max_wait,
                    )
                    .await?;
            }
            let token = creds.token().await?;
            let request = build(&self.http, &token)
                .timeout(self.opts.timeout)
                .build()
                .map_err(|e| ConnectError::Outbound(e.without_url().to_string()))?;
            // Every call, not only registration: a URL stored before the policy changed is
            // refused here, before the token leaves.
            self.opts
                .outbound
                .check_url(request.url().as_str())
                .map_err(|r| ConnectError::Outbound(r.0))?;
            let started = Instant::now();
            let sent = self.http.execute(request).await;
            let failure = match sent {
                Err(e) => match refused(&e) {
                    Some(why) => {
                        self.record(&call, "refused", started);
                        return Err(ConnectError::Outbound(why));
                    }
                    // Without the URL: it may carry a token in its query.
                    None => ConnectError::transient(call.endpoint, e.without_url().to_string()),
                },
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    let body = match read_limited(resp, self.opts.outbound.max_body_bytes).await {
                        Ok(b) => b,
                        Err(Read::TooLarge) => {
                            self.record(&call, "data", started);
                            return Err(ConnectError::data(
                                call.endpoint,
                                "$",
                                format!(
                                    "the answer is larger than {} bytes (max_upstream_body_bytes)",
                                    self.opts.outbound.max_body_bytes
                                ),
                            ));
                        }
                        Err(Read::Failed(e)) => {
                            self.record(&call, "transient", started);
                            self.breakers.failure(call.key).await?;
                            if attempt < self.opts.max_retries {
                                attempt += 1;
                                tokio::time::sleep(self.backoff(attempt)).await;
                                continue;
                            }
                            return Err(ConnectError::transient(
                                call.endpoint,
                                e.without_url().to_string(),
                            ));
                        }
                    };
                    let answer = Answer {
                        status,
                        headers,
                        body,
                    };
                    match status {
                        200..=299 => match inspect(&answer) {
                            Ok(v) => {
                                if self.opts.pace {
                                    let refund = v.actual_cost.map_or(0.0, |a| call.cost - a);
                                    self.budget.settle(call.key, refund, v.server).await?;
                                }
                                match v.throttled {
                                    None => {
                                        self.record(&call, "ok", started);
                                        self.breakers.success(call.key, admission).await?;
                                        return Ok(answer);
                                    }
                                    Some(wait) => ConnectError::RateLimited {
                                        endpoint: call.endpoint.to_owned(),
                                        retry_after: wait,
                                    },
                                }
                            }
                            Err(e) => {
                                self.record(&call, "data", started);
                                return Err(e);
                            }
                        },
                        401 => ConnectError::Auth {
                            endpoint: call.endpoint.to_owned(),
                        },
                        429 => ConnectError::RateLimited {
                            endpoint: call.endpoint.to_owned(),
                            retry_after: retry_after(&answer.headers)
                                .unwrap_or(Duration::from_secs(1)),
                        },
                        500..=599 => ConnectError::Transient {
                            endpoint: call.endpoint.to_owned(),
                            message: format!("{status}"),
                            upstream: snippet(&answer.body),
                            retry_after: retry_after(&answer.headers),
                        },
                        _ => {
                            self.record(&call, "client_error", started);
                            // A refused request still counts as a healthy server.
                            self.breakers.success(call.key, admission).await?;
                            return Err(ConnectError::Client {
                                endpoint: call.endpoint.to_owned(),
                                status,
                                message: String::new(),
                                upstream: snippet(&answer.body),
                            });
                        }
                    }
                }
            };
            match &failure {
                ConnectError::Auth { .. } => {
                    self.record(&call, "auth", started);
                    if refreshed || !creds.can_refresh() {
                        return Err(failure);
                    }
                    refreshed = true;
                    creds.refresh(&token).await?;
                    continue;
                }
                ConnectError::RateLimited { retry_after, .. } => {
                    self.record(&call, "throttled", started);
                    metrics::counter!("ferry_connector_throttled_total", "store" => call.key.to_owned())
                        .increment(1);
                    if attempt >= self.opts.max_retries || *retry_after > self.opts.max_wait {
                        if self.opts.pace {
                            self.budget.block(call.key, *retry_after).await?;
                        }
                        return Err(failure);
                    }
                    if self.opts.pace {
                        self.budget.block(call.key, *retry_after).await?;
                    } else {
                        tokio::time::sleep(*retry_after).await;
                    }
                }
                _ => {
                    self.record(&call, "transient", started);
                    self.breakers.failure(call.key).await?;
                    if attempt >= self.opts.max_retries {
                        return Err(failure);
                    }
                    let wait = failure
                        .retry_after()
                        .unwrap_or_else(|| self.backoff(attempt));
                    if wait > self.opts.max_wait {
                        return Err(failure);
                    }
                    tokio::time::sleep(wait).await;
                }
            }
            metrics::counter!("ferry_connector_retries_total", "store" => call.key.to_owned())
                .increment(1);
            attempt += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(v: &str) -> Option<Duration> {
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            reqwest::header::HeaderValue::from_str(v).expect("a header value"),
        );
        retry_after(&h)
    }

    #[test]
    fn retry_after_is_read_in_seconds_and_bounded() {
        assert_eq!(after("2"), Some(Duration::from_secs(2)));
        assert_eq!(after("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(
            after("1e20"),
            Some(Duration::from_secs(3600)),
            "capped, not a panic"
        );
        assert_eq!(after("-1"), None);
        assert_eq!(after("NaN"), None);
        assert_eq!(after("Wed, 21 Oct 2026 07:28:00 GMT"), None);
    }
}
