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

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Stdio;

use ferry_testkit::{TestDb, eventually};
use tokio::process::{Child, Command};

use crate::process::{add_and_connect, ferry, simulated, spawn_quiet, spawn_serve};
use crate::sync_process::{burst, by_sku, converged, quiet};

/// PgBouncer 1.21 or later; None (and a message) when there is none and this is not CI.
fn pgbouncer_binary() -> Option<PathBuf> {
    let candidates: Vec<PathBuf> = match std::env::var_os("FERRY_TEST_PGBOUNCER") {
        Some(p) => vec![p.into()],
        None => std::env::var_os("PATH")
            .map(|p| {
                std::env::split_paths(&p)
                    .map(|d| d.join("pgbouncer"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
            .into_iter()
            .chain([PathBuf::from("/usr/sbin/pgbouncer")])
            .collect(),
    };
    let found = candidates.into_iter().find(|p| p.is_file());
    let problem = match &found {
        None => "no pgbouncer binary (set FERRY_TEST_PGBOUNCER)".to_owned(),
        Some(p) => {
            let out = std::process::Command::new(p)
                .arg("--version")
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            match version(&text) {
                Some(v) if v >= (1, 21) => return found,
                _ => format!("{} is not 1.21 or later: {text:?}", p.display()),
            }
        }
    };
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true but {problem}"
    );
    eprintln!("SKIPPED: the PgBouncer topology test: {problem}");
    None
}

/// (major, minor) from `PgBouncer 1.24.1`.
fn version(text: &str) -> Option<(u32, u32)> {
    let v = text.lines().next()?.split_whitespace().nth(1)?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running PgBouncer in transaction mode in front of the test server; killed when dropped.
struct Bouncer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Bouncer {
    async fn start(binary: &PathBuf, server_url: &str) -> Bouncer {
        let dir = tempfile::tempdir().unwrap();
        // PgBouncer refuses to run as root; as root it is started with -u nobody, who must be
        // able to write its log here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let server: url::Url = server_url.parse().unwrap();
        let port = free_port();
        let user = server.username();
        std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"\"\n")).unwrap();
        let ini = format!(
            "[databases]\n\
             * = host={host} port={pg_port}\n\
             [pgbouncer]\n\
             listen_addr = 127.0.0.1\n\
             listen_port = {port}\n\
             unix_socket_dir =\n\
             auth_type = trust\n\
             auth_file = {dir}/users.txt\n\
             pool_mode = transaction\n\
             max_prepared_statements = 200\n\
             default_pool_size = 20\n\
             max_client_conn = 400\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {dir}/pgbouncer.log\n",
            host = server.host_str().unwrap(),
            pg_port = server.port().unwrap_or(5432),
            dir = dir.path().display(),
        );
        let ini_path = dir.path().join("pgbouncer.ini");
        std::fs::write(&ini_path, ini).unwrap();
        let mut cmd = Command::new(binary);
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(&ini_path)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        eventually("PgBouncer accepts connections", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
        })
        .await;
        Bouncer {
            child,
            port,
            _dir: dir,
        }
    }

    /// `db_url` with PgBouncer's port instead of the server's.
    fn url_for(&self, db_url: &str) -> String {
        let mut u: url::Url = db_url.parse().unwrap();
        u.set_port(Some(self.port)).unwrap();
        u.to_string()
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

ferry_testkit::postgres_only!(a_network_syncs_through_pgbouncer);

async fn a_network_syncs_through_pgbouncer(db: TestDb) {
    let Some(binary) = pgbouncer_binary() else {
        return;
    };
    let mut bouncer = Bouncer::start(&binary, &db.url).await;
    let pooled = bouncer.url_for(&db.url);
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
