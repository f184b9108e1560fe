//! Webhooks out, as Shopify sends them: subscriptions per store and topic; each delivery is
//! signed (base64 HMAC-SHA256 of the raw body with the store's secret) and carries the
//! `X-Shopify-*` headers; a non-2xx answer or none within 5 s is retried with doubling delays,
//! 8 times, with the same webhook id and the original payload.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::faults::WebhookFault;
use crate::platform::Platform;
use crate::signing::shopify_hmac;

use crate::graphql::API_VERSION;
pub const TOPICS: [&str; 6] = [
    "products/create",
    "products/update",
    "products/delete",
    "inventory_levels/update",
    "orders/create",
    "bulk_operations/finish",
];
const RETRIES: u32 = 8;
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Serialize)]
pub struct Subscription {
    pub id: String,
    pub topic: String,
    pub url: String,
    /// The client secret of the app that subscribed (its deliveries are signed with it);
    /// `None`: the store's own webhook secret.
    #[serde(skip)]
    pub secret: Option<String>,
}

/// Per store: what was sent, retried, and given up on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WebhookCounters {
    /// Requests made, first tries and retries.
    pub attempts: u64,
    pub retries: u64,
    /// Deliveries answered with a 2xx (every copy of a duplicated one counts).
    pub delivered: u64,
    /// Webhook ids answered with a 2xx at least once: what the receiver acknowledged, each
    /// counted once however many copies were sent.
    pub acknowledged: u64,
    /// Deliveries abandoned after the last retry.
    pub abandoned: u64,
    /// Injected faults: deliveries dropped, sent twice, held back.
    pub dropped: u64,
    pub duplicated: u64,
    pub held: u64,
    /// Deliveries queued and not yet delivered or abandoned (held ones included): zero when
    /// nothing is on its way.
    pub in_flight: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Webhooks {
    pub subscriptions: HashMap<String, Vec<Subscription>>,
    pub counters: HashMap<String, WebhookCounters>,
    pub next_id: u64,
}

/// One delivery of one event to one subscription; retries reuse it unchanged.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    pub store: String,
    pub secret: String,
    pub topic: String,
    pub url: String,
    pub body: Vec<u8>,
    pub webhook_id: String,
    pub event_id: String,
    pub triggered_at: String,
    /// Held back this long before the first try (an injected fault).
    pub delay: Duration,
    /// Shared by the copies of one delivery: whether any was answered with a 2xx.
    pub acknowledged: Arc<AtomicBool>,
}

/// Sends deliveries until the platform is gone; each delivery retries on its own task.
pub(crate) async fn deliver_loop(
    platform: std::sync::Weak<Platform>,
    mut rx: mpsc::UnboundedReceiver<Delivery>,
    backoff_base: Duration,
) {
    let http = reqwest::Client::new();
    while let Some(d) = rx.recv().await {
        let (http, platform) = (http.clone(), platform.clone());
        tokio::spawn(async move { deliver(http, platform, d, backoff_base).await });
    }
}

async fn deliver(
    http: reqwest::Client,
    platform: std::sync::Weak<Platform>,
    d: Delivery,
    base: Duration,
) {
    let signature = shopify_hmac(&d.secret, &d.body);
    if !d.delay.is_zero() {
        tokio::time::sleep(d.delay).await;
    }
    for attempt in 0..=RETRIES {
        if attempt > 0 {
            tokio::time::sleep(base * 2u32.saturating_pow(attempt - 1)).await;
        }
        let sent = http
            .post(&d.url)
            .timeout(TIMEOUT)
            .header("content-type", "application/json")
            .header("x-shopify-topic", &d.topic)
            .header(
                "x-shopify-shop-domain",
                format!("{}.myshopify.com", d.store),
            )
            .header("x-shopify-webhook-id", &d.webhook_id)
            .header("x-shopify-event-id", &d.event_id)
            .header("x-shopify-triggered-at", &d.triggered_at)
            .header("x-shopify-api-version", API_VERSION)
            .header("x-shopify-hmac-sha256", &signature)
            .body(d.body.clone())
            .send()
            .await;
        let ok = matches!(&sent, Ok(r) if r.status().is_success());
        let Some(p) = platform.upgrade() else { return };
        p.count_webhook(&d.store, |c| {
            c.attempts += 1;
            if attempt > 0 {
                c.retries += 1;
            }
            if ok {
                c.delivered += 1;
                if !d.acknowledged.swap(true, Ordering::Relaxed) {
                    c.acknowledged += 1;
                }
            } else if attempt == RETRIES {
                c.abandoned += 1;
            }
            if ok || attempt == RETRIES {
                c.in_flight = c.in_flight.saturating_sub(1);
            }
        });
        if ok {
            return;
        }
    }
}

