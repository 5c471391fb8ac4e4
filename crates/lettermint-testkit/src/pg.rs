//! A throwaway PostgreSQL server.
//!
//! [`TempPostgres::start`] runs `initdb` into a temporary directory and starts `postgres` on a
//! free loopback port, with its Unix socket in the same directory, so parallel test binaries
//! never collide. When running as root (as CI does) it runs both as the `postgres` system user,
//! because PostgreSQL refuses to run as root.
//!
//! The server is started through a small shell guard that stops it (fast shutdown) as soon as
//! this process's end of a pipe closes, so no server outlives the test process, even when the
//! process is killed or a static instance is never dropped.

use std::fs;
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use sqlx::Executor as _;

/// What went wrong starting the server; the message says what to do.
#[derive(Debug)]
pub struct StartError(String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

const INSTALL_HINT: &str = "The PostgreSQL tests start their own throwaway server and need the \
PostgreSQL server binaries `initdb` and `postgres` (version 13 or later). Install them \
(Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`) and either put \
them on PATH or set LETTERMINT_PG_BIN to their directory (Debian keeps them in \
/usr/lib/postgresql/<version>/bin).";

/// Durability settings of the throwaway server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// `fsync = off`: fast, for tests that never crash the machine.
    Fast,
    /// PostgreSQL's defaults: what production runs, for benchmarks.
    Production,
}

/// A running throwaway server. Dropping it stops the server and deletes its data.
#[derive(Debug)]
pub struct TempPostgres {
    port: u16,
    dir: tempfile::TempDir,
    guard: Mutex<Option<(Child, ChildStdin)>>,
    next_db: AtomicU32,
}

/// Finds the directory holding `initdb` and `postgres`.
fn find_bin_dir() -> Result<PathBuf, StartError> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    if let Ok(dir) = std::env::var("LETTERMINT_PG_BIN") {
        let dir = PathBuf::from(dir);
        return if has_both(&dir) {
            Ok(dir)
        } else {
            Err(StartError(format!(
                "LETTERMINT_PG_BIN={} holds no `initdb` and `postgres`. {INSTALL_HINT}",
                dir.display()
            )))
        };
    }
    if let Some(dir) =
        std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|d| has_both(d)))
    {
        return Ok(dir);
    }
    let mut versions: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|d| has_both(d))
        .collect();
    versions.sort();
    versions
        .pop()
        .ok_or_else(|| StartError(format!("PostgreSQL binaries not found. {INSTALL_HINT}")))
}

fn wait_until_ready(
    child: &mut Child,
    port: u16,
    dir: &Path,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("postgres exited ({status})"));
        }
        if TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
            && dir.join(format!(".s.PGSQL.{port}")).exists()
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err("timed out waiting for postgres to accept connections".to_owned());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The uid and gid of the `postgres` user, when this process runs as root.
fn unprivileged_user() -> Result<Option<(u32, u32)>, StartError> {
    // The workspace denies unsafe code, so read the effective uid from /proc, not geteuid().
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse::<u32>().ok());
    if euid != Some(0) {
        return Ok(None);
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.first() == Some(&"postgres") && f.len() > 3)
        .and_then(|f| Some((f[2].parse().ok()?, f[3].parse().ok()?)))
        .map(Some)
        .ok_or_else(|| {
            StartError(format!(
                "Running as root, and PostgreSQL refuses to run as root, but there is no \
                 `postgres` system user to run it as. Create one (`useradd --system postgres`) \
                 or run the tests as an ordinary user. {INSTALL_HINT}"
            ))
        })
}

fn free_port() -> Result<u16, StartError> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| StartError(format!("no free loopback port: {e}")))
}

