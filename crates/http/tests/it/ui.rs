//! The dashboard over real HTTP: signing in and out, pages behind the session, a dead job
//! replayed, a queue paused, a read token that sees no button, forged posts refused, and a
//! revoked token's session ended.

use std::time::Duration;

use ferry_queue::{JobState, NewJob, Outcome};
use ferry_testkit::{Answered, TestDb};
use serde_json::{Value, json};

use crate::{ADMIN_TOKEN, Harness, b64, hmac_sha256};

ferry_testkit::conformance!(
    signing_in_opens_the_pages_and_signing_out_closes_them,
    a_dead_job_is_replayed_and_a_queue_paused_from_the_dashboard,
    a_read_token_sees_everything_and_can_act_on_nothing,
    forged_and_unsigned_posts_change_nothing,
    dead_letters_are_grouped_and_replayed_by_group_or_time_window,
    bulk_actions_change_a_selection_or_every_job_the_filter_matches,
    deliveries_attempts_and_charts_show_what_happened,
    a_live_stream_pushes_the_page_when_it_changes,
    the_admin_api_replays_dead_jobs_in_bulk_as_the_dashboard_does,
);

/// A browser that follows no redirects, so each answer can be looked at.
fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs in with `token`: the session cookie (`name=value`).
async fn sign_in(h: &Harness, b: &reqwest::Client, token: &str) -> String {
    let r = b
        .post(h.url("/ui/signin"))
        .form(&[("token", token)])
        .answer()
        .await;
    assert_eq!(r.status(), 303, "signing in with a good token redirects");
    assert_eq!(r.headers()["location"], "/ui");
    let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/ui"] {
        assert!(set.contains(attr), "{set} lacks {attr}");
    }
    set.split(';').next().unwrap().to_owned()
}

/// `GET path` with the cookie: (status, body).
async fn get(h: &Harness, b: &reqwest::Client, cookie: &str, path: &str) -> (u16, String) {
    let r = b.get(h.url(path)).header("cookie", cookie).answer().await;
    let status = r.status().as_u16();
    if status == 200 {
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    }
    (status, r.text().await.unwrap())
}

/// `POST path` with the cookie and a form: the answer.
async fn post(
    h: &Harness,
    b: &reqwest::Client,
    cookie: &str,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    b.post(h.url(path))
        .header("cookie", cookie)
        .form(form)
        .answer()
        .await
}

