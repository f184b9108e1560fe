//! Orders taken by ferry (a wholesale portal, a headless checkout): reserve stock in the
//! parent, charge the payment provider, confirm, and the sale reaches every store as keyed
//! deltas. A saga, with the idempotency record as its log: each step moves `step` by a
//! compare-and-set in the transaction that does the step's work, so the request and the
//! recovery job (enqueued with the order, for a server that died mid-order) can never both
//! do one. The charge's idempotency key is the order's: sent twice, it charges once.

use std::sync::Arc;
use std::time::Duration;

use ferry_connect::ConnectError;
use ferry_connect::payments::{Charge, PaymentsConnector};
use ferry_queue::{JobError, NewJob, WorkerBuilder};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest;

use crate::engine::Engine;
use crate::error::SyncError;
use ferry_db::{exec, row, rows, tx_exec};

pub use crate::jobs::ORDERS_QUEUE;
use crate::jobs::{RecoverOrderJob, VoidOrderJob};

/// Requests per minute and API client, per route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    pub create: i64,
    pub list: i64,
    pub detail: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            create: 10,
            list: 120,
            detail: 300,
        }
    }
}

#[derive(Debug, Clone)]
pub struct OrdersOptions {
    /// The payment provider's API root (…/payment_intents hangs under it); empty: none, and
    /// every order is refused with 503.
    pub payments_url: String,
    pub payments_token: String,
    /// The header carrying the idempotency key.
    pub key_header: String,
    pub limits: Limits,
    /// When the recovery job of an order looks at it (a live request finishes long before).
    pub recover_after: Duration,
    pub body_limit: usize,
}

impl Default for OrdersOptions {
    fn default() -> Self {
        OrdersOptions {
            payments_url: String::new(),
            payments_token: String::new(),
            key_header: "Idempotency-Key".into(),
            limits: Limits::default(),
            recover_after: Duration::from_secs(30),
            body_limit: 1024 * 1024,
        }
    }
}

/// An answer of the orders API: status and JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderReply {
    pub status: u16,
    pub body: Value,
    /// A stored answer given again (`Idempotent-Replay: true`).
    pub replay: bool,
}

pub fn error_body(code: &str, message: &str, field: Option<&str>) -> Value {
    let mut e = json!({"code": code, "message": message});
    if let Some(f) = field {
        e["field"] = json!(f);
    }
    json!({ "error": e })
}

/// The body of a 500: the cause goes to the log, never to the client.
pub fn internal_body(cause: &dyn std::fmt::Display) -> Value {
    tracing::error!(error = %cause, "orders API request failed inside ferry");
    error_body("internal", "internal error", None)
}

fn answer(status: u16, body: Value) -> OrderReply {
    OrderReply {
        status,
        body,
        replay: false,
    }
}

fn invalid(field: &str, message: &str) -> OrderReply {
    answer(400, error_body("invalid_request", message, Some(field)))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemRequest {
    pub sku: String,
    #[serde(deserialize_with = "crate::whole::i64")]
    pub quantity: i64,
    /// The unit price in the currency's minor units, set by the client instead of the
    /// parent's: only for tokens allowed to (`set_prices`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::whole::opt_i64"
    )]
    pub price_cents: Option<i64>,
}

/// The most lines an order may have (one call to the parent checks them all).
pub const MAX_LINES: usize = 100;
/// The most units of one line.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// The largest amount or unit price, in minor units (10^15: far past any order, far inside
/// what JSON numbers carry exactly).
pub const MAX_AMOUNT: i64 = 1_000_000_000_000_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderRequest {
    pub items: Vec<ItemRequest>,
    #[serde(deserialize_with = "crate::whole::i64")]
    pub amount_cents: i64,
    pub currency: String,
    pub payment_method: String,
}

/// A line with the parent's variant and inventory item it takes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Line {
    sku: String,
    quantity: i64,
    variant: String,
    item: String,
    /// The unit price charged, in minor units (0 in orders stored before prices were kept).
    #[serde(default)]
    price_cents: i64,
}

/// Digits after the point of a currency's minor unit (ISO 4217): 2 unless listed.
fn minor_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An amount in minor units as a person reads it: `1250` USD is "12.50 USD", `1250` JPY
/// "1250 JPY".
pub fn format_amount(minor: i64, currency: &str) -> String {
    let digits = minor_digits(currency);
    if digits == 0 {
        return format!("{minor} {currency}");
    }
    let unit = 10_i64.pow(digits);
    let sign = if minor < 0 { "-" } else { "" };
    let (whole, frac) = (
        minor.unsigned_abs() / unit as u64,
        minor.unsigned_abs() % unit as u64,
    );
    format!(
        "{sign}{whole}.{frac:0width$} {currency}",
        width = digits as usize
    )
}

