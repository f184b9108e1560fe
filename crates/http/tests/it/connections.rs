//! Connection hygiene: a client that trickles its request head is cut off after the header-read
//! timeout, kept-alive connections do not stay open idle, and at most `max_connections` are
//! served at once (the next ones wait their turn instead of costing anything).

use std::time::Duration;

use ferry_core::Cipher;
use ferry_http::stack::AppConfig;
use ferry_testkit::TestDb;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

ferry_testkit::conformance!(trickling_and_idle_connections_are_cut_off_and_capped);

/// Reads until the server closes the connection (or 10 s pass, which fails the test); what it
/// sent.
async fn until_closed(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&got).into_owned()
}

async fn trickling_and_idle_connections_are_cut_off_and_capped(db: TestDb) {
    let queue = db.real_queue().await;
    let mut cfg = AppConfig::new(Cipher::from_base64(&Cipher::generate_key()).unwrap());
    cfg.client.outbound = ferry_connect::Outbound::insecure();
    cfg.hardening.header_read_timeout = Duration::from_millis(300);
    cfg.hardening.max_connections = 4;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = ferry_http::stack::serve_on(listener, queue, cfg)
        .await
        .unwrap();
    let addr = serving.server.addr;

    // Four clients take every slot and never finish their headers.
    let mut slow = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /webhooks/shopify/shop HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        slow.push(s);
    }
    // A fifth asks for /healthz: it is connected (the kernel's backlog) but served only once a
    // slot frees, which the timeout does.
    let mut probe = TcpStream::connect(addr).await.unwrap();
    probe
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    for s in &mut slow {
        let answer = until_closed(s).await;
        assert!(
            !answer.contains("202"),
            "nothing was accepted from a half-sent request: {answer:?}"
        );
    }
    let answer = until_closed(&mut probe).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");

    // A kept-alive connection that goes quiet after its answer is closed too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = until_closed(&mut idle).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}