/// The CSRF token in a page's forms.
fn csrf(page: &str) -> String {
    let at = page
        .find(r#"name="csrf" value=""#)
        .expect("the page has a form with a CSRF token");
    let rest = &page[at + r#"name="csrf" value=""#.len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

/// A job in `queue` that failed for good.
async fn dead_job(h: &Harness, queue: &str) -> uuid::Uuid {
    dead_job_of(
        h,
        queue,
        "child-1",
        "the store refused the write: <b>402 Payment Required</b>",
    )
    .await
}

/// A job in `queue` and `group` that died of `error`.
async fn dead_job_of(h: &Harness, queue: &str, group: &str, error: &str) -> uuid::Uuid {
    let e = h
        .queue
        .enqueue(
            NewJob::new("sync.adjust", &json!({"store": group}))
                .unwrap()
                .queue(queue)
                .group(group)
                .max_attempts(1),
        )
        .await
        .unwrap();
    let claimed = h
        .queue
        .claim(queue, "tester", 1, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let fatal = Outcome::Fatal {
        error: error.into(),
    };
    h.queue
        .finish(
            "tester",
            claimed[0].id,
            claimed[0].attempt,
            &fatal,
            &ferry_queue::Backoff::default(),
        )
        .await
        .unwrap();
    e.id
}

/// A token with `role`, made through the admin API.
async fn token(h: &Harness, name: &str, role: &str) -> String {
    let r = h
        .post_json("/api/tokens", &json!({"name": name, "role": role}))
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["token"].as_str().unwrap().to_owned()
}

async fn signing_in_opens_the_pages_and_signing_out_closes_them(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    // Signed out: the pages send the browser to sign in; an unknown cookie is no session.
    for cookie in [
        "",
        "ferry_session=not-a-session",
        "ferry_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let r = b.get(h.url("/ui")).header("cookie", cookie).answer().await;
        assert_eq!(r.status(), 303, "{cookie:?}");
        assert_eq!(r.headers()["location"], "/ui/signin");
    }
    let (status, page) = get(&h, &b, "", "/ui/signin").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"name="token""#));
    // A wrong token: refused, no cookie, and the page does not echo what was typed.
    let r = b
        .post(h.url("/ui/signin"))
        .form(&[("token", "wrong-token-<script>")])
        .answer()
        .await;
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    assert!(!r.text().await.unwrap().contains("wrong-token"));
    // An orders token has no dashboard.
    let orders = token(&h, "shop", "orders").await;
    let r = b
        .post(h.url("/ui/signin"))
        .form(&[("token", orders.as_str())])
        .answer()
        .await;
    assert_eq!(r.status(), 401);

    let cookie = sign_in(&h, &b, ADMIN_TOKEN).await;
    let (status, overview) = get(&h, &b, &cookie, "/ui").await;
    assert_eq!(status, 200);
    assert!(overview.contains("<h1>Overview</h1>"), "{overview}");
    // Behind https (a proxy says so) the cookie is Secure.
    let r = b
        .post(h.url("/ui/signin"))
        .header("x-forwarded-proto", "https")
        .form(&[("token", ADMIN_TOKEN)])
        .answer()
        .await;
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("; Secure")
    );

    // Signing out needs the form's CSRF token; then the cookie opens nothing.
    let r = post(&h, &b, &cookie, "/ui/signout", &[]).await;
    assert_eq!(r.status(), 403);
    let r = post(
        &h,
        &b,
        &cookie,
        "/ui/signout",
        &[("csrf", &csrf(&overview))],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _) = get(&h, &b, &cookie, "/ui").await;
    assert_eq!(status, 303);
}

async fn a_dead_job_is_replayed_and_a_queue_paused_from_the_dashboard(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    let dead = dead_job(&h, "sync").await;
    let cookie = sign_in(&h, &b, ADMIN_TOKEN).await;

    let (_, overview) = get(&h, &b, &cookie, "/ui").await;
    assert!(overview.contains(r#"data-queue="sync""#), "{overview}");
    assert!(overview.contains("Dead jobs: 1"), "{overview}");
    let (status, letters) = get(&h, &b, &cookie, "/ui/jobs?state=dead").await;
    assert_eq!(status, 200);
    assert!(letters.contains(&format!("/ui/jobs/{dead}")));
    // The platform's words are shown as text, never as markup.
    assert!(letters.contains("&lt;b&gt;402 Payment Required&lt;/b&gt;"));
    assert!(!letters.contains("<b>402"));

    let (_, detail) = get(&h, &b, &cookie, &format!("/ui/jobs/{dead}")).await;
    assert!(
        detail.contains(&format!("/ui/jobs/{dead}/replay")),
        "{detail}"
    );
    let r = post(
        &h,
        &b,
        &cookie,
        &format!("/ui/jobs/{dead}/replay"),
        &[("csrf", &csrf(&detail))],
    )
    .await;
    assert_eq!(r.status(), 303);
    let new_page = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(new_page, format!("/ui/jobs/{dead}"));
    let replayed = h.queue.get(dead).await.unwrap().unwrap();
    assert_eq!(replayed.state, JobState::Queued);
    assert_eq!(replayed.kind, "sync.adjust");

    let r = post(
        &h,
        &b,
        &cookie,
        "/ui/queues/sync/pause",
        &[("csrf", &csrf(&detail))],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(h.queue.stats("sync").await.unwrap().paused);
    let (_, overview) = get(&h, &b, &cookie, "/ui").await;
    assert!(overview.contains("/ui/queues/sync/resume"), "{overview}");

    // Both actions are on the record with who made them.
    let (_, actions) = h.call(reqwest::Method::GET, "/api/actions").await;
    let paths: Vec<(String, String)> = actions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["path"].as_str().unwrap_or_default().to_owned(),
                a["actor"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(
        paths.contains(&(
            format!("/ui/jobs/{dead}/replay"),
            "admin_tokens[0]".to_owned()
        )),
        "{paths:?}"
    );
    assert!(
        paths.iter().any(|(p, _)| p == "/ui/queues/sync/pause"),
        "{paths:?}"
    );
}

async fn a_read_token_sees_everything_and_can_act_on_nothing(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    let dead = dead_job(&h, "sync").await;
    let read = token(&h, "viewer", "read").await;
    let cookie = sign_in(&h, &b, &read).await;
    let (status, overview) = get(&h, &b, &cookie, "/ui").await;
    assert_eq!(status, 200);
    assert!(overview.contains(r#"data-queue="sync""#));
    assert!(!overview.contains("/pause"), "no pause button for read");
    let (status, detail) = get(&h, &b, &cookie, &format!("/ui/jobs/{dead}")).await;
    assert_eq!(status, 200);
    assert!(detail.contains("sync.adjust"));
    assert!(!detail.contains("/replay"), "no replay button for read");
    // A post it builds itself, with its own CSRF token, is refused by role.
    let r = post(
        &h,
        &b,
        &cookie,
        &format!("/ui/jobs/{dead}/replay"),
        &[("csrf", &csrf(&overview))],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("operator"));
    assert_eq!(
        h.queue.stats("sync").await.unwrap().ready,
        0,
        "nothing replayed"
    );

    // Revoking the token ends its session.
    let (status, _) = h.call(reqwest::Method::DELETE, "/api/tokens/viewer").await;
    assert_eq!(status, 204);
    let (status, _) = get(&h, &b, &cookie, "/ui").await;
    assert_eq!(status, 303);
}

async fn forged_and_unsigned_posts_change_nothing(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    let cookie = sign_in(&h, &b, ADMIN_TOKEN).await;
    let (_, overview) = get(&h, &b, &cookie, "/ui").await;
    let good = csrf(&overview);
    // Another session's CSRF token, a wrong one, none: refused.
    let other = sign_in(&h, &b, ADMIN_TOKEN).await;
    let (_, other_page) = get(&h, &b, &other, "/ui").await;
    let theirs = csrf(&other_page);
    assert_ne!(theirs, good);
    for form in [
        vec![("csrf", theirs.as_str())],
        vec![("csrf", "forged")],
        vec![],
    ] {
        let r = post(&h, &b, &cookie, "/ui/queues/sync/pause", &form).await;
        assert_eq!(r.status(), 403, "{form:?}");
    }
    // No session at all: refused before anything is read.
    let r = post(&h, &b, "", "/ui/queues/sync/pause", &[("csrf", &good)]).await;
    assert_eq!(r.status(), 401);
    assert!(!h.queue.stats("sync").await.unwrap().paused);
    // A form larger than any real one is refused unread.
    let big = "x".repeat(64 * 1024);
    let r = b
        .post(h.url("/ui/signin"))
        .form(&[("token", big.as_str())])
        .answer()
        .await;
    assert_eq!(r.status(), 413);
}

async fn dead_letters_are_grouped_and_replayed_by_group_or_time_window(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    let a1 = dead_job_of(&h, "sync", "child-1", "access denied").await;
    let a2 = dead_job_of(&h, "sync", "child-1", "access denied").await;
    let other = dead_job_of(&h, "sync", "child-2", "not found").await;
    let cookie = sign_in(&h, &b, ADMIN_TOKEN).await;
    let (status, letters) = get(&h, &b, &cookie, "/ui/jobs?state=dead").await;
    assert_eq!(status, 200);
    assert!(
        letters.contains("Replay 2") && letters.contains("Replay 1"),
        "{letters}"
    );
    let form_token = csrf(&letters);
    let state = |id| {
        let q = h.queue.clone();
        async move { q.get(id).await.unwrap().unwrap().state }
    };

    // One group: both of its jobs, and nothing else.
    let group = [
        ("csrf", form_token.as_str()),
        ("queue", "sync"),
        ("group", "child-1"),
        ("error", "access denied"),
    ];
    let r = post(&h, &b, &cookie, "/ui/dead/replay", &group).await;
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("2 dead jobs are back in line")
    );
    assert_eq!(state(a1).await, JobState::Queued);
    assert_eq!(state(a2).await, JobState::Queued);
    assert_eq!(state(other).await, JobState::Dead);

    // A window that is not one changes nothing; one around now replays the rest.
    let bad = [
        ("csrf", form_token.as_str()),
        ("from", "2026-12-04T10:00"),
        ("to", "yesterday"),
    ];
    let r = post(&h, &b, &cookie, "/ui/dead/replay", &bad).await;
    assert_eq!(r.status(), 400);
    assert_eq!(state(other).await, JobState::Dead);
    let window = [
        ("csrf", form_token.as_str()),
        ("from", "2000-01-01T00:00"),
        ("to", "2999-12-31T23:59"),
    ];
    let r = post(&h, &b, &cookie, "/ui/dead/replay", &window).await;
    assert_eq!(r.status(), 200);
    assert_eq!(state(other).await, JobState::Queued);

    // A read token sees the groups and no button, and its own post is refused.
    // (Its own queue: the claim that kills it must not pick a replayed job.)
    let last = dead_job_of(&h, "later", "child-3", "gone").await;
    let read = token(&h, "viewer", "read").await;
    let viewer = sign_in(&h, &b, &read).await;
    let (_, seen) = get(&h, &b, &viewer, "/ui/jobs?state=dead").await;
    assert!(
        seen.contains("child-3") && !seen.contains("Replay 1"),
        "{seen}"
    );
    let r = post(
        &h,
        &b,
        &viewer,
        "/ui/dead/replay",
        &[("csrf", &csrf(&seen))],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(state(last).await, JobState::Dead);
}

async fn bulk_actions_change_a_selection_or_every_job_the_filter_matches(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    let mut ours = Vec::new();
    for _ in 0..3 {
        ours.push(dead_job_of(&h, "sync", "child-1", "access denied").await);
    }
    let theirs = dead_job_of(&h, "sync", "child-2", "not found").await;
    let state = |id| {
        let q = h.queue.clone();
        async move { q.get(id).await.unwrap().unwrap().state }
    };
    let cookie = sign_in(&h, &b, ADMIN_TOKEN).await;
    let (_, list) = get(&h, &b, &cookie, "/ui/jobs?state=dead&group=child-1").await;
    assert!(list.contains(r#"form="bulk""#), "{list}");
    let t = csrf(&list);

    // The ticked box only.
    let picked = ours[0].to_string();
    let r = post(
        &h,
        &b,
        &cookie,
        "/ui/jobs/bulk",
        &[("csrf", &t), ("act", "replay"), ("id", &picked)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("1 jobs replayed"));
    assert_eq!(state(ours[0]).await, JobState::Queued);
    assert_eq!(state(ours[1]).await, JobState::Dead);

    // Every job the filter matches, and none it does not.
    let r = post(
        &h,
        &b,
        &cookie,
        "/ui/jobs/bulk",
        &[
            ("csrf", &t),
            ("act", "replay-all"),
            ("state", "dead"),
            ("group", "child-1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("2 jobs replayed"));
    for id in &ours {
        assert_eq!(state(*id).await, JobState::Queued);
    }
    assert_eq!(state(theirs).await, JobState::Dead);
    let r = post(
        &h,
        &b,
        &cookie,
        "/ui/jobs/bulk",
        &[("csrf", &t), ("act", "cancel-all"), ("group", "child-1")],
    )
    .await;
    assert!(r.text().await.unwrap().contains("3 jobs cancelled"));
    for id in &ours {
        assert_eq!(state(*id).await, JobState::Cancelled);
    }
    assert_eq!(state(theirs).await, JobState::Dead);
    // An unknown action or state changes nothing.
    for form in [
        vec![("csrf", t.as_str()), ("act", "delete")],
        vec![
            ("csrf", t.as_str()),
            ("act", "replay-all"),
            ("state", "gone"),
        ],
    ] {
        let r = post(&h, &b, &cookie, "/ui/jobs/bulk", &form).await;
        assert_eq!(r.status(), 400, "{form:?}");
    }
    assert_eq!(state(theirs).await, JobState::Dead);

    // A read token sees no boxes and its post is refused.
    let read = token(&h, "viewer", "read").await;
    let viewer = sign_in(&h, &b, &read).await;
    let (_, seen) = get(&h, &b, &viewer, "/ui/jobs?state=dead").await;
    assert!(!seen.contains(r#"form="bulk""#));
    let r = post(
        &h,
        &b,
        &viewer,
        "/ui/jobs/bulk",
        &[("csrf", &csrf(&seen)), ("act", "replay-all")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(state(theirs).await, JobState::Dead);
}

async fn deliveries_attempts_and_charts_show_what_happened(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    h.stores
        .put(
            "shop",
            ferry_sync::webhooks::WebhookScheme::Shopify,
            &["shpss_secret_1".into()],
        )
        .await
        .unwrap();
    let body = r#"{"id":7}"#;
    let r = h
        .http
        .post(h.url("/webhooks/shopify/shop"))
        .header("content-type", "application/json")
        .header(
            "x-shopify-hmac-sha256",
            b64(&hmac_sha256(b"shpss_secret_1", &[body.as_bytes()])),
        )
        .header("x-shopify-webhook-id", "delivery-7")
        .header("x-shopify-topic", "products/update")
        .body(body)
        .answer()
        .await;
    assert_eq!(r.status(), 202);
    let cookie = sign_in(&h, &b, ADMIN_TOKEN).await;
    let (status, page) = get(&h, &b, &cookie, "/ui/deliveries").await;
    assert_eq!(status, 200);
    assert!(
        page.contains("delivery-7") && page.contains("products/update"),
        "{page}"
    );
    assert!(page.contains(">queued<"), "its job waits: {page}");
    let (status, _) = get(&h, &b, &cookie, "/ui/deliveries?before=nonsense").await;
    assert_eq!(status, 400);

    // A job's page lists each failed attempt with its error.
    let dead = dead_job_of(&h, "sync", "child-1", "the store said no").await;
    let (_, detail) = get(&h, &b, &cookie, &format!("/ui/jobs/{dead}")).await;
    assert!(detail.contains("Failed attempts"), "{detail}");
    assert!(
        detail.contains(r#"<tr><td>1</td>"#) && detail.contains("the store said no"),
        "{detail}"
    );

    // A queue's chart draws what the workers sampled.
    let w = ferry_queue::Worker::builder(h.queue.clone())
        .queues(&["charted"])
        .handle("tick", |_: Value, _ctx| async { Ok(()) })
        .build();
    for _ in 0..3 {
        h.queue
            .enqueue(
                NewJob::new("tick", &json!({}))
                    .unwrap()
                    .queue("charted")
                    .group("shop"),
            )
            .await
            .unwrap();
    }
    assert_eq!(w.drain().await.unwrap(), 3);
    w.sample().await.unwrap();
    let (status, chart) = get(&h, &b, &cookie, "/ui/queues/charted?range=6h").await;
    assert_eq!(status, 200);
    assert!(chart.contains(r#"<svg class="chart""#), "{chart}");
    assert!(chart.contains("3 completed, 0 failed"), "{chart}");
    let (status, _) = get(&h, &b, &cookie, "/ui/queues/never-used").await;
    assert_eq!(status, 404);
    for path in ["/ui/runs", "/ui/orders"] {
        let (status, page) = get(&h, &b, &cookie, path).await;
        assert_eq!(status, 200, "{path}: {page}");
    }
}

async fn a_live_stream_pushes_the_page_when_it_changes(db: TestDb) {
    let h = Harness::start(db).await;
    let b = browser();
    dead_job(&h, "sync").await;
    let cookie = sign_in(&h, &b, ADMIN_TOKEN).await;
    // Only a dashboard page, and only signed in.
    for bad in ["/api/jobs", "/ui/live?path=/ui", "https://elsewhere/ui"] {
        let r = b
            .get(h.url(&format!("/ui/live?path={}", urlencode(bad))))
            .header("cookie", &cookie)
            .answer()
            .await;
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = b.get(h.url("/ui/live?path=/ui")).answer().await;
    assert_eq!(r.status(), 303);

    let mut r = b
        .get(h.url("/ui/live?path=/ui"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    // Events are read as they come; each ends with a blank line.
    let mut buf = String::new();
    let mut next_page = async || loop {
        if let Some(end) = buf.find("\n\n") {
            let event: String = buf.drain(..end + 2).collect();
            if event.contains("event: page") {
                return event;
            }
            continue;
        }
        let chunk = tokio::time::timeout(Duration::from_secs(30), r.chunk())
            .await
            .expect("an event within 30 s")
            .unwrap()
            .expect("the stream stays open");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    };
    let first = next_page().await;
    assert!(first.contains("/ui/queues/sync/pause"), "{first}");
    h.queue.pause("sync").await.unwrap();
    let changed = next_page().await;
    assert!(changed.contains("/ui/queues/sync/resume"), "{changed}");
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn the_admin_api_replays_dead_jobs_in_bulk_as_the_dashboard_does(db: TestDb) {
    let h = Harness::start(db).await;
    let a1 = dead_job_of(&h, "sync", "child-1", "access denied").await;
    let a2 = dead_job_of(&h, "sync", "child-1", "access denied").await;
    let other = dead_job_of(&h, "sync", "child-2", "not found").await;
    let state = |id| {
        let q = h.queue.clone();
        async move { q.get(id).await.unwrap().unwrap().state }
    };
    // Bad input: a clear error, nothing replayed.
    for bad in [
        json!({"limit": 0}),
        json!({"limit": 1001}),
        json!({"store": "child-1"}),
    ] {
        let r = h.post_json("/api/dead/replay", &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let e: Value = r.json().await.unwrap();
        assert_eq!(e["error"]["code"], "invalid_request", "{bad}");
    }
    assert_eq!(state(a1).await, JobState::Dead);
    // An empty window matches nothing.
    let r = h
        .post_json("/api/dead/replay", &json!({"from_ms": 10, "to_ms": 1}))
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["replayed"], 0);
    assert_eq!(state(a1).await, JobState::Dead);
    // A limit: one of the group's two.
    let r = h
        .post_json(
            "/api/dead/replay",
            &json!({"group": "child-1", "limit": 1.0}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["replayed"], 1);
    let r = h
        .post_json(
            "/api/dead/replay",
            &json!({"group": "child-1", "error": "access denied"}),
        )
        .await;
    assert_eq!(r.json::<Value>().await.unwrap()["replayed"], 1);
    assert_eq!(state(a1).await, JobState::Queued);
    assert_eq!(state(a2).await, JobState::Queued);
    assert_eq!(state(other).await, JobState::Dead);
    // A read token may not.
    let read = token(&h, "viewer", "read").await;
    let r = reqwest::Client::new()
        .post(h.url("/api/dead/replay"))
        .bearer_auth(&read)
        .json(&json!({}))
        .answer()
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(state(other).await, JobState::Dead);
}
