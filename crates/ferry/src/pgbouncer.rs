//! A PgBouncer in transaction mode in front of a PostgreSQL server, as deployments run one:
//! started for `ferry bench chaos` and for the topology test (which includes this file).
//!
//! It must be 1.21 or later: older ones cannot keep the protocol-level prepared statements
//! ferry's driver uses in transaction mode.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// The PgBouncer to run: `explicit`, else `FERRY_TEST_PGBOUNCER`, else `pgbouncer` on the PATH
/// or in /usr/sbin. An error says why there is none that will do.
pub fn find(explicit: Option<&Path>) -> Result<PathBuf, String> {
    let candidates: Vec<PathBuf> = match explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("FERRY_TEST_PGBOUNCER").map(PathBuf::from))
    {
        Some(p) => vec![p],
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
    let Some(found) = candidates.into_iter().find(|p| p.is_file()) else {
        return Err("no pgbouncer binary (set FERRY_TEST_PGBOUNCER or --pgbouncer)".to_owned());
    };
    let out = std::process::Command::new(&found)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} --version: {e}", found.display()))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    match version(&text) {
        Some(v) if v >= (1, 21) => Ok(found),
        _ => Err(format!(
            "{} is not PgBouncer 1.21 or later: {text:?}",
            found.display()
        )),
    }
}

/// (major, minor) from `PgBouncer 1.24.1`.
fn version(text: &str) -> Option<(u32, u32)> {
    let v = text.lines().next()?.split_whitespace().nth(1)?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// A running PgBouncer; killed when dropped.
pub struct Bouncer {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Bouncer {
    /// Starts `binary` in front of the server of `server_url` (any database on it, the user of
    /// the URL with trust authentication) on a free loopback port, and waits until it accepts
    /// connections.
    pub async fn start(binary: &Path, server_url: &str) -> Result<Bouncer> {
        let dir = tempfile::tempdir()?;
        // PgBouncer refuses to run as root; as root it is started with -u nobody, who must be
        // able to write its log here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        let server: reqwest::Url = server_url.parse().context("the database URL")?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let user = server.username();
        std::fs::write(dir.path().join("users.txt"), format!("\"{user}\" \"\"\n"))?;
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
            host = server.host_str().unwrap_or("127.0.0.1"),
            pg_port = server.port().unwrap_or(5432),
            dir = dir.path().display(),
        );
        let ini_path = dir.path().join("pgbouncer.ini");
        std::fs::write(&ini_path, ini)?;
        let mut cmd = Command::new(binary);
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let child = cmd
            .arg(&ini_path)
            // It logs to its file as well; on a terminal it would drown what matters.
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(15);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("PgBouncer did not accept connections within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Bouncer {
            child,
            port,
            _dir: dir,
        })
    }

    /// `db_url` with PgBouncer's port instead of the server's.
    pub fn url_for(&self, db_url: &str) -> Result<String> {
        let mut u: reqwest::Url = db_url.parse().context("the database URL")?;
        u.set_port(Some(self.port))
            .map_err(|()| anyhow::anyhow!("{db_url} cannot take a port"))?;
        Ok(u.to_string())
    }
}

fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