impl Platform {
    /// Subscribes `url` to `topic` for `store`.
    pub fn subscribe(
        &self,
        store: &str,
        topic: &str,
        url: &str,
    ) -> Result<Subscription, crate::MockError> {
        if !TOPICS.contains(&topic) {
            return Err(crate::MockError::BadRequest(format!(
                "unknown topic {topic:?}"
            )));
        }
        self.store_info(store)?;
        let mut w = self.webhooks();
        w.next_id += 1;
        let sub = Subscription {
            id: format!("wh_{}", w.next_id),
            topic: topic.to_owned(),
            url: url.to_owned(),
            secret: None,
        };
        w.subscriptions
            .entry(store.to_owned())
            .or_default()
            .push(sub.clone());
        Ok(sub)
    }

    /// A store's subscriptions, oldest first.
    pub fn subscriptions(&self, store: &str) -> Vec<Subscription> {
        self.webhooks()
            .subscriptions
            .get(store)
            .cloned()
            .unwrap_or_default()
    }

    pub(crate) fn add_subscription(&self, store: &str, sub: Subscription) {
        self.webhooks()
            .subscriptions
            .entry(store.to_owned())
            .or_default()
            .push(sub);
    }

    /// Sends `payload` to every subscription of `store` to `topic`: one event, one delivery each.
    pub fn emit(
        &self,
        store: &str,
        topic: &str,
        payload: &Value,
    ) -> Result<usize, crate::MockError> {
        let info = self.store_info(store)?;
        let body =
            serde_json::to_vec(payload).map_err(|e| crate::MockError::BadRequest(e.to_string()))?;
        let triggered_at = jiff::Timestamp::from_millisecond(self.now_ms())
            .map(|t| t.to_string())
            .unwrap_or_default();
        let subs: Vec<Subscription> = self
            .webhooks()
            .subscriptions
            .get(store)
            .map(|s| s.iter().filter(|s| s.topic == topic).cloned().collect())
            .unwrap_or_default();
        let event_id = self.secret("evt_");
        let mut queued = 0;
        for s in &subs {
            let fault = self.draw_webhook_fault(store)?;
            // The delay of each copy sent.
            let delays: Vec<Duration> = match fault {
                WebhookFault::Drop => vec![],
                WebhookFault::Duplicate(n, late) => std::iter::once(Duration::ZERO)
                    .chain(late.into_iter().take(n as usize - 1))
                    .collect(),
                WebhookFault::Hold(d) => vec![d],
                WebhookFault::None => vec![Duration::ZERO],
            };
            self.count_webhook(store, |c| match fault {
                WebhookFault::Drop => c.dropped += 1,
                WebhookFault::Duplicate(..) => c.duplicated += 1,
                WebhookFault::Hold(_) => c.held += 1,
                WebhookFault::None => {}
            });
            let delivery = Delivery {
                store: store.to_owned(),
                secret: s
                    .secret
                    .clone()
                    .unwrap_or_else(|| info.webhook_secret.clone()),
                topic: topic.to_owned(),
                url: s.url.clone(),
                body: body.clone(),
                webhook_id: self.secret("whd_"),
                event_id: event_id.clone(),
                triggered_at: triggered_at.clone(),
                delay: Duration::ZERO,
                acknowledged: Arc::new(AtomicBool::new(false)),
            };
            for delay in delays {
                self.count_webhook(store, |c| c.in_flight += 1);
                self.send_delivery(Delivery {
                    delay,
                    ..delivery.clone()
                });
                queued += 1;
            }
        }
        Ok(queued)
    }

    pub fn webhook_counters(&self, store: &str) -> WebhookCounters {
        self.webhooks()
            .counters
            .get(store)
            .cloned()
            .unwrap_or_default()
    }

    fn count_webhook(&self, store: &str, f: impl FnOnce(&mut WebhookCounters)) {
        f(self
            .webhooks()
            .counters
            .entry(store.to_owned())
            .or_default());
    }
}

pub(crate) fn spawn_deliverer(platform: &Arc<Platform>, backoff_base: Duration) {
    if let Some(rx) = platform.take_delivery_receiver() {
        tokio::spawn(deliver_loop(Arc::downgrade(platform), rx, backoff_base));
    }
}
