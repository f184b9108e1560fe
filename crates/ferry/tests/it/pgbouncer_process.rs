//! The deployed topology without containers: PostgreSQL behind PgBouncer in transaction mode
//! (started here), two `ferry serve` and two `ferry worker` processes whose connections go
//! through it (migrations and LISTEN on a direct connection; the second worker does not listen
//! and polls), the simulated platform with a parent and three children, and a full sync that
//! converges: connect, a burst of edits and sales, every child equal to the parent.
//!
//! PgBouncer comes from `FERRY_TEST_PGBOUNCER`, else `pgbouncer` on the PATH or in /usr/sbin,
//! and must be 1.21 or later (protocol-level prepared statements in transaction mode).
//! Outside CI a missing one skips the test with a message; under `CI=true` it fails
//! (`.ci/run` builds one from Debian's source package when the machine has none).

use ferry_testkit::TestDb;

use crate::pgbouncer::Bouncer;
use crate::process::{add_and_connect, ferry, simulated, spawn_quiet, spawn_serve};
use crate::sync_process::{burst, by_sku, converged, quiet};

/// PgBouncer 1.21 or later; None (and a message) when there is none and this is not CI.
fn pgbouncer_binary() -> Option<std::path::PathBuf> {
    match crate::pgbouncer::find(None) {
        Ok(found) => Some(found),
        Err(problem) => {
            assert!(
                !std::env::var("CI").is_ok_and(|v| v == "true"),
                "CI=true but {problem}"
            );
            eprintln!("SKIPPED: the PgBouncer topology test: {problem}");
            None
        }
    }
}

ferry_testkit::postgres_only!(a_network_syncs_through_pgbouncer);

async fn a_network_syncs_through_pgbouncer(db: TestDb) {
    let Some(binary) = pgbouncer_binary() else {
        return;
    };
    let mut bouncer = Bouncer::start(&binary, &db.url).await.unwrap();
    let pooled = bouncer.url_for(&db.url).unwrap();
    let key = ferry_core::Cipher::generate_key();
    let env = [
        ("FERRY_ENCRYPTION_KEY", key.as_str()),
        ("FERRY_DIRECT_DATABASE_URL", db.url.as_str()),
    ];
    let stores = ["parent", "child-1", "child-2", "child-3"];
    let mock = simulated(&stores, 10, 2).await;

    // Two servers (the first migrates the empty database, directly), both through PgBouncer.
    let (_serve_a, public) = spawn_serve(&["--database-url", &pooled], &env).await;
    let (_serve_b, public_b) = spawn_serve(&["--database-url", &pooled], &env).await;
    // No migration ran through the pooler: its session lock would stay on a pooled server
    // connection and every later process would wait for it forever.
    assert_eq!(advisory_locks(&db.url).await, 0, "advisory locks held");
    for s in stores {
        // The children's webhooks reach the second server, the parent's the first.
        let to = if s == "parent" { &public } else { &public_b };
        let args = ["--database-url", pooled.as_str(), "--public-url", to];
        add_and_connect(&mock, s, &args, &env).await;
    }
    let worker = |listen: bool| {
        let mut args = vec![
            "worker",
            "--database-url",
            &pooled,
            "--public-url",
            &public,
            "--reconcile-cron",
            "off",
            "--concurrency",
            "8",
        ];
        if !listen {
            args.push("--no-listen");
        }
        spawn_quiet(&mut ferry(&args, &env))
    };
    let _listening = worker(true);
    let _polling = worker(false);
    let queue = db.real_queue().await;
    quiet(&queue, &mock, &stores).await;
    for c in &stores[1..] {
        assert_eq!(by_sku(&mock, c), by_sku(&mock, "parent"), "{c} connected");
    }

    let before = by_sku(&mock, "parent");
    burst(&mock, &stores[1..]);
    quiet(&queue, &mock, &stores).await;
    converged(&queue, &mock, &before, &stores[1..]).await;

    // The servers' own queries went through PgBouncer: without it they are not ready.
    for url in [&public, &public_b] {
        let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
        assert_eq!(ready.status(), 200, "{url} ready through PgBouncer");
    }
    bouncer.child.start_kill().unwrap();
    bouncer.child.wait().await.unwrap();
    for url in [&public, &public_b] {
        let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
        assert_eq!(ready.status(), 503, "{url} is not ready without PgBouncer");
    }
}

/// Advisory locks held in the test's database: a migration's lock released on another server
/// connection than the one that took it (what a transaction pooler does) stays held.
async fn advisory_locks(url: &str) -> i64 {
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    // This database's only: tests running beside this one migrate their own databases.
    let n = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    pool.close().await;
    n
}