impl TempPostgres {
    /// Starts a new server.
    pub fn start(durability: Durability) -> Result<Self, StartError> {
        let bin = find_bin_dir()?;
        let user = unprivileged_user()?;
        let dir = tempfile::Builder::new()
            .prefix("lettermint-pg-")
            .tempdir()
            .map_err(|e| StartError(format!("cannot create a temporary directory: {e}")))?;
        let data = dir.path().join("data");
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid)).map_err(|e| {
                StartError(format!("cannot hand the data directory to postgres: {e}"))
            })?;
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).ok();
        }
        let as_user = |cmd: &mut Command| {
            if let Some((uid, gid)) = user {
                cmd.uid(uid).gid(gid);
            }
        };

        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .args([
                "--auth=trust",
                "--username=postgres",
                "--encoding=UTF8",
                "--no-sync",
            ])
            .arg("--pgdata")
            .arg(&data)
            .env("LC_ALL", "C")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        as_user(&mut initdb);
        let out = initdb
            .output()
            .map_err(|e| StartError(format!("cannot run initdb: {e}. {INSTALL_HINT}")))?;
        if !out.status.success() {
            return Err(StartError(format!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }

        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port()?;
            let mut settings = vec![
                format!("port={port}"),
                "listen_addresses=127.0.0.1".to_owned(),
                format!("unix_socket_directories={}", dir.path().display()),
                "max_connections=200".to_owned(),
                "shared_buffers=128MB".to_owned(),
            ];
            if durability == Durability::Fast {
                settings.extend(
                    [
                        "fsync=off",
                        "synchronous_commit=off",
                        "full_page_writes=off",
                    ]
                    .map(String::from),
                );
            }
            let config: String = settings.iter().map(|s| format!(" -c {s}")).collect();
            // The guard: start postgres, wait until our stdin closes (this process exited or
            // dropped us), then ask for a fast shutdown, wait for it and delete the data.
            let script = format!(
                "'{postgres}' -D '{data}'{config} >'{log}' 2>&1 & pid=$!; \
                 cat >/dev/null; kill -INT $pid 2>/dev/null; wait $pid; rm -rf '{dir}'",
                postgres = bin.join("postgres").display(),
                data = data.display(),
                log = dir.path().join("server.log").display(),
                dir = dir.path().display(),
            );
            let mut guard = Command::new("/bin/sh");
            guard
                .arg("-c")
                .arg(script)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            as_user(&mut guard);
            let mut child = guard
                .spawn()
                .map_err(|e| StartError(format!("cannot start postgres: {e}")))?;
            let stdin = child.stdin.take().expect("stdin is piped");
            match wait_until_ready(&mut child, port, dir.path(), Duration::from_secs(30)) {
                Ok(()) => {
                    return Ok(Self {
                        port,
                        dir,
                        guard: Mutex::new(Some((child, stdin))),
                        next_db: AtomicU32::new(0),
                    });
                }
                Err(e) => {
                    drop(stdin);
                    let _ = child.wait();
                    let log = fs::read_to_string(dir.path().join("server.log")).unwrap_or_default();
                    if !log.contains("could not bind") && !log.contains("already in use") {
                        return Err(StartError(format!("postgres did not start: {e}\n{log}")));
                    }
                    // Another process took the port between our probe and postgres: retry.
                    last_error = e;
                }
            }
        }
        Err(StartError(format!("postgres did not start: {last_error}")))
    }

    /// The TCP port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of database `name` on this server.
    #[must_use]
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates a new, empty database and returns its URL.
    pub async fn create_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("test_{}_{n}", std::process::id());
        // The server may still be starting up right after it opened its port.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut conn = loop {
            match <sqlx::PgConnection as sqlx::Connection>::connect(&self.url("postgres")).await {
                Ok(conn) => break conn,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "cannot connect to the throwaway server: {e}\n{}",
                        self.log()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create a test database");
        self.url(&name)
    }

    /// Stops the server now (fast shutdown) and waits for it.
    pub fn stop(&self) {
        if let Some((mut child, stdin)) = self.guard.lock().expect("guard lock").take() {
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// The process id of the server (the postmaster, parent of every other server process),
    /// from its `postmaster.pid`; `None` if it is not running.
    #[must_use]
    pub fn server_pid(&self) -> Option<u32> {
        fs::read_to_string(self.dir.path().join("data").join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The server log so far, for diagnosing a failure.
    #[must_use]
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One server shared by every test of a test binary (each test takes its own database), started
/// on first use. Panics with installation advice when PostgreSQL is missing: these tests are
/// never skipped.
pub fn shared() -> &'static TempPostgres {
    static SERVER: OnceLock<TempPostgres> = OnceLock::new();
    SERVER.get_or_init(|| match TempPostgres::start(Durability::Fast) {
        Ok(server) => server,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "\n{e}\n");
            panic!("cannot start the throwaway PostgreSQL server: {e}")
        }
    })
}