/// A platform's decimal price ("12.5") in minor units (1250); `None` when it is not one.
fn minor_units(price: &str, currency: &str) -> Option<i64> {
    let digits = minor_digits(currency) as usize;
    let (whole, frac) = price.trim().split_once('.').unwrap_or((price.trim(), ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits past the minor unit must be zeros ("12.50" in EUR, "1200.0" in JPY).
    let (kept, rest) = frac.split_at(frac.len().min(digits));
    if rest.bytes().any(|b| b != b'0') {
        return None;
    }
    let scale = 10i64.checked_pow(digits as u32)?;
    let kept_value = if kept.is_empty() {
        0
    } else {
        kept.parse::<i64>().ok()? * 10i64.pow((digits - kept.len()) as u32)
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(scale)?
        .checked_add(kept_value)
}

ferry_db::text_enum! {
    /// Where the saga of an order stands; each move is a compare-and-set on it.
    pub enum OrderStep {
        /// Received; nothing held yet.
        New = "new",
        /// Its stock is held in the parent.
        Reserved = "reserved",
        /// The provider took the payment.
        Charged = "charged",
        /// Finished one way or the other (see its status); nothing more runs.
        Done = "done",
    }
}

ferry_db::text_enum! {
    /// What the client is told of an order.
    pub enum OrderStatus {
        Pending = "pending",
        Confirmed = "confirmed",
        Failed = "failed",
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct OrderRow {
    id: String,
    status: OrderStatus,
    step: OrderStep,
    items: String,
    amount_cents: i64,
    currency: String,
    payment_method: String,
    transaction_id: Option<String>,
    created_ms: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
struct SummaryRow {
    id: String,
    client: String,
    status: OrderStatus,
    step: OrderStep,
    items: String,
    amount_cents: i64,
    currency: String,
    payment_method: String,
    transaction_id: Option<String>,
    error_code: Option<String>,
    created_ms: i64,
}

/// An order as the dashboard lists it.
#[derive(Debug, Clone)]
pub struct OrderSummary {
    pub id: String,
    pub client: String,
    pub status: OrderStatus,
    pub step: OrderStep,
    /// (SKU, quantity) per line.
    pub items: Vec<(String, i64)>,
    pub amount_cents: i64,
    pub currency: String,
    pub payment_method: String,
    pub transaction_id: Option<String>,
    pub error_code: Option<String>,
    pub created_ms: i64,
    /// The audit log's cause of the stock writes the order made (see
    /// [`crate::Network::audit_by_cause`]).
    pub cause: String,
}

/// ISO 4217's active codes.
const CURRENCIES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND \
BOB BRL BSD BTN BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN \
ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD \
JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU \
MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB \
RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD \
TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWL";

/// The API client a request comes from: a digest of its bearer token (keys and limits are
/// scoped to it; the token itself is never stored).
pub fn client_of(token: &str) -> String {
    let d = sha2::Sha256::digest(token.as_bytes());
    d.iter().take(8).map(|b| format!("{b:02x}")).collect()
}

/// The key as sent: a plain token, or an RFC 8941 string (`"…"`) as the IETF draft has it.
pub fn parse_key(raw: &str) -> Option<String> {
    let k = raw.trim();
    let k = k
        .strip_prefix('"')
        .and_then(|k| k.strip_suffix('"'))
        .unwrap_or(k);
    (!k.is_empty() && k.len() <= 255 && k.chars().all(|c| c.is_ascii_graphic()))
        .then(|| k.to_owned())
}

#[derive(Clone)]
pub struct Orders {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    payments: Option<PaymentsConnector>,
    opts: OrdersOptions,
}

impl Orders {
    pub fn new(engine: Engine, opts: OrdersOptions) -> Orders {
        let payments = (!opts.payments_url.is_empty()).then(|| {
            PaymentsConnector::new(
                engine.client().clone(),
                &opts.payments_url,
                // A breaker and a budget per provider.
                &format!("payments {}", opts.payments_url),
                Arc::new(ferry_connect::StaticToken(ferry_connect::Secret::new(
                    opts.payments_token.clone(),
                ))),
            )
        });
        Orders {
            inner: Arc::new(Inner {
                engine,
                payments,
                opts,
            }),
        }
    }

    pub fn options(&self) -> &OrdersOptions {
        &self.inner.opts
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn now(&self) -> i64 {
        self.engine().now_ms()
    }

    /// Registers the recovery and void jobs (a worker must take the `orders` queue).
    pub fn register(&self, b: WorkerBuilder) -> WorkerBuilder {
        let me = self.clone();
        let b = b.register(move |j: RecoverOrderJob, _ctx| {
            let me = me.clone();
            async move { me.recover(&j.order).await }
        });
        let me = self.clone();
        b.register(move |j: VoidOrderJob, _ctx| {
            let me = me.clone();
            async move { me.void(&j.order).await }
        })
    }

    // ---- the request ------------------------------------------------------------------

    /// Checks a request against the catalog: every field, every SKU in the parent, and the
    /// amount against the parent's current prices. `set_prices`: the caller may give a
    /// line's unit price instead.
    async fn validate(
        &self,
        body: &[u8],
        set_prices: bool,
    ) -> Result<(OrderRequest, Vec<Line>), OrderReply> {
        let raw: Value = serde_json::from_slice(body)
            .map_err(|e| invalid("body", &format!("invalid order: {e}")))?;
        if !raw.is_object() {
            return Err(invalid("body", "invalid order: expected a JSON object"));
        }
        if crate::has_nul(&raw) {
            return Err(invalid(
                "body",
                "text may not contain NUL (U+0000) characters",
            ));
        }
        let req: OrderRequest = serde_json::from_value(raw).map_err(|e| {
            let field = ["items", "amount_cents", "currency", "payment_method"]
                .into_iter()
                .find(|f| e.to_string().contains(&format!("`{f}`")))
                .unwrap_or("body");
            invalid(field, &format!("invalid order: {e}"))
        })?;
        if req.items.is_empty() {
            return Err(invalid("items", "an order needs at least one item"));
        }
        if req.items.len() > MAX_LINES {
            return Err(invalid(
                "items",
                &format!("an order has at most {MAX_LINES} lines"),
            ));
        }
        if !(1..=MAX_AMOUNT).contains(&req.amount_cents) {
            return Err(invalid(
                "amount_cents",
                &format!("must be 1 to {MAX_AMOUNT}"),
            ));
        }
        if req.currency.len() != 3 || !CURRENCIES.split(' ').any(|c| c == req.currency) {
            return Err(invalid(
                "currency",
                "must be an ISO 4217 code in capitals, such as EUR",
            ));
        }
        if crate::blank(&req.payment_method) || req.payment_method.chars().count() > 255 {
            return Err(invalid(
                "payment_method",
                "must be 1 to 255 characters, not only spaces",
            ));
        }
        // Every line on its own first: nothing is asked of the parent for a request that
        // is wrong anyway.
        let mut lower: Vec<String> = Vec::with_capacity(req.items.len());
        for (i, it) in req.items.iter().enumerate() {
            if !(1..=MAX_QUANTITY).contains(&it.quantity) {
                return Err(invalid(
                    &format!("items[{i}].quantity"),
                    &format!("must be 1 to {MAX_QUANTITY}"),
                ));
            }
            let field = format!("items[{i}].sku");
            if crate::blank(&it.sku) || it.sku.chars().count() > 255 {
                return Err(invalid(
                    &field,
                    "must be 1 to 255 characters, not only spaces",
                ));
            }
            let sku = it.sku.to_lowercase();
            if let Some(j) = lower.iter().position(|o| *o == sku) {
                return Err(invalid(
                    &field,
                    &format!(
                        "items[{j}].sku and items[{i}].sku name the same SKU (compared without case); give one line per SKU"
                    ),
                ));
            }
            lower.push(sku);
            if let Some(p) = it.price_cents {
                let field = format!("items[{i}].price_cents");
                if !set_prices {
                    return Err(invalid(
                        &field,
                        "this token may not set prices (its set_prices option is off); leave price_cents out to pay the parent's price",
                    ));
                }
                if !(0..=MAX_AMOUNT).contains(&p) {
                    return Err(invalid(&field, &format!("must be 0 to {MAX_AMOUNT}")));
                }
            }
        }
        self.engine()
            .network()
            .parent()
            .await
            .map_err(|e| answer(503, error_body("no_network", &e.to_string(), None)))?;
        let skus: Vec<String> = req.items.iter().map(|i| i.sku.clone()).collect();
        let priced = self.engine().parent_priced(&skus).await.map_err(|e| {
            tracing::warn!(error = %e.brief(), "the parent store could not be read for an order");
            answer(
                503,
                error_body(
                    "upstream_unavailable",
                    "the parent store could not be read; try again",
                    None,
                ),
            )
        })?;
        let mut lines = Vec::with_capacity(req.items.len());
        let mut expected: i64 = 0;
        for (i, it) in req.items.iter().enumerate() {
            let field = format!("items[{i}].sku");
            let found: Vec<_> = priced
                .variants
                .iter()
                .filter(|v| {
                    v.variant.sku.as_deref().map(str::to_lowercase) == Some(lower[i].clone())
                })
                .collect();
            let v = match found.as_slice() {
                [v] => v,
                [] => return Err(invalid(&field, &format!("unknown SKU {:?}", it.sku))),
                _ => {
                    return Err(invalid(
                        &field,
                        &format!(
                            "SKU {:?} is on several variants of the parent; it can not be ordered until that is fixed",
                            it.sku
                        ),
                    ));
                }
            };
            let unit = match it.price_cents {
                Some(p) => p,
                None => minor_units(&v.price, &priced.currency).ok_or_else(|| {
                    tracing::warn!(currency = %priced.currency, "the parent's price could not be read");
                    answer(
                        503,
                        error_body(
                            "upstream_unavailable",
                            "the parent's price could not be read; try again",
                            None,
                        ),
                    )
                })?,
            };
            expected = unit
                .checked_mul(it.quantity)
                .and_then(|l| expected.checked_add(l))
                .ok_or_else(|| invalid("items", "the order's total is too large"))?;
            lines.push(Line {
                sku: it.sku.clone(),
                quantity: it.quantity,
                variant: v.variant.id.clone(),
                item: v.variant.inventory_item_id.clone(),
                price_cents: unit,
            });
        }
        if req.currency != priced.currency || req.amount_cents != expected {
            let mut body = error_body(
                "AMOUNT_MISMATCH",
                &format!(
                    "amount_cents is {} {}; the lines at the parent's current prices make {expected} {}",
                    req.amount_cents, req.currency, priced.currency
                ),
                Some(if req.currency != priced.currency {
                    "currency"
                } else {
                    "amount_cents"
                }),
            );
            body["error"]["expected_amount_cents"] = json!(expected);
            body["error"]["expected_currency"] = json!(priced.currency);
            return Err(answer(422, body));
        }
        Ok((req, lines))
    }

    /// `POST /api/orders`: the whole answer, replays included. `set_prices`: whether the
    /// caller may give a line's price instead of the parent's.
    pub async fn create(
        &self,
        client: &str,
        set_prices: bool,
        key: Option<&str>,
        body: &[u8],
    ) -> OrderReply {
        match self.create_inner(client, set_prices, key, body).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e.brief(), "order failed inside ferry");
                answer(
                    500,
                    error_body("internal", "the order could not be processed", None),
                )
            }
        }
    }

    async fn create_inner(
        &self,
        client: &str,
        set_prices: bool,
        key: Option<&str>,
        body: &[u8],
    ) -> Result<OrderReply, SyncError> {
        let header = &self.inner.opts.key_header;
        let Some(key) = key else {
            return Ok(answer(
                400,
                error_body(
                    "idempotency_key_missing",
                    &format!("the {header} header is required (at most 255 printable characters)"),
                    Some(header),
                ),
            ));
        };
        // Validation saves nothing: a refused request may be sent again with the same key.
        let (req, lines) = match self.validate(body, set_prices).await {
            Ok(v) => v,
            Err(a) => return Ok(a),
        };
        let fingerprint: String =
            sha2::Sha256::digest(serde_json::to_vec(&req).unwrap_or_default())
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
        let id = format!("ord_{}", uuid::Uuid::now_v7().simple());
        let now = self.now();
        let mut tx = self.engine().queue().begin().await?;
        let inserted = tx_exec!(
            tx,
            "INSERT INTO ferry_orders (id, client, idem_key, fingerprint, status, step, items, amount_cents, currency, payment_method, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $10, $11, $5, $6, $7, $8, $9, $9)
             ON CONFLICT (client, idem_key) DO NOTHING",
            &id,
            client,
            key,
            &fingerprint,
            serde_json::to_string(&lines).unwrap_or_default(),
            req.amount_cents,
            &req.currency,
            &req.payment_method,
            now,
            OrderStatus::Pending,
            OrderStep::New
        )?;
        if inserted == 0 {
            tx.rollback().await?;
            return self.existing(client, key, &fingerprint).await;
        }
        // The recovery job with the order: if this process dies mid-order, a worker finishes
        // or undoes it.
        tx.enqueue(
            NewJob::of(&RecoverOrderJob { order: id.clone() })?
                .run_at_ms(now + self.inner.opts.recover_after.as_millis() as i64)
                .max_attempts(20),
        )
        .await?;
        tx.commit().await?;
        metrics::counter!("ferry_orders_total", "outcome" => "received").increment(1);
        match self.drive(&id).await {
            // The provider has this order's charge in flight from another driver: the stored
            // answer (409 until it is done) is what the client gets.
            Ok(()) | Err(SyncError::Wait(_)) => {}
            Err(e) => return Err(e),
        }
        self.stored(&id).await
    }

    /// A second request with a key already used.
    async fn existing(
        &self,
        client: &str,
        key: &str,
        fingerprint: &str,
    ) -> Result<OrderReply, SyncError> {
        let found = row!(
            self.engine().db(),
            (String, Option<i32>, Option<String>),
            "SELECT fingerprint, response_status, response_body FROM ferry_orders WHERE client = $1 AND idem_key = $2",
            client,
            key
        )?;
        Ok(match found {
            Some((f, _, _)) if f != fingerprint => answer(
                422,
                error_body(
                    "idempotency_key_reused",
                    "this key was used with another body; use a new key for a new order",
                    None,
                ),
            ),
            Some((_, Some(status), Some(body))) => OrderReply {
                status: status as u16,
                body: serde_json::from_str(&body).unwrap_or(Value::Null),
                replay: true,
            },
            _ => answer(
                409,
                error_body(
                    "idempotency_key_in_use",
                    "the first request with this key is still being processed; retry later",
                    None,
                ),
            ),
        })
    }

    async fn stored(&self, id: &str) -> Result<OrderReply, SyncError> {
        let found = row!(
            self.engine().db(),
            (Option<i32>, Option<String>),
            "SELECT response_status, response_body FROM ferry_orders WHERE id = $1",
            id
        )?;
        Ok(match found {
            Some((Some(s), Some(b))) => {
                answer(s as u16, serde_json::from_str(&b).unwrap_or(Value::Null))
            }
            // Another driver holds the order mid-step (a recovery overtaking a slow request).
            _ => answer(
                409,
                error_body(
                    "idempotency_key_in_use",
                    "the order is still being processed",
                    None,
                ),
            ),
        })
    }

    async fn load(&self, id: &str) -> Result<Option<OrderRow>, SyncError> {
        Ok(row!(
            self.engine().db(),
            OrderRow,
            "SELECT id, status, step, items, amount_cents, currency, payment_method, transaction_id, created_ms FROM ferry_orders WHERE id = $1",
            id
        )?)
    }

    // ---- the saga -----------------------------------------------------------------------

    /// Runs the order's saga from the step it is at to its end. Safe to run from two places
    /// at once: each step is taken by a compare-and-set on `step`.
    async fn drive(&self, id: &str) -> Result<(), SyncError> {
        let parent = self.engine().network().parent().await?.name;
        loop {
            // Read again after each step: another driver may have taken the next one.
            let Some(o) = self.load(id).await? else {
                return Ok(());
            };
            let lines: Vec<Line> = serde_json::from_str(&o.items).unwrap_or_default();
            match o.step {
                OrderStep::New => self.reserve(&parent, &o, &lines).await?,
                OrderStep::Reserved => self.charge(&parent, &o).await?,
                OrderStep::Charged => self.confirm(&parent, &o, &lines).await?,
                OrderStep::Done => return Ok(()),
            }
        }
    }

    async fn reserve(&self, parent: &str, o: &OrderRow, lines: &[Line]) -> Result<(), SyncError> {
        let now = self.now();
        // A level ferry has not seen yet is read from the parent first.
        for l in lines {
            let known = row!(
                self.engine().db(),
                (i64,),
                "SELECT expected FROM ferry_levels WHERE store = $1 AND item = $2",
                parent,
                &l.item
            )?;
            if known.is_none() {
                let available = self.engine().parent_available(&l.item).await?.unwrap_or(0);
                exec!(
                    self.engine().db(),
                    "INSERT INTO ferry_levels (store, item, expected, updated_ms) VALUES ($1, $2, $3, $4) ON CONFLICT (store, item) DO NOTHING",
                    parent,
                    &l.item,
                    available,
                    now
                )?;
            }
        }
        let mut sorted: Vec<&Line> = lines.iter().collect();
        // One order of locks for every order: two orders on the same items never deadlock.
        sorted.sort_by(|a, b| a.item.cmp(&b.item));
        let mut tx = self.engine().queue().begin().await?;
        let mine = tx_exec!(
            tx,
            "UPDATE ferry_orders SET step = $3, updated_ms = $2 WHERE id = $1 AND step = $4",
            &o.id,
            now,
            OrderStep::Reserved,
            OrderStep::New
        )?;
        if mine == 0 {
            tx.rollback().await?;
            return Ok(());
        }
        for l in &sorted {
            let held = tx_exec!(
                tx,
                "UPDATE ferry_levels SET reserved = reserved + $3, updated_ms = $4
                 WHERE store = $1 AND item = $2 AND expected - reserved >= $3",
                parent,
                &l.item,
                l.quantity,
                now
            )?;
            if held == 0 {
                // Nothing is held: the whole transaction goes, then the order fails on its own.
                tx.rollback().await?;
                let mut tx = self.engine().queue().begin().await?;
                let body = error_body(
                    "insufficient_stock",
                    &format!("not enough stock of {} for {}", l.sku, l.quantity),
                    Some("items"),
                );
                self.finish(
                    &mut tx,
                    &o.id,
                    OrderStep::New,
                    OrderStatus::Failed,
                    422,
                    &body,
                )
                .await?;
                tx.commit().await?;
                metrics::counter!("ferry_orders_total", "outcome" => "insufficient_stock")
                    .increment(1);
                return Ok(());
            }
            tx_exec!(
                tx,
                "INSERT INTO ferry_reservations (order_id, item, variant, quantity) VALUES ($1, $2, $3, $4)",
                &o.id,
                &l.item,
                &l.variant,
                l.quantity
            )?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The order's final state and the answer every replay gives, if the order is still at
    /// `from` (else another driver finished it, and nothing happens).
    async fn finish(
        &self,
        tx: &mut ferry_queue::Tx,
        id: &str,
        from: OrderStep,
        status: OrderStatus,
        code: u16,
        body: &Value,
    ) -> Result<bool, SyncError> {
        let error = body["error"]["code"].as_str().map(str::to_owned);
        let n = tx_exec!(
            tx,
            "UPDATE ferry_orders SET status = $2, step = $8, error_code = $3, response_status = $4, response_body = $5, updated_ms = $6
             WHERE id = $1 AND step = $7",
            id,
            status,
            error,
            i32::from(code),
            body.to_string(),
            self.now(),
            from,
            OrderStep::Done
        )?;
        Ok(n == 1)
    }

    /// What an order holds: (item, quantity), read before the transaction that lets it go
    /// (SQLite has one connection for writes: a read through the pool inside it would wait
    /// for itself).
    async fn held(&self, id: &str) -> Result<Vec<(String, i64)>, SyncError> {
        Ok(rows!(
            self.engine().db(),
            (String, i64),
            "SELECT item, quantity FROM ferry_reservations WHERE order_id = $1 ORDER BY item",
            id
        )?)
    }

    /// Lets go of what an order holds, in the transaction that fails it.
    async fn release(
        &self,
        tx: &mut ferry_queue::Tx,
        parent: &str,
        id: &str,
        held: &[(String, i64)],
    ) -> Result<(), SyncError> {
        for (item, q) in held {
            tx_exec!(
                tx,
                "UPDATE ferry_levels SET reserved = reserved - $3 WHERE store = $1 AND item = $2",
                parent,
                item,
                *q
            )?;
        }
        tx_exec!(tx, "DELETE FROM ferry_reservations WHERE order_id = $1", id)?;
        Ok(())
    }

    /// Fails an order that holds stock: the answer stored and the stock let go together, or
    /// nothing if another driver got there first.
    async fn fail_held(
        &self,
        parent: &str,
        id: &str,
        code: u16,
        body: &Value,
        void: bool,
    ) -> Result<(), SyncError> {
        let held = self.held(id).await?;
        let mut tx = self.engine().queue().begin().await?;
        if !self
            .finish(
                &mut tx,
                id,
                OrderStep::Reserved,
                OrderStatus::Failed,
                code,
                body,
            )
            .await?
        {
            tx.rollback().await?;
            return Ok(());
        }
        self.release(&mut tx, parent, id, &held).await?;
        if void {
            // The charge may have landed before its answer was lost: find out under its
            // key, and give the money back if it did.
            tx.enqueue(self.void_job(id)?).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    fn charge_key(id: &str) -> String {
        format!("ferry-{id}-charge")
    }

    async fn charge(&self, parent: &str, o: &OrderRow) -> Result<(), SyncError> {
        let outcome = match &self.inner.payments {
            None => Err(None),
            Some(p) => p
                .charge(
                    &Self::charge_key(&o.id),
                    o.amount_cents,
                    &o.currency,
                    &o.payment_method,
                )
                .await
                .map_err(Some),
        };
        match outcome {
            Ok(Charge::Succeeded { id: txn }) => {
                let mut tx = self.engine().queue().begin().await?;
                let n = tx_exec!(
                    tx,
                    "UPDATE ferry_orders SET step = $4, transaction_id = $2, updated_ms = $3 WHERE id = $1 AND step = $5",
                    &o.id,
                    &txn,
                    self.now(),
                    OrderStep::Charged,
                    OrderStep::Reserved
                )?;
                if n == 0 {
                    // Another driver moved the order on: if it failed it, the money goes back
                    // (the void job gives back only what a failed order was charged).
                    tx.enqueue(self.void_job(&o.id)?).await?;
                }
                tx.commit().await?;
            }
            Ok(Charge::Declined { message }) => {
                let body = error_body(
                    "payment_failed",
                    &format!("the payment was declined: {message}"),
                    Some("payment_method"),
                );
                self.fail_held(parent, &o.id, 402, &body, false).await?;
                metrics::counter!("ferry_orders_total", "outcome" => "payment_failed").increment(1);
            }
            Err(e) => {
                // Another request with the same key is in flight at the provider (a driver
                // overtook another): not an answer yet.
                if let Some(ConnectError::Client { status: 409, .. }) = &e {
                    return Err(SyncError::Wait(Duration::from_secs(1)));
                }
                let why = match &e {
                    None => "no payment provider is configured".to_owned(),
                    Some(e) => format!("the payment provider is unavailable: {e}"),
                };
                let body = error_body("upstream_unavailable", &why, None);
                // An open breaker sent nothing; anything else may have reached the provider.
                let maybe_sent = e
                    .as_ref()
                    .is_some_and(|e| !matches!(e, ConnectError::BreakerOpen { .. }));
                self.fail_held(parent, &o.id, 503, &body, maybe_sent)
                    .await?;
                metrics::counter!("ferry_orders_total", "outcome" => "upstream_unavailable")
                    .increment(1);
            }
        }
        Ok(())
    }

    fn void_job(&self, id: &str) -> Result<NewJob, SyncError> {
        Ok(NewJob::of(&VoidOrderJob {
            order: id.to_owned(),
        })?
        .max_attempts(25))
    }

    fn view(o: &OrderRow, lines: &[Line], status: OrderStatus) -> Value {
        json!({
            "id": o.id,
            "status": status.as_str(),
            "transaction_id": o.transaction_id,
            "items": lines.iter().map(|l| json!({"sku": l.sku, "quantity": l.quantity})).collect::<Vec<_>>(),
            "amount_cents": o.amount_cents,
            "currency": o.currency,
            "created_ms": o.created_ms,
        })
    }

    async fn confirm(&self, parent: &str, o: &OrderRow, lines: &[Line]) -> Result<(), SyncError> {
        let body = Self::view(o, lines, OrderStatus::Confirmed);
        let sale: Vec<(String, String, i64)> = lines
            .iter()
            .map(|l| (l.variant.clone(), l.item.clone(), l.quantity))
            .collect();
        let plan = self.engine().api_sale_plan(parent, &sale).await?;
        let mut tx = self.engine().queue().begin().await?;
        if !self
            .finish(
                &mut tx,
                &o.id,
                OrderStep::Charged,
                OrderStatus::Confirmed,
                201,
                &body,
            )
            .await?
        {
            tx.rollback().await?;
            return Ok(());
        }
        // The reservation becomes the sale: the parent's expected level moves by it, and the
        // deltas to every store are enqueued with the order's keys, in this transaction.
        self.engine().api_sale(&mut tx, &o.id, &plan).await?;
        tx_exec!(
            tx,
            "DELETE FROM ferry_reservations WHERE order_id = $1",
            &o.id
        )?;
        tx.commit().await?;
        metrics::counter!("ferry_orders_total", "outcome" => "confirmed").increment(1);
        Ok(())
    }

    // ---- jobs ---------------------------------------------------------------------------

    async fn recover(&self, id: &str) -> Result<(), JobError> {
        let result = async {
            match self.load(id).await? {
                Some(o) if o.status == OrderStatus::Pending => {
                    tracing::warn!(order = id, step = %o.step, "finishing an order its request left");
                    // A reservation half made by a process that died was undone by its
                    // rollback: the order is still at `new`.
                    self.drive(id).await
                }
                _ => Ok(()),
            }
        }
        .await;
        result.map_err(|e| match e {
            SyncError::Wait(d) => JobError::snooze(d),
            e => JobError::retry(e),
        })
    }

    /// Gives back a charge that may have landed for an order that failed.
    async fn void(&self, id: &str) -> Result<(), JobError> {
        let Some(p) = &self.inner.payments else {
            return Ok(());
        };
        let o = self
            .load(id)
            .await
            .map_err(JobError::retry)?
            .ok_or_else(|| JobError::fatal(format!("no order {id}")))?;
        // Only a failed order's charge is given back: two drivers of one order charge under
        // one key, and the one that lost the race must not refund the other's confirmed sale.
        match o.status {
            OrderStatus::Failed => {}
            OrderStatus::Pending => return Err(JobError::snooze(Duration::from_secs(1))),
            OrderStatus::Confirmed => return Ok(()),
        }
        // The same key: the provider answers what it did, and charges nothing new if the
        // first request never reached it... except that then it charges now, which the
        // cancel below gives back at once.
        match p
            .charge(
                &Self::charge_key(id),
                o.amount_cents,
                &o.currency,
                &o.payment_method,
            )
            .await
        {
            Ok(Charge::Succeeded { id: txn }) => {
                p.cancel(&format!("ferry-{id}-void"), &txn)
                    .await
                    .map_err(|e| e.into_job_error())?;
                tracing::info!(order = id, transaction = %txn, "charge of a failed order given back");
                Ok(())
            }
            Ok(Charge::Declined { .. }) => Ok(()),
            Err(e) => Err(e.into_job_error()),
        }
    }

    // ---- reads and limits -----------------------------------------------------------------

    pub async fn get(&self, id: &str) -> Result<Option<Value>, SyncError> {
        Ok(self.load(id).await?.map(|o| self.public(&o)))
    }

    fn public(&self, o: &OrderRow) -> Value {
        let lines: Vec<Line> = serde_json::from_str(&o.items).unwrap_or_default();
        Self::view(o, &lines, o.status)
    }

    /// Whether the order `id` was placed by `client`.
    pub async fn placed_by(&self, id: &str, client: &str) -> Result<bool, SyncError> {
        let found = row!(
            self.engine().db(),
            (i64,),
            "SELECT 1 FROM ferry_orders WHERE id = $1 AND client = $2",
            id,
            client
        )?;
        Ok(found.is_some())
    }

    /// Orders of every client newest first, before `(created_ms, id)` (none: from the
    /// newest), for the dashboard: where each saga stands and how it was paid.
    pub async fn recent(
        &self,
        before: Option<(i64, String)>,
        limit: i64,
    ) -> Result<Vec<OrderSummary>, SyncError> {
        let (ms, id) = before.unwrap_or((i64::MAX, String::new()));
        let found = rows!(
            self.engine().db(),
            SummaryRow,
            "SELECT id, client, status, step, items, amount_cents, currency, payment_method, transaction_id, error_code, created_ms
             FROM ferry_orders WHERE (created_ms, id) < ($1, $2)
             ORDER BY created_ms DESC, id DESC LIMIT $3",
            ms,
            &id,
            limit
        )?;
        Ok(found
            .into_iter()
            .map(|r| {
                let lines: Vec<Line> = serde_json::from_str(&r.items).unwrap_or_default();
                OrderSummary {
                    cause: crate::stock::sales::api_order_cause(&r.id),
                    items: lines.into_iter().map(|l| (l.sku, l.quantity)).collect(),
                    id: r.id,
                    client: r.client,
                    status: r.status,
                    step: r.step,
                    amount_cents: r.amount_cents,
                    currency: r.currency,
                    payment_method: r.payment_method,
                    transaction_id: r.transaction_id,
                    error_code: r.error_code,
                    created_ms: r.created_ms,
                }
            })
            .collect())
    }

    /// A page of orders, newest first: every client's, or only `client`'s.
    pub async fn list(
        &self,
        client: Option<&str>,
        page: i64,
        page_size: i64,
    ) -> Result<Value, SyncError> {
        let (count,) = row!(
            self.engine().db(),
            (i64,),
            "SELECT COUNT(*) FROM ferry_orders WHERE client = COALESCE($1, client)",
            client
        )?
        .unwrap_or((0,));
        let found = rows!(
            self.engine().db(),
            OrderRow,
            "SELECT id, status, step, items, amount_cents, currency, payment_method, transaction_id, created_ms
             FROM ferry_orders WHERE client = COALESCE($3, client)
             ORDER BY created_ms DESC, id DESC LIMIT $1 OFFSET $2",
            page_size,
            (page - 1) * page_size,
            client
        )?;
        Ok(json!({
            "count": count,
            "page": page,
            "page_size": page_size,
            "results": found.iter().map(|o| self.public(o)).collect::<Vec<_>>(),
        }))
    }

    /// Counts a request against its client's limit for `route`, on the database (so every
    /// server shares it); `Some(seconds to wait)` when over. The count is a sliding minute:
    /// this minute's requests plus last minute's weighted by how much of it still lies within
    /// sixty seconds, so a client cannot send twice its limit across a minute's boundary.
    pub async fn over_limit(
        &self,
        client: &str,
        route: &str,
        limit: i64,
    ) -> Result<Option<u64>, SyncError> {
        const MINUTE: i64 = 60_000;
        let now = self.now();
        let window = now - now.rem_euclid(MINUTE);
        let db = self.engine().db();
        let (count,) = row!(
            db,
            (i64,),
            "INSERT INTO ferry_rate_windows (client, route, window_ms, count) VALUES ($1, $2, $3, 1)
             ON CONFLICT (client, route, window_ms) DO UPDATE SET count = ferry_rate_windows.count + 1
             RETURNING count",
            client,
            route,
            window
        )?
        .unwrap_or((0,));
        if count == 1 {
            // A new minute for this client and route: what came before the last one is no
            // longer needed, which keeps the table at two rows per client and route.
            exec!(
                db,
                "DELETE FROM ferry_rate_windows WHERE client = $1 AND route = $2 AND window_ms < $3",
                client,
                route,
                window - MINUTE
            )?;
        }
        let (previous,) = row!(
            db,
            (i64,),
            "SELECT count FROM ferry_rate_windows WHERE client = $1 AND route = $2 AND window_ms = $3",
            client,
            route,
            window - MINUTE
        )?
        .unwrap_or((0,));
        let into = now - window;
        let weighted =
            |at: i64| count as f64 + previous as f64 * (MINUTE - at) as f64 / MINUTE as f64;
        if weighted(into) <= limit as f64 {
            return Ok(None);
        }
        // When last minute's share has shrunk enough, or this minute is over.
        let wait_ms = if count < limit && previous > 0 {
            let at = MINUTE as f64 * (1.0 - (limit - count) as f64 / previous as f64);
            (at.ceil() as i64 - into).max(1)
        } else {
            window + MINUTE - now
        };
        Ok(Some(((wait_ms + 999) / 1000).clamp(1, 60) as u64))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_read_in_their_currency_s_minor_unit() {
        assert_eq!(super::format_amount(1250, "USD"), "12.50 USD");
        assert_eq!(super::format_amount(1250, "JPY"), "1250 JPY");
        assert_eq!(super::format_amount(1005, "KWD"), "1.005 KWD");
        assert_eq!(super::format_amount(-5, "EUR"), "-0.05 EUR");
    }
}
