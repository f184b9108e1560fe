//! The server over real HTTP on loopback, on a real database (both engines).

#![allow(clippy::unwrap_used)] // a test that unwraps fails loudly, which is what it should do

mod access;
mod admin;
mod connections;
mod ingress;
mod ui;

use base64::Engine;
use ferry_core::Cipher;
use ferry_db::Db;
use ferry_http::app::Running;
use ferry_http::stack::AppConfig;
use ferry_sync::webhooks::WebhookStores;
use ferry_testkit::Answered;
use ferry_testkit::TestDb;
use hmac::{KeyInit, Mac};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

pub struct Harness {
    pub server: Running,
    pub queue: ferry_queue::Queue,
    pub stores: WebhookStores,
    pub db: Db,
    pub http: reqwest::Client,
    _test_db: TestDb,
}

impl Harness {
    pub async fn start(test_db: TestDb) -> Harness {
        let queue = test_db.real_queue().await;
        let cipher = Cipher::from_base64(&Cipher::generate_key()).unwrap();
        let mut cfg = AppConfig::new(cipher);
        cfg.client.outbound = ferry_connect::Outbound::insecure();
        cfg.admin_tokens = vec![ADMIN_TOKEN.to_owned()];
        cfg.hardening = ferry_http::app::Hardening {
            cors_origins: vec!["https://admin.example".to_owned()],
            ..Default::default()
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let serving = ferry_http::stack::serve_on(listener, queue.clone(), cfg)
            .await
            .unwrap();
        Harness {
            stores: serving.state.stores.clone(),
            db: queue.db(),
            server: serving.server,
            queue,
            http: reqwest::Client::new(),
            _test_db: test_db,
        }
    }

    /// An admin API request with the token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    /// `POST path` with a JSON body and the admin token: the answer.
    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.admin(reqwest::Method::POST, path)
            .json(body)
            .answer()
            .await
    }

    /// An admin API call with the token: its status and JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str) -> (u16, serde_json::Value) {
        let r = self.admin(method, path).answer().await;
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url())
    }

    pub async fn deliveries(&self) -> i64 {
        let sql = "SELECT COUNT(*) FROM ferry_deliveries";
        match &self.db {
            Db::Postgres(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
            Db::Sqlite(p) => sqlx::query_scalar(sql).fetch_one(p).await.unwrap(),
        }
    }

    /// Jobs waiting in the webhooks queue.
    pub async fn webhook_jobs(&self) -> i64 {
        self.queue.stats("webhooks").await.unwrap().ready
    }
}

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
