use std::time::Duration;

use ferry_connect::{BreakerPolicy, ConnectError, ErrorClass};
use ferry_mock::Faults;
use ferry_testkit::TestDb;
use serde_json::json;

use crate::{Env, quick};

ferry_testkit::conformance! {
    transient_errors_are_retried_client_errors_are_not,
    requests_are_paced_before_the_bucket_overflows, throttled_answers_are_waited_out_or_handed_back,
    keyed_posts_are_never_duplicated_by_retries, breaker_opens_and_recovers,
    a_changed_response_shape_is_a_data_error, the_outbound_policy_holds_on_every_call,
}

async fn transient_errors_are_retried_client_errors_are_not(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();
    // A breaker that stays closed here (its own test opens it).
    let opts = ferry_connect::ClientOptions {
        breaker: BreakerPolicy {
            threshold: 1000,
            ..BreakerPolicy::default()
        },
        ..quick()
    };
    let rest = env.rest(&s, opts);
    p.set_faults("shop", Faults::with(|f| f.error_5xx = 1.0))
        .unwrap();
    let e = rest.put("a", &json!({"t": 1})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Transient, "{e}");
    assert_eq!(
        p.counters("shop").unwrap().rest_requests,
        4,
        "the first try and 3 retries"
    );

    p.set_faults("shop", Faults::with(|f| f.error_5xx = 0.3))
        .unwrap();
    for i in 0..10 {
        rest.put(&format!("x{i}"), &json!({"i": i})).await.unwrap();
    }
    assert_eq!(
        p.items("shop").unwrap().len(),
        10,
        "every write made it through 5xx"
    );

    p.set_faults("shop", Faults::default()).unwrap();
    let before = p.counters("shop").unwrap().rest_requests;
    let e = rest.put("bad", &json!([1, 2])).await.unwrap_err();
    assert!(matches!(e, ConnectError::Client { status: 400, .. }), "{e}");
    assert_eq!(
        p.counters("shop").unwrap().rest_requests,
        before + 1,
        "a 4xx is not retried"
    );
    assert!(!e.is_retryable());
    assert!(
        e.to_string().len() > e.brief().len() && !e.brief().contains("JSON object"),
        "the platform's words stay in the job's record, not in the brief form: {} / {}",
        e,
        e.brief()
    );

    let wrong = ferry_mock::StoreInfo {
        access_token: "shpat_wrong".into(),
        ..s.clone()
    };
    let e = env
        .rest(&wrong, quick())
        .put("a", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(e.class(), ErrorClass::Auth);
    assert!(
        !format!("{e} {e:?}").contains("shpat_wrong"),
        "no token in errors"
    );
}

async fn requests_are_paced_before_the_bucket_overflows(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();
    // A bucket of 10 leaking 20/s: 60 writes need about 2.5 s of leaking.
    p.set_rest_bucket("shop", 10.0, 20.0).unwrap();
    let rest = env
        .rest(&s, quick())
        .with_shape(ferry_connect::BucketShape {
            capacity: 10.0,
            restore_per_s: 20.0,
        });
    rest.put("probe", &json!({})).await.unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let r = rest.clone();
        tasks.spawn(async move { r.put(&format!("i{i}"), &json!({"i": i})).await });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    let c = p.counters("shop").unwrap();
    assert_eq!(c.http_429, 0, "paced, never refused: {c:?}");
    assert_eq!(p.items("shop").unwrap().len(), 61);
}

async fn throttled_answers_are_waited_out_or_handed_back(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();
    p.set_faults(
        "shop",
        Faults {
            throttle_429: 1.0,
            retry_after_s: 30,
            ..Faults::default()
        },
    )
    .unwrap();
    let rest = env.rest(&s, quick());
    let e = rest.put("a", &json!({})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(
        e.retry_after(),
        Some(Duration::from_secs(30)),
        "Retry-After honoured"
    );
    assert_eq!(
        p.counters("shop").unwrap().rest_requests,
        1,
        "30 s is for the queue to wait"
    );
    match e.into_job_error() {
        ferry_queue::JobError::Snooze(d) => assert_eq!(d, Duration::from_secs(30)),
        other => panic!("a rate limit snoozes the job: {other:?}"),
    }
    // The key is blocked for everyone: the next call does not even reach the server.
    p.set_faults("shop", Faults::default()).unwrap();
    let e = rest.put("b", &json!({})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::RateLimited);
    assert_eq!(p.counters("shop").unwrap().rest_requests, 1);
}

async fn keyed_posts_are_never_duplicated_by_retries(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();
    p.set_faults("shop", Faults::with(|f| f.applied_then_5xx = 0.5))
        .unwrap();
    let rest = env.rest(&s, quick());
    let mut ok = 0;
    for i in 0..20 {
        if rest
            .post(&json!({"n": i}), &format!("intent-{i}"))
            .await
            .is_ok()
        {
            ok += 1;
        }
    }
    assert!(
        ok >= 15,
        "retries with the same key get the stored answer ({ok}/20)"
    );
    assert!(p.faults_injected("shop").unwrap() > 0);
    let items = p.items("shop").unwrap();
    let mut ns: Vec<i64> = items.iter().map(|i| i["n"].as_i64().unwrap()).collect();
    ns.sort();
    ns.dedup();
    assert_eq!(ns.len(), items.len(), "no intent created twice");
    assert!(items.len() <= 20);
}

async fn breaker_opens_and_recovers(db: TestDb) {
    let (env, clock) = Env::start_fake(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();
    let opts = ferry_connect::ClientOptions {
        max_retries: 0,
        breaker: BreakerPolicy {
            threshold: 3,
            cooldown: Duration::from_millis(300),
            max_cooldown: Duration::from_secs(5),
            probe_timeout: Duration::from_secs(5),
        },
        ..quick()
    };
    let rest = env.rest(&s, opts);
    p.set_faults("shop", Faults::with(|f| f.error_5xx = 1.0))
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            rest.put("a", &json!({})).await.unwrap_err().class(),
            ErrorClass::Transient
        );
    }
    let e = rest.put("a", &json!({})).await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Open, "{e}");
    assert_eq!(
        p.counters("shop").unwrap().rest_requests,
        3,
        "an open breaker sends nothing"
    );
    assert!(matches!(
        e.into_job_error(),
        ferry_queue::JobError::Snooze(_)
    ));
    let state = rest_breaker(&env, &rest).await;
    assert_eq!(state.state, "open");

    // Still failing when due: the probe fails, it opens again for twice as long.
    clock.advance(Duration::from_millis(350));
    assert_eq!(
        rest.put("a", &json!({})).await.unwrap_err().class(),
        ErrorClass::Transient
    );
    assert_eq!(
        rest.put("a", &json!({})).await.unwrap_err().class(),
        ErrorClass::Open
    );
    let reopened = rest_breaker(&env, &rest).await;
    assert!(
        reopened.open_until_ms - env.queue.now_ms() > 400,
        "doubled cooldown: {reopened:?}"
    );

    p.set_faults("shop", Faults::default()).unwrap();
    clock.advance(Duration::from_millis(650));
    rest.put("a", &json!({"ok": true})).await.unwrap();
    assert_eq!(rest_breaker(&env, &rest).await.state, "closed");
    rest.put("b", &json!({})).await.unwrap();
}

