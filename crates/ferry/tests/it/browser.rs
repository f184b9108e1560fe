//! A real browser for the dashboard's tests: Chromium, headless, driven over the W3C WebDriver
//! protocol through `chromedriver` (Debian's `chromium` and `chromium-driver`; `.ci/run`
//! installs them). The protocol is JSON over HTTP, so the test's HTTP client speaks it: no
//! driver crate, nothing downloaded.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub struct Browser {
    http: reqwest::Client,
    session: String,
    driver_url: String,
    _driver: Child,
}

/// Where chromedriver and Chromium are, or None (the caller skips, or fails under CI).
pub fn installed() -> Option<(String, String)> {
    let driver = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())?;
    Some((driver.to_owned(), chromium.to_owned()))
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium session in it.
    pub async fn start(driver: &str, chromium: &str) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let driver_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let ready = format!("{driver_url}/status");
        ferry_testkit::eventually("chromedriver answers", || {
            let http = http.clone();
            let ready = ready.clone();
            async move { http.get(&ready).send().await.is_ok() }
        })
        .await;
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Questions are answered by the test (click_and_confirm), never by default.
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1280,900",
                         "--force-prefers-reduced-motion"],
            },
        }}});
        let v: Value = http
            .post(format!("{driver_url}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {v}"))
            .to_owned();
        Browser {
            http,
            session,
            driver_url,
            _driver: child,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.driver_url, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        if let Some(e) = v["value"]["error"].as_str() {
            panic!("WebDriver {path}: {e}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Every element matching a CSS selector (their references).
    pub async fn all(&self, css: &str) -> Vec<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e[ELEMENT].as_str().map(str::to_owned))
            .collect()
    }

    /// The one element matching a CSS selector.
    pub async fn find(&self, css: &str) -> String {
        let found = self.all(css).await;
        if found.is_empty() {
            panic!(
                "nothing on {} matches {css}:\n{}",
                self.url().await,
                self.source().await
            );
        }
        found[0].clone()
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/click"),
            Some(json!({})),
        )
        .await;
    }

    /// Clicks a button that asks a question first, and answers yes.
    pub async fn click_and_confirm(&self, css: &str) {
        self.click(css).await;
        // Fails ("no such alert") when the button asked no question.
        self.call(reqwest::Method::POST, "/alert/accept", Some(json!({})))
            .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{e}/value"),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/source", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Runs a script in the page: what it returned.
    pub async fn run(&self, script: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// The current address.
    pub async fn url(&self) -> String {
        let v = self.call(reqwest::Method::GET, "/url", None).await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Waits until the address ends with `suffix` (a click's navigation has landed).
    pub async fn until_at(&self, suffix: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !self.url().await.ends_with(suffix) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never reached …{suffix}: at {}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &Path) {
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Waits, without reloading, until the page on screen holds `needle`: what the page's
    /// live updates (server-sent events, or polling) bring in by themselves.
    pub async fn until_live(&self, needle: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while !self.source().await.contains(needle) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: the page never showed {needle:?} by itself:\n{}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Reloads `url` until the page holds `needle` (the page refreshes itself too; a reload
    /// makes the wait independent of its timer).
    pub async fn until_page_has(&self, url: &str, needle: &str, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        loop {
            self.goto(url).await;
            if self.source().await.contains(needle) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: the page never showed {needle:?}:\n{}",
                self.source().await
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
