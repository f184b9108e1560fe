use ferry_testkit::Answered;
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_sync::webhooks::WebhookScheme;
use ferry_testkit::TestDb;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Harness, b64, hmac_sha256};

ferry_testkit::conformance! {
    a_signed_delivery_is_accepted_once, bad_input_is_refused_and_nothing_is_stored, secrets_rotate,
    standard_webhooks_and_stripe_are_verified, the_same_delivery_at_once_is_accepted_once,
    health_and_security_headers,
    request_ids_follow_deliveries_and_cors_is_only_for_configured_origins,
    a_failed_commit_answers_every_delivery_in_it_with_an_error,
}

const SECRET: &str = "shpss_first_secret";

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn shopify(
    h: &Harness,
    store: &str,
    secret: &str,
    id: &str,
    body: &[u8],
) -> reqwest::RequestBuilder {
    h.http
        .post(h.url(&format!("/webhooks/shopify/{store}")))
        .header("content-type", "application/json")
        .header(
            "x-shopify-hmac-sha256",
            b64(&hmac_sha256(secret.as_bytes(), &[body])),
        )
        .header("x-shopify-webhook-id", id)
        .header("x-shopify-topic", "products/update")
        .body(body.to_vec())
}

/// The job an accepted delivery's answer `v` names.
async fn job_of(h: &Harness, v: &Value) -> ferry_queue::JobRecord {
    let id = v["job_id"].as_str().unwrap().parse().unwrap();
    h.queue.get(id).await.unwrap().unwrap()
}

/// A Shopify store named `shop` whose secret is [`SECRET`].
async fn shop(h: &Harness) {
    h.stores
        .put("shop", WebhookScheme::Shopify, &[SECRET.into()])
        .await
        .unwrap();
}

async fn error_code(r: reqwest::Response) -> (u16, String) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    (
        status,
        v["error"]["code"].as_str().unwrap_or_default().to_owned(),
    )
}

async fn a_signed_delivery_is_accepted_once(db: TestDb) {
    let h = Harness::start(db).await;
    shop(&h).await;
    let body = br#"{"id":7,"title":"Mug"}"#;
    let r = shopify(&h, "shop", SECRET, "wh-1", body).answer().await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "accepted");
    let job = job_of(&h, &v).await;
    assert_eq!(job.queue, "webhooks");
    let payload = &job.payload;
    assert_eq!(payload["body"]["title"], "Mug");
    assert_eq!(payload["topic"], "products/update");

    // A NUL in a signed payload (which PostgreSQL's jsonb can not hold) is kept as U+FFFD.
    let nul = br#"{"id":8,"title":"Mug\u0000 2","tags":{"a\u0000":"b"}}"#;
    let r = shopify(&h, "shop", SECRET, "wh-nul", nul).answer().await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let job = job_of(&h, &r.json().await.unwrap()).await;
    assert_eq!(job.payload["body"]["title"], "Mug\u{FFFD} 2");
    assert_eq!(job.payload["body"]["tags"]["a\u{FFFD}"], "b");

    let again = shopify(&h, "shop", SECRET, "wh-1", body).answer().await;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");
    assert_eq!(
        (h.deliveries().await, h.webhook_jobs().await),
        (2, 2),
        "nothing more stored"
    );
}

async fn bad_input_is_refused_and_nothing_is_stored(db: TestDb) {
    let h = Harness::start(db).await;
    shop(&h).await;
    let body = br#"{"id":1}"#;
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (
            shopify(&h, "shop", "wrong-secret", "a", body),
            401,
            "invalid_signature",
        ),
        (
            h.http
                .post(h.url("/webhooks/shopify/shop"))
                .header("content-type", "application/json")
                .body(body.to_vec()),
            401,
            "invalid_signature",
        ),
        // An unknown store is refused in a known store's words: names can not be enumerated.
        (
            shopify(&h, "nope", SECRET, "a", body),
            401,
            "invalid_signature",
        ),
        (
            shopify(&h, &"x".repeat(65), SECRET, "a", body),
            401,
            "invalid_signature",
        ),
        (
            shopify(&h, "shop", SECRET, "a", body).header("x-padding", "p".repeat(9 * 1024)),
            431,
            "headers_too_large",
        ),
        (
            h.http
                .post(h.url("/webhooks/shopify/shop"))
                .header("content-type", "text/plain")
                .header(
                    "x-shopify-hmac-sha256",
                    b64(&hmac_sha256(SECRET.as_bytes(), &[body])),
                )
                .header("x-shopify-webhook-id", "a")
                .body(body.to_vec()),
            415,
            "unsupported_media_type",
        ),
        (
            shopify(&h, "shop", SECRET, "a", b"not json"),
            400,
            "invalid_json",
        ),
        (
            shopify(&h, "shop", SECRET, "a", &vec![b' '; 1024 * 1024 + 1]),
            413,
            "payload_too_large",
        ),
    ];
    for (req, status, code) in cases {
        let got = error_code(req.answer().await).await;
        assert_eq!(got, (status, code.to_owned()));
    }
    let r = h
        .http
        .post(h.url("/webhooks/nonsense/shop"))
        .header("content-type", "application/json")
        .body("{}")
        .answer()
        .await;
    assert_eq!(error_code(r).await, (404, "unknown_platform".into()));
    assert_eq!((h.deliveries().await, h.webhook_jobs().await), (0, 0));

    // A known store with a wrong signature and an unknown store: the same status and body.
    let known = shopify(&h, "shop", "wrong-secret", "b", body)
        .answer()
        .await;
    let unknown = shopify(&h, "no-such-store", "wrong-secret", "b", body)
        .answer()
        .await;
    assert_eq!(known.status(), unknown.status());
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap());
}

