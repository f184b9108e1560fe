//! Whether the PostgreSQL tests can run: under `CI=true` they always are (a missing server then
//! fails them); elsewhere the server named by `FERRY_TEST_PG_URL` (default 127.0.0.1:5432) is
//! probed once, and without an answer the tests are compiled as ignored, so the test runner
//! reports them as skipped instead of counting them as passed. Setting or changing
//! `FERRY_TEST_PG_URL` probes again.

use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferry_pg_absent)");
    println!("cargo::rerun-if-env-changed=CI");
    println!("cargo::rerun-if-env-changed=FERRY_TEST_PG_URL");
    println!("cargo::rerun-if-changed=build.rs");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        return;
    }
    let url = std::env::var("FERRY_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    if !reachable(&url) {
        println!("cargo::rustc-cfg=ferry_pg_absent");
        println!("cargo::warning=no PostgreSQL at {url}: its tests are compiled as ignored");
    }
}

/// A TCP connection to the URL's host and port within a second (a socket path is taken as
/// present).
fn reachable(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host_port = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = host_port.rsplit_once('@').map_or(host_port, |(_, h)| h);
    if host_port.is_empty() {
        return true;
    }
    let with_port = if host_port
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    let Ok(addrs) = with_port.to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(1)).is_ok())
}