async fn rest_breaker(
    env: &Env,
    rest: &ferry_connect::rest::RestConnector,
) -> ferry_connect::BreakerState {
    let b =
        ferry_connect::Breakers::new(env.db.clone(), env.queue.clock(), BreakerPolicy::default());
    let all = b.all().await.unwrap();
    all.into_iter().find(|s| s.key == rest.key()).unwrap()
}

async fn a_changed_response_shape_is_a_data_error(db: TestDb) {
    let env = Env::start(db).await;
    // A partner API that renamed `items` to `records`.
    let app = axum::Router::new().route(
        "/api/items",
        axum::routing::get(|| async { axum::Json(json!({"records": [], "next_cursor": null})) }),
    );
    let rest = env.serve_api(app).await;
    let e = rest.list(None, None, 10).await.unwrap_err();
    match &e {
        ConnectError::Data { path, .. } => assert_eq!(path, "items"),
        other => panic!("expected a data error: {other}"),
    }
    assert!(!e.is_retryable());
}

async fn the_outbound_policy_holds_on_every_call(db: TestDb) {
    let env = Env::start(db).await;
    let p = env.mock.platform();
    let s = p.create_store(Some("shop")).unwrap();

    // A production client refuses plain http to loopback before anything is sent.
    let strict = ferry_connect::ClientOptions {
        outbound: ferry_connect::Outbound::default(),
        ..quick()
    };
    let e = env.rest(&s, strict).put("a", &json!({})).await.unwrap_err();
    assert!(matches!(e, ConnectError::Outbound(_)), "{e}");
    assert!(!e.is_retryable());
    assert_eq!(p.counters("shop").unwrap().rest_requests, 0, "nothing sent");

    // Listing the host is not enough for plain http: https or the insecure switch.
    let listed = ferry_connect::ClientOptions {
        outbound: ferry_connect::Outbound {
            allowed_hosts: vec!["127.0.0.1".into()],
            ..ferry_connect::Outbound::default()
        },
        ..quick()
    };
    let e = env.rest(&s, listed).put("a", &json!({})).await.unwrap_err();
    assert!(matches!(e, ConnectError::Outbound(_)), "{e}");

    // Answers are read up to the limit, never whole past it.
    let rest = env.rest(&s, quick());
    rest.put("big", &json!({"text": "x".repeat(4096)}))
        .await
        .unwrap();
    let small = ferry_connect::ClientOptions {
        outbound: ferry_connect::Outbound {
            max_body_bytes: 1024,
            ..ferry_connect::Outbound::insecure()
        },
        ..quick()
    };
    let e = env.rest(&s, small).get("big").await.unwrap_err();
    assert_eq!(e.class(), ErrorClass::Data, "{e}");
    assert!(e.to_string().contains("larger than 1024 bytes"), "{e}");
}