async fn secrets_rotate(db: TestDb) {
    let h = Harness::start(db).await;
    shop(&h).await;
    h.stores
        .rotate("shop", "shpss_second_secret", 1)
        .await
        .unwrap();
    for (i, s) in [SECRET, "shpss_second_secret"].iter().enumerate() {
        let r = shopify(&h, "shop", s, &format!("r{i}"), b"{}")
            .answer()
            .await;
        assert_eq!(
            r.status(),
            StatusCode::ACCEPTED,
            "both secrets during the rotation"
        );
    }
    h.stores
        .rotate("shop", "shpss_second_secret", 0)
        .await
        .unwrap();
    let r = shopify(&h, "shop", SECRET, "r3", b"{}").answer().await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "the old one revoked");
    let stored = format!("{:?}", h.stores.get("shop").await.unwrap());
    assert!(
        !stored.contains("shpss_"),
        "Debug never shows secrets: {stored}"
    );
    let (raw,) = ferry_db::row!(&h.db, (String,), "SELECT secrets FROM ferry_stores")
        .unwrap()
        .unwrap();
    assert!(!raw.contains("shpss_"), "sealed at rest");
}

async fn standard_webhooks_and_stripe_are_verified(db: TestDb) {
    let h = Harness::start(db).await;
    let key = [7u8; 32];
    let whsec = format!("whsec_{}", b64(&key));
    h.stores
        .put("acme", WebhookScheme::Standard, &[whsec])
        .await
        .unwrap();
    let body = br#"{"type":"order.created","data":{}}"#;
    let send = |ts: i64, id: &str| {
        let t = ts.to_string();
        let sig = b64(&hmac_sha256(
            &key,
            &[id.as_bytes(), b".", t.as_bytes(), b".", body],
        ));
        h.http
            .post(h.url("/webhooks/standard/acme"))
            .header("content-type", "application/json")
            .header("webhook-id", id)
            .header("webhook-timestamp", t)
            .header("webhook-signature", format!("v1,{sig}"))
            .body(body.to_vec())
            .send()
    };
    assert_eq!(
        send(now_s(), "msg_1").await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        error_code(send(now_s() - 400, "msg_2").await.unwrap()).await,
        (401, "stale_timestamp".into())
    );

    h.stores
        .put(
            "pay",
            WebhookScheme::Stripe,
            &["whsec_stripe_secret".into()],
        )
        .await
        .unwrap();
    let body = br#"{"id":"evt_9","type":"payment_intent.succeeded"}"#;
    let t = now_s().to_string();
    let sig = hex(&hmac_sha256(
        b"whsec_stripe_secret",
        &[t.as_bytes(), b".", body],
    ));
    let r = h
        .http
        .post(h.url("/webhooks/stripe/pay"))
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", format!("t={t},v1={sig}"))
        .body(body.to_vec())
        .answer()
        .await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(
        r.json::<Value>().await.unwrap()["delivery_id"],
        "evt_9",
        "Stripe dedupes on the event id"
    );
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn the_same_delivery_at_once_is_accepted_once(db: TestDb) {
    let h = Harness::start(db).await;
    shop(&h).await;
    let body = json!({"id": 1}).to_string();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let req = shopify(&h, "shop", SECRET, "same", body.as_bytes());
        tasks.spawn(async move { req.answer().await.status() });
    }
    let mut statuses = Vec::new();
    while let Some(s) = tasks.join_next().await {
        statuses.push(s.unwrap().as_u16());
    }
    statuses.sort();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 200, 200, 202]);
    assert_eq!((h.deliveries().await, h.webhook_jobs().await), (1, 1));
}

