//! A payment provider in the style of Stripe's payment intents: charge (authorize and capture
//! at once) and cancel (void or refund), each with an idempotency key, so a retry after a lost
//! answer learns what happened instead of charging twice.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::auth::Credentials;
use crate::budget::BucketShape;
use crate::client::{Answer, Call, Client};
use crate::error::ConnectError;
use crate::rest::rest_verdict;

/// Until the provider says otherwise: Stripe's live-mode limit, 100 operations a second.
const SHAPE: BucketShape = BucketShape {
    capacity: 100.0,
    restore_per_s: 100.0,
};

/// What a charge came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Charge {
    /// Authorized and captured: the provider's transaction id.
    Succeeded { id: String },
    /// Refused for the card (402): nothing was charged.
    Declined { message: String },
}

#[derive(Clone)]
pub struct PaymentsConnector {
    client: Client,
    base: String,
    key: String,
    creds: Arc<dyn Credentials>,
}

impl std::fmt::Debug for PaymentsConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentsConnector")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

fn body(endpoint: &str, a: &Answer) -> Result<Value, ConnectError> {
    serde_json::from_slice(&a.body)
        .map_err(|e| ConnectError::data(endpoint, "$", format!("not JSON: {e}")))
}

impl PaymentsConnector {
    /// `base` is the API root (`…/payment_intents` hangs under it); `key` names its budget and
    /// breaker.
    pub fn new(client: Client, base: &str, key: &str, creds: Arc<dyn Credentials>) -> Self {
        PaymentsConnector {
            client,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            creds,
        }
    }

    fn call<'a>(&'a self, endpoint: &'a str) -> Call<'a> {
        Call {
            key: &self.key,
            endpoint,
            cost: 1.0,
            shape: SHAPE,
        }
    }

    /// Authorizes and captures `amount_cents`. The same `idempotency_key` always means the same
    /// charge: sent again, the provider answers what it answered the first time.
    pub async fn charge(
        &self,
        idempotency_key: &str,
        amount_cents: i64,
        currency: &str,
        payment_method: &str,
    ) -> Result<Charge, ConnectError> {
        let endpoint = "POST payment_intents";
        let url = format!("{}/payment_intents", self.base);
        let request = json!({
            "amount": amount_cents,
            "currency": currency.to_lowercase(),
            "payment_method": payment_method,
            "capture": true,
        });
        let sent = self
            .client
            .send(
                self.call(endpoint),
                self.creds.as_ref(),
                |http, token| {
                    http.post(&url)
                        .bearer_auth(token.expose())
                        .header("idempotency-key", idempotency_key)
                        .json(&request)
                },
                |a| Ok(rest_verdict(a)),
            )
            .await;
        match sent {
            Ok(a) => {
                let v = body(endpoint, &a)?;
                let id = v["id"]
                    .as_str()
                    .ok_or_else(|| ConnectError::data(endpoint, "id", "missing"))?;
                Ok(Charge::Succeeded { id: id.to_owned() })
            }
            Err(ConnectError::Client {
                status: 402,
                upstream,
                ..
            }) => Ok(Charge::Declined { message: upstream }),
            Err(e) => Err(e),
        }
    }

    /// Voids or refunds a payment in full (cancelling twice is one cancellation).
    pub async fn cancel(&self, idempotency_key: &str, id: &str) -> Result<(), ConnectError> {
        let endpoint = "POST payment_intents cancel";
        let url = format!("{}/payment_intents/{id}/cancel", self.base);
        self.client
            .send(
                self.call(endpoint),
                self.creds.as_ref(),
                |http, token| {
                    http.post(&url)
                        .bearer_auth(token.expose())
                        .header("idempotency-key", idempotency_key)
                        .json(&json!({}))
                },
                |a| Ok(rest_verdict(a)),
            )
            .await?;
        Ok(())
    }
}
