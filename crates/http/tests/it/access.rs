//! Scoped tokens: each role reaches what it is for and is refused the rest with the role it
//! would need; tokens are made, listed and revoked; every change is recorded with its token.

use ferry_testkit::{Answered, TestDb};
use reqwest::Method;
use serde_json::{Value, json};

use crate::Harness;

ferry_testkit::conformance!(
    each_role_reaches_what_it_is_for_and_nothing_else,
    tokens_are_made_listed_revoked_and_name_every_change,
);

/// Makes a token named and roled `role` through the API: the token.
async fn token(h: &Harness, role: &str) -> String {
    let r = h
        .post_json("/api/tokens", &json!({"name": role, "role": role}))
        .await;
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["role"], role);
    v["token"].as_str().unwrap().to_owned()
}

/// A call with `token`: its status and, for a refusal, the role it named.
async fn call(h: &Harness, token: &str, method: Method, path: &str) -> (u16, String) {
    let r = h
        .http
        .request(method, h.url(path))
        .bearer_auth(token)
        .answer()
        .await;
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap_or_default();
    let needed = v["error"]["needed_role"].as_str().unwrap_or_default();
    (status, needed.to_owned())
}

async fn each_role_reaches_what_it_is_for_and_nothing_else(db: TestDb) {
    let h = Harness::start(db).await;
    let (read, operator, orders) = (
        token(&h, "read").await,
        token(&h, "operator").await,
        token(&h, "orders").await,
    );
    let post = Method::POST;
    let cases: [(&str, Method, &str, u16, &str); 9] = [
        (&read, Method::GET, "/api/jobs", 200, ""),
        (&read, Method::GET, "/api/tokens", 200, ""),
        (
            &read,
            post.clone(),
            "/api/queues/default/pause",
            403,
            "operator",
        ),
        (
            &operator,
            post.clone(),
            "/api/queues/default/pause",
            200,
            "",
        ),
        (
            &operator,
            post.clone(),
            "/api/stores/x/rotate",
            403,
            "admin",
        ),
        (&operator, post.clone(), "/api/tokens", 403, "admin"),
        (&orders, Method::GET, "/api/jobs", 403, "read"),
        (
            &orders,
            post.clone(),
            "/api/queues/default/resume",
            403,
            "operator",
        ),
        (
            "ferry_not-a-token-at-all",
            Method::GET,
            "/api/jobs",
            401,
            "",
        ),
    ];
    for (token, method, path, status, needed) in cases {
        let got = call(&h, token, method.clone(), path).await;
        assert_eq!(got, (status, needed.to_owned()), "{method} {path}");
    }
    // The orders role reads the orders routes (scoped to its own orders).
    let (status, _) = call(&h, &orders, Method::GET, "/api/orders").await;
    assert_eq!(status, 200);
    let (status, _) = call(&h, &read, post, "/api/orders").await;
    assert_eq!(status, 403, "read only reads orders");
}

async fn tokens_are_made_listed_revoked_and_name_every_change(db: TestDb) {
    let h = Harness::start(db).await;
    let operator = token(&h, "operator").await;
    let listed = h.call(Method::GET, "/api/tokens").await.1;
    assert_eq!(listed["results"][0]["name"], "operator");
    assert!(!listed.to_string().contains(&operator), "never the token");

    let again = h
        .post_json("/api/tokens", &json!({"name": "operator", "role": "read"}))
        .await;
    assert_eq!(again.status(), 409, "the name is taken");
    for bad in [
        json!({"name": "x", "role": "root"}),
        json!({"name": "has space", "role": "read"}),
        json!({"name": "x", "role": "read", "extra": 1}),
    ] {
        let r = h.post_json("/api/tokens", &bad).await;
        assert_eq!(r.status(), 400, "{bad}");
    }

    let paused = call(&h, &operator, Method::POST, "/api/queues/sync/pause").await;
    assert_eq!(paused.0, 200);
    let actions = h.call(Method::GET, "/api/actions").await.1;
    let by: Vec<(String, String)> = actions["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let who = a["actor"].as_str().unwrap().to_owned();
            (who, a["path"].as_str().unwrap().to_owned())
        })
        .collect();
    assert!(
        by.contains(&("operator".into(), "/api/queues/sync/pause".into())),
        "{by:?}"
    );
    assert!(
        by.contains(&("admin_tokens[0]".into(), "/api/tokens".into())),
        "{by:?}"
    );

    assert_eq!(h.call(Method::DELETE, "/api/tokens/operator").await.0, 204);
    let revoked = call(&h, &operator, Method::GET, "/api/jobs").await;
    assert_eq!(revoked.0, 401, "a revoked token is refused");
    assert_eq!(h.call(Method::DELETE, "/api/tokens/operator").await.0, 404);
}