async fn health_and_security_headers(db: TestDb) {
    let h = Harness::start(db).await;
    let r = h.http.get(h.url("/healthz")).answer().await;
    assert_eq!(r.status(), 200);
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(r.headers()[name], value);
    }
    let r = h.http.get(h.url("/readyz")).answer().await;
    assert_eq!(r.status(), 200);
    let r = h.http.get(h.url("/webhooks/shopify/x")).answer().await;
    assert_eq!(r.status(), 405);
    assert_eq!(
        r.headers()["x-content-type-options"],
        "nosniff",
        "on every response"
    );
    let preflight = h
        .http
        .request(reqwest::Method::OPTIONS, h.url("/api/stores"))
        .header("origin", "https://admin.example")
        .header("access-control-request-method", "GET")
        .answer()
        .await;
    assert_eq!(
        preflight.headers()["x-frame-options"],
        "DENY",
        "CORS preflights too"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_webhooks_and_queue_depth() {
    let Some(db) = TestDb::new(ferry_testkit::Backend::Sqlite).await else {
        return;
    };
    let h = Harness::start(db).await;
    shop(&h).await;
    assert_eq!(
        shopify(&h, "shop", SECRET, "m1", b"{}")
            .answer()
            .await
            .status(),
        202
    );
    assert_eq!(
        shopify(&h, "shop", "forged-secret", "m2", b"{}")
            .answer()
            .await
            .status(),
        401
    );
    let r = h.http.get(h.url("/metrics")).answer().await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let has = |needle: &[&str]| text.lines().any(|l| needle.iter().all(|n| l.contains(n)));
    assert!(
        has(&[
            "ferry_http_requests_total",
            r#"route="/webhooks/{platform}/{store}""#,
            r#"status="202""#
        ]),
        "{text}"
    );
    assert!(has(&["ferry_http_requests_total", r#"status="401""#]));
    assert!(has(&[
        "ferry_webhooks_total",
        r#"outcome="invalid_signature""#,
        r#"platform="shopify""#
    ]));
    assert!(
        has(&["ferry_http_request_seconds_bucket"]),
        "latency histograms"
    );
    assert!(has(&[
        "ferry_queue_jobs",
        r#"queue="webhooks""#,
        r#"state="ready""#
    ]));
    assert!(has(&[
        "ferry_queue_oldest_ready_age_seconds",
        r#"queue="webhooks""#
    ]));
    assert!(!text.contains(SECRET), "no secret in metrics");

    // Made-up platforms and stores add no series: labels come from fixed lists, so a second
    // round of new names finds every series already there.
    let series = |t: &str| {
        t.lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.rsplit_once(' ').map(|(k, _)| k.to_owned()))
            .collect::<std::collections::BTreeSet<_>>()
    };
    let mut rounds = Vec::new();
    for round in 0..2 {
        for i in 0..20 {
            let r = h
                .http
                .post(h.url(&format!("/webhooks/made-up-{round}-{i}/store-{round}-{i}")))
                .header("content-type", "application/json")
                .body("{}")
                .answer()
                .await;
            assert_eq!(r.status(), 404);
        }
        let text = h
            .http
            .get(h.url("/metrics"))
            .answer()
            .await
            .text()
            .await
            .unwrap();
        assert!(!text.contains("made-up"), "{text}");
        rounds.push(series(&text));
    }
    let added: Vec<_> = rounds[1].difference(&rounds[0]).collect();
    assert!(added.is_empty(), "new series from new names: {added:?}");
}

async fn request_ids_follow_deliveries_and_cors_is_only_for_configured_origins(db: TestDb) {
    let h = Harness::start(db).await;
    shop(&h).await;
    let r = shopify(&h, "shop", SECRET, "rid-1", b"{}")
        .header("x-request-id", "req-abc")
        .answer()
        .await;
    assert_eq!(r.headers()["x-request-id"], "req-abc", "echoed");
    let v: Value = r.json().await.unwrap();
    let job = job_of(&h, &v).await;
    assert_eq!(
        job.payload["request_id"], "req-abc",
        "and carried into the job"
    );
    let r = h.http.get(h.url("/healthz")).answer().await;
    assert!(
        !r.headers()["x-request-id"].is_empty(),
        "one is made when none is sent"
    );

    let preflight = |origin: &'static str| {
        h.http
            .request(reqwest::Method::OPTIONS, h.url("/api/jobs"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };
    let ok = preflight("https://admin.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://admin.example"
    );
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

async fn a_failed_commit_answers_every_delivery_in_it_with_an_error(db: TestDb) {
    use ferry_sync::webhooks::{Committer, Delivery};
    let q = db.real_queue().await;
    ferry_sync::db::open(&q).await.unwrap();
    let committer = Committer::start(q.clone());
    let delivery = |i: u32| Delivery {
        store: "shop".into(),
        delivery_id: format!("g{i}"),
        platform: "shopify",
        topic: "products/update".into(),
        job: ferry_queue::NewJob::new("webhook.received", &json!({"i": i}))
            .unwrap()
            .queue("webhooks"),
    };
    // Together in one commit: the duplicate inside the batch is answered as one.
    let (a, b, c) = tokio::join!(
        committer.submit(delivery(1)),
        committer.submit(delivery(2)),
        committer.submit(delivery(1))
    );
    let outcomes = [a.unwrap(), b.unwrap(), c.unwrap()];
    let accepted = outcomes
        .iter()
        .filter(|o| matches!(o, ferry_sync::webhooks::CommitOutcome::Accepted { .. }))
        .count();
    assert_eq!(accepted, 2, "{outcomes:?}");
    // The database goes away: every delivery of the next commit gets an error, none a 202.
    match (q.pg_pool(), q.sqlite_pool()) {
        (Some(p), _) => p.close().await,
        (None, Some(p)) => p.close().await,
        _ => unreachable!(),
    }
    let (x, y) = tokio::join!(committer.submit(delivery(3)), committer.submit(delivery(4)));
    assert!(x.is_err() && y.is_err());
}
