//! A compiled binary run by a test in its own process.
//!
//! The servers print one `listening on <scheme>://<address>[ (<label>)]` line on stdout per
//! listener once they accept connections (`api-server`: `http`; `smtp-relay`: `smtp`, `smtps`,
//! `http (admin)`). [`Binary::start`] waits for the expected number of those lines and returns
//! a [`Running`] process with the addresses; the rest of stdout stays readable line by line, and
//! stderr is kept (and echoed to the test's output) so that a failure can show it.
//!
//! ```no_run
//! use lettermint_testkit::process::Binary;
//!
//! // In an integration test of the smtp-relay package: env!("CARGO_BIN_EXE_smtp-relay").
//! let mut relay = Binary::new("target/debug/smtp-relay")
//!     .args(["--listen", "127.0.0.1:0"])
//!     .env("LETTERMINT_LOG", "warn")
//!     .listeners(3)
//!     .start();
//! let smtp = relay.listener("smtp").addr;
//! // ... talk to it ...
//! assert!(relay.terminate().success());
//! ```
//!
//! A [`Running`] process is killed when dropped, so a failing test leaves nothing behind.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead as _, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a process gets to print its listeners, or to exit once asked to.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Most stderr lines kept for a failure message (the latest ones).
const STDERR_LINES_KEPT: usize = 500;

/// What every listener line starts with.
const LISTENING_ON: &str = "listening on ";

/// A binary to start: the program, its arguments and environment, and how many `listening on`
/// lines it prints once it is ready.
#[derive(Debug)]
pub struct Binary {
    command: Command,
    name: String,
    listeners: usize,
    timeout: Duration,
}

impl Binary {
    /// The program at `path` (in a test: `env!("CARGO_BIN_EXE_<name>")`), with no arguments,
    /// waiting for no listener.
    pub fn new(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref();
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Self {
            command: Command::new(path),
            name,
            listeners: 0,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Adds one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.command.arg(arg);
        self
    }

    /// Adds arguments.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command.args(args);
        self
    }

    /// Sets an environment variable (the rest of the test's environment is inherited).
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.command.env(key, value);
        self
    }

    /// Removes an inherited environment variable.
    #[must_use]
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.command.env_remove(key);
        self
    }

    /// Runs the program in `dir`.
    #[must_use]
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// How many `listening on` lines mean the process is ready (0: ready once started).
    #[must_use]
    pub fn listeners(mut self, count: usize) -> Self {
        self.listeners = count;
        self
    }

    /// How long the process may take to print its listeners, and to exit once asked
    /// (default 60 s).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Starts the process and waits for its listeners.
    ///
    /// # Panics
    ///
    /// If the program cannot be started, or exits or stays silent before printing all its
    /// listeners; the message holds what it printed on stderr.
    pub fn start(mut self) -> Running {
        let mut child = self
            .command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.name));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (lines, stdout_lines) = mpsc::channel();
        std::thread::spawn(move || {
            // Keeps draining even when nobody reads any more, so the child never blocks on a
            // full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
        let kept = Arc::new(Mutex::new(VecDeque::new()));
        let stderr_reader = std::thread::spawn({
            let kept = kept.clone();
            let name = self.name.clone();
            move || keep_stderr(stderr, &name, &kept)
        });
        let mut running = Running {
            name: self.name,
            child,
            reaped: None,
            listeners: Vec::new(),
            stdout: stdout_lines,
            unread: VecDeque::new(),
            stderr: kept,
            stderr_reader: Some(stderr_reader),
            timeout: self.timeout,
        };
        running.wait_for_listeners(self.listeners);
        running
    }
}

/// Reads stderr line by line: echoes each line to the test's output and keeps the latest ones.
fn keep_stderr(stderr: impl Read, name: &str, kept: &Mutex<VecDeque<String>>) {
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        eprintln!("[{name}] {line}");
        let mut kept = kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if kept.len() == STDERR_LINES_KEPT {
            kept.pop_front();
        }
        kept.push_back(line);
    }
}

/// One `listening on` line: `listening on smtp://127.0.0.1:1587 (STARTTLS)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// `http`, `smtp`, `smtps`, ...
    pub scheme: String,
    /// The address, with the port the process actually bound.
    pub addr: SocketAddr,
    /// The text in parentheses after the address, if any (`STARTTLS`, `admin`, ...).
    pub label: Option<String>,
}

impl Listener {
    /// Parses a line printed by a server; `None` if it is not a listener line.
    #[must_use]
    pub fn parse(line: &str) -> Option<Self> {
        let rest = line.trim().strip_prefix(LISTENING_ON)?;
        let (scheme, rest) = rest.split_once("://")?;
        let (addr, label) = match rest.split_once(' ') {
            Some((addr, label)) => (addr, Some(label.trim())),
            None => (rest, None),
        };
        let label = match label {
            Some(label) => Some(label.strip_prefix('(')?.strip_suffix(')')?.to_owned()),
            None => None,
        };
        Some(Self {
            scheme: scheme.to_owned(),
            addr: addr.trim_end_matches('/').parse().ok()?,
            label,
        })
    }

