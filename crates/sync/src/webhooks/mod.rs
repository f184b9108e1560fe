//! Webhooks in: the stores that send them with their secrets ([`WebhookStores`]), the job a
//! verified delivery becomes ([`WebhookJob`], the one payload type the ingress produces and the
//! engine handles), and the group commit that records a delivery and enqueues its job in one
//! transaction ([`Committer`]). The HTTP side (reading the body, checking the signature) is the
//! web tier's; everything it hands over is defined here.

mod commit;
mod deliveries;
mod route;
mod stores;

use ferry_queue::{Job, NewJob};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use commit::{CommitOutcome, Committer, Delivery, MAX_BATCH};
pub use deliveries::{Deliveries, DeliveryRecord, parse_cursor};
pub use stores::{WebhookScheme, WebhookStore, WebhookStores, valid_name};

/// The queue webhook jobs wait in.
pub const WEBHOOK_QUEUE: &str = "webhooks";

/// A verified delivery, as its job carries it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WebhookJob {
    /// The request that delivered it (`x-request-id`), followed into the job's logs.
    #[serde(default)]
    pub request_id: Option<String>,
    pub store: String,
    pub platform: WebhookScheme,
    #[serde(default)]
    pub topic: String,
    pub delivery_id: String,
    #[serde(default)]
    pub event_id: Option<String>,
    #[serde(default)]
    pub triggered_at: Option<String>,
    pub body: Value,
}

impl Job for WebhookJob {
    const KIND: &'static str = "webhook.received";
    const QUEUE: &'static str = WEBHOOK_QUEUE;
}

impl WebhookJob {
    /// The job to enqueue: grouped by store, so one store's burst never starves another's.
    pub fn to_job(&self) -> Result<NewJob, ferry_queue::QueueError> {
        Ok(NewJob::of(self)?.group(&self.store))
    }
}
