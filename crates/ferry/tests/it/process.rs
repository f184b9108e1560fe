//! The real `ferry` binary, spawned: a command with its variables, a run that must succeed, a
//! server on a free port, a worker, and the simulated platform the network runs against.

use ferry_testkit::Answered;
use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use ferry_mock::{MockConfig, MockServer};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

/// `ferry ARGS` with `env` set, quiet logs, killed when dropped.
pub fn ferry<K: AsRef<OsStr>, V: AsRef<OsStr>>(args: &[&str], env: &[(K, V)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // The simulated platform answers on loopback over plain http.
    c.args(args)
        .env("FERRY_LOG", "warn")
        .env("FERRY_ALLOW_INSECURE_STORE_URLS", "true")
        .kill_on_drop(true);
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// No variables, for [`ferry`].
pub const NO_ENV: &[(&str, &str)] = &[];

/// Runs `cmd` to its end, which must be a success: its standard output.
pub async fn succeed(cmd: &mut Command) -> String {
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts `cmd` with its standard output piped: the process and the lines it prints.
pub fn spawn_reading(cmd: &mut Command) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    (child, lines)
}

/// Starts `cmd` with its standard output thrown away (a worker).
pub fn spawn_quiet(cmd: &mut Command) -> Child {
    cmd.stdout(Stdio::null()).spawn().unwrap()
}

/// A `ferry serve` on any free port: the process and its URL.
pub async fn serve(db: &str, key: &str) -> (Child, String) {
    spawn_serve(&["--database-url", db], &[("FERRY_ENCRYPTION_KEY", key)]).await
}

/// `ferry serve --listen 127.0.0.1:0` with more arguments and variables: the process and the
/// URL it prints first.
pub async fn spawn_serve<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    args: &[&str],
    env: &[(K, V)],
) -> (Child, String) {
    let mut cmd = ferry(&["serve", "--listen", "127.0.0.1:0"], env);
    let (child, mut lines) = spawn_reading(cmd.args(args));
    let line = lines
        .next_line()
        .await
        .unwrap()
        .expect("ferry serve printed its address");
    (child, line.rsplit(' ').next().unwrap().to_owned())
}

/// The simulated platform with `stores` seeded alike (shared SKUs), webhooks retried fast.
pub async fn simulated(stores: &[&str], products: usize, variants: usize) -> MockServer {
    let mock = MockServer::start(MockConfig::retrying_after(Duration::from_millis(200)))
        .await
        .unwrap();
    for s in stores {
        mock.platform().create_store(Some(s)).unwrap();
        mock.platform().seed_catalog(s, products, variants).unwrap();
    }
    mock
}

/// `ferry network add STORE` (the parent if it is named so, else a child) with the simulated
/// store's token and secret, then `ferry network connect STORE`; `args` and `env` go to both.
/// What `add` printed, which never holds the token.
pub async fn add_and_connect<K: AsRef<OsStr>, V: AsRef<OsStr>>(
    mock: &MockServer,
    store: &str,
    args: &[&str],
    env: &[(K, V)],
) -> String {
    let info = mock.platform().store_info(store).unwrap();
    let role = if store == "parent" { "parent" } else { "child" };
    let url = mock.graphql_url(store);
    let mut add = ferry(
        &[
            "network",
            "add",
            store,
            "--role",
            role,
            "--graphql-url",
            &url,
        ],
        env,
    );
    add.args(args)
        .env("FERRY_STORE_TOKEN", &info.access_token)
        .env("FERRY_WEBHOOK_SECRET", &info.webhook_secret);
    let printed = succeed(&mut add).await;
    assert!(
        !printed.contains(&info.access_token),
        "the token is never printed"
    );
    succeed(ferry(&["network", "connect", store], env).args(args)).await;
    printed
}

/// `GET url` with a bearer token: the answer as JSON.
pub async fn get_json(url: &str, token: &str) -> serde_json::Value {
    json_of(reqwest::Client::new().get(url).bearer_auth(token)).await
}

/// Sends `req`: the answer as JSON.
pub async fn json_of(req: reqwest::RequestBuilder) -> serde_json::Value {
    req.answer().await.json().await.unwrap()
}