    /// `scheme://addr`, e.g. `http://127.0.0.1:41234`.
    #[must_use]
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }
}

/// A started process; killed when dropped.
#[derive(Debug)]
pub struct Running {
    name: String,
    child: Child,
    reaped: Option<ExitStatus>,
    listeners: Vec<Listener>,
    stdout: Receiver<String>,
    /// Stdout lines read while waiting for the listeners, not yet handed out.
    unread: VecDeque<String>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Option<JoinHandle<()>>,
    timeout: Duration,
}

impl Running {
    fn wait_for_listeners(&mut self, count: usize) {
        let deadline = Instant::now() + self.timeout;
        while self.listeners.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stdout.recv_timeout(left) {
                Ok(line) => match Listener::parse(&line) {
                    Some(listener) => self.listeners.push(listener),
                    None => self.unread.push_back(line),
                },
                Err(RecvTimeoutError::Timeout) => {
                    self.kill();
                    self.fail(&format!(
                        "printed {} of {count} `listening on` lines within {:?}",
                        self.listeners.len(),
                        self.timeout
                    ));
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.wait();
                    self.fail(&format!(
                        "exited ({status}) after {} of {count} `listening on` lines",
                        self.listeners.len()
                    ));
                }
            }
        }
    }

    /// Panics with `what` happened, what the process printed so far, and its stderr.
    fn fail(&mut self, what: &str) -> ! {
        // Once the process is gone its stderr ends: give the reader a moment to keep all of it
        // (not forever: a child of the process may still hold the pipe open).
        if self.reaped.is_some()
            && let Some(reader) = self.stderr_reader.take()
        {
            let deadline = Instant::now() + Duration::from_secs(2);
            while !reader.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let stdout: Vec<&str> = self.unread.iter().map(String::as_str).collect();
        panic!(
            "{} {what}\nlisteners: {:?}\nstdout:\n{}\nstderr:\n{}",
            self.name,
            self.listeners,
            stdout.join("\n"),
            self.stderr()
        );
    }

    /// Every listener the process printed, in order.
    #[must_use]
    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// The first listener with this scheme.
    ///
    /// # Panics
    ///
    /// If there is none.
    #[must_use]
    pub fn listener(&self, scheme: &str) -> &Listener {
        self.listeners
            .iter()
            .find(|l| l.scheme == scheme)
            .unwrap_or_else(|| {
                panic!(
                    "{} has no {scheme} listener: {:?}",
                    self.name, self.listeners
                )
            })
    }

    /// The listener with this label (the text in parentheses, e.g. `admin`).
    ///
    /// # Panics
    ///
    /// If there is none.
    #[must_use]
    pub fn labelled(&self, label: &str) -> &Listener {
        self.listeners
            .iter()
            .find(|l| l.label.as_deref() == Some(label))
            .unwrap_or_else(|| {
                panic!(
                    "{} has no listener labelled {label}: {:?}",
                    self.name, self.listeners
                )
            })
    }

    /// The next line on stdout that is not a listener line already handed out, waiting at most
    /// `timeout`; `None` if none came (or stdout closed).
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        if let Some(line) = self.unread.pop_front() {
            return Some(line);
        }
        self.stdout.recv_timeout(timeout).ok()
    }

    /// What the process printed on stderr so far (the latest lines).
    #[must_use]
    pub fn stderr(&self) -> String {
        let kept = self
            .stderr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        kept.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The process id.
    #[must_use]
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and returns at once.
    ///
    /// # Panics
    ///
    /// If the signal cannot be sent.
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -TERM {} failed: {status}",
            self.id()
        );
    }

    /// Waits for the process to exit.
    ///
    /// # Panics
    ///
    /// If it is still running after the timeout (it is then killed); the message holds its
    /// stderr.
    pub fn wait(&mut self) -> ExitStatus {
        if let Some(status) = self.reaped {
            return status;
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.reaped = Some(status);
                    return status;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Ok(None) => {
                    self.kill();
                    self.fail(&format!("did not exit within {:?}", self.timeout));
                }
                Err(e) => panic!("cannot wait for {}: {e}", self.name),
            }
        }
    }

    /// SIGTERM, then waits for the exit status.
    ///
    /// # Panics
    ///
    /// As [`sigterm`](Self::sigterm) and [`wait`](Self::wait).
    pub fn terminate(&mut self) -> ExitStatus {
        if self.reaped.is_none() {
            self.sigterm();
        }
        self.wait()
    }

    /// SIGKILL (a crash, as far as the process can tell), then reaps it.
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.reaped {
            return status;
        }
        let _ = self.child.kill();
        let status = self.child.wait().expect("wait for a killed process");
        self.reaped = Some(status);
        status
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Binary {
        Binary::new("/bin/sh").args(["-c", script])
    }

    #[test]
    fn listener_lines_are_parsed_with_scheme_address_and_label() {
        assert_eq!(
            Listener::parse("listening on smtp://127.0.0.1:1587 (STARTTLS)"),
            Some(Listener {
                scheme: "smtp".into(),
                addr: "127.0.0.1:1587".parse().unwrap(),
                label: Some("STARTTLS".into()),
            })
        );
        let http = Listener::parse("listening on http://[::1]:8080\n").unwrap();
        assert_eq!(http.label, None);
        assert_eq!(http.url(), "http://[::1]:8080");
        for other in [
            "project token: lm_x",
            "listening on 127.0.0.1:80",
            "listening on http://nowhere:80",
            "listening on http://127.0.0.1:80 admin",
        ] {
            assert_eq!(Listener::parse(other), None, "{other}");
        }
    }

    #[test]
    fn start_waits_for_the_listeners_and_keeps_the_other_lines() {
        let mut process = sh(
            "echo before; echo 'listening on http://127.0.0.1:1 (admin)'; \
                              echo between; echo 'listening on smtp://127.0.0.1:2'; \
                              echo after; echo oops >&2; exec sleep 30",
        )
        .listeners(2)
        .start();
        assert_eq!(process.listeners().len(), 2);
        assert_eq!(process.listener("smtp").addr.port(), 2);
        assert_eq!(process.labelled("admin").url(), "http://127.0.0.1:1");
        assert_eq!(
            process.next_line(Duration::from_secs(5)).as_deref(),
            Some("before")
        );
        assert_eq!(
            process.next_line(Duration::from_secs(5)).as_deref(),
            Some("between")
        );
        assert_eq!(
            process.next_line(Duration::from_secs(5)).as_deref(),
            Some("after")
        );
        assert_eq!(process.next_line(Duration::from_millis(50)), None);
        let deadline = Instant::now() + Duration::from_secs(5);
        while process.stderr().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(process.stderr(), "oops");
        let status = process.terminate();
        assert!(!status.success(), "killed by SIGTERM: {status}");
        // Asking again answers the same.
        assert_eq!(process.terminate(), status);
        assert_eq!(process.kill(), status);
    }

    #[test]
    fn terminate_returns_the_exit_status_the_process_chose() {
        let mut process = sh(
            "trap 'exit 3' TERM; echo 'listening on http://127.0.0.1:9'; \
                              while :; do sleep 0.05; done",
        )
        .listeners(1)
        .start();
        assert_eq!(process.terminate().code(), Some(3));
    }

    #[test]
    fn a_process_that_needs_no_listener_is_ready_at_once() {
        let mut process = sh("echo one; echo two").start();
        assert_eq!(
            process.next_line(Duration::from_secs(5)).as_deref(),
            Some("one")
        );
        assert_eq!(
            process.next_line(Duration::from_secs(5)).as_deref(),
            Some("two")
        );
        assert_eq!(process.next_line(Duration::from_secs(5)), None);
        assert!(process.wait().success());
    }

    #[test]
    fn arguments_environment_and_directory_reach_the_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = Binary::new("/bin/sh")
            .arg("-c")
            .arg("echo \"$GREETING $1\"; pwd; echo \"${HOME:-unset}\"")
            .args(["sh", "world"])
            .env("GREETING", "hello")
            .env_remove("HOME")
            .current_dir(dir.path())
            .start();
        let line = |p: &mut Running| p.next_line(Duration::from_secs(5)).unwrap();
        assert_eq!(line(&mut process), "hello world");
        assert_eq!(
            std::fs::canonicalize(line(&mut process)).unwrap(),
            std::fs::canonicalize(dir.path()).unwrap()
        );
        assert_eq!(line(&mut process), "unset");
    }

    /// Runs `f`, which must panic, and returns the panic message.
    fn panic_message(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let payload = std::panic::catch_unwind(f).expect_err("a panic");
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    }

    #[test]
    fn a_process_that_exits_before_listening_fails_with_its_stderr() {
        let message = panic_message(|| {
            let _ = sh("echo 'error: invalid configuration: nope' >&2; exit 2")
                .listeners(1)
                .start();
        });
        assert!(message.contains("sh exited"), "{message}");
        assert!(message.contains("exit status: 2"), "{message}");
        assert!(
            message.contains("error: invalid configuration: nope"),
            "{message}"
        );
    }

    #[test]
    fn a_process_that_never_listens_fails_after_the_timeout_with_its_stderr() {
        let message = panic_message(|| {
            let _ = sh("echo starting >&2; echo 'listening on http://127.0.0.1:1'; exec sleep 30")
                .listeners(2)
                .timeout(Duration::from_millis(500))
                .start();
        });
        assert!(
            message.contains("printed 1 of 2 `listening on` lines within 500ms"),
            "{message}"
        );
        assert!(message.contains("starting"), "{message}");
    }

    #[test]
    fn a_program_that_cannot_start_says_which() {
        let message = panic_message(|| {
            let _ = Binary::new("/nonexistent/lettermint-testkit/no-such-program").start();
        });
        assert!(
            message.contains("cannot start no-such-program"),
            "{message}"
        );
    }

    #[test]
    fn dropping_a_running_process_kills_it() {
        let process = sh("echo 'listening on http://127.0.0.1:1'; exec sleep 30")
            .listeners(1)
            .start();
        let pid = process.id().to_string();
        drop(process);
        let alive = Command::new("kill")
            .args(["-0", &pid])
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(!alive.success(), "process {pid} outlived its handle");
    }
}
