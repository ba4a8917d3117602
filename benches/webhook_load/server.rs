//! The server under load: the real `twenty-mirror serve` binary, configured only by what is set
//! here, stopped with SIGTERM, and what it logged.

use std::fs::{self, File};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::time::Instant;

use crate::SECRET;
use crate::http::HttpConnection;
use crate::support::machine::status_kib;

pub struct Server {
    child: Child,
    pub address: SocketAddr,
    log: PathBuf,
    /// Where the log stood once the server was ready: what comes after is what the load caused.
    log_at_ready: usize,
}

/// How long the server gets to answer `/readyz` after it starts, migrations included.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// `/readyz` answers within its own 2 s timeout; a probe waits a little longer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the server gets to stop after SIGTERM; it drains in-flight requests, of which there are
/// none by then.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

impl Server {
    pub fn start(database_url: &str, log: PathBuf) -> Self {
        let port = free_port();
        let log_file = File::create(&log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let child = Command::new(env!("CARGO_BIN_EXE_twenty-mirror"))
            .arg("serve")
            // Only what is set here configures the server, whatever the bench's environment holds.
            .env_clear()
            .env("DATABASE_URL", database_url)
            .env("HOST", "127.0.0.1")
            .env("PORT", port.to_string())
            .env("TWENTY_WEBHOOK_SECRET", SECRET)
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("sharing the log file"))
            .stderr(log_file)
            .spawn()
            .expect("starting the twenty-mirror binary");
        Server { child, address: SocketAddr::from((Ipv4Addr::LOCALHOST, port)), log, log_at_ready: 0 }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub async fn wait_until_ready(&mut self) {
        let probe = format!("GET /readyz HTTP/1.1\r\nHost: {}\r\n\r\n", self.address).into_bytes();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("checking the server process") {
                panic!("the server exited ({status}) before it was ready; see {}", self.log.display());
            }
            if let Ok(mut connection) = HttpConnection::open(self.address).await
                && let Ok(Ok(200)) = tokio::time::timeout(PROBE_TIMEOUT, connection.exchange(&probe)).await
            {
                self.log_at_ready = fs::metadata(&self.log).map_or(0, |m| m.len() as usize);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the server was not ready in time; see {}",
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The server's peak resident memory so far (`VmHWM`).
    pub fn peak_rss_mib(&self) -> f64 {
        let pid = self.pid().to_string();
        let kib = status_kib(&pid, "VmHWM:").unwrap_or_else(|| panic!("no VmHWM in /proc/{pid}/status"));
        kib as f64 / 1024.0
    }

    /// Stops the server as the platform does, with SIGTERM, and summarises what it logged.
    pub fn stop(mut self) -> LogSummary {
        let sent = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        assert!(matches!(sent, Ok(status) if status.success()), "sending SIGTERM to the server: {sent:?}");
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("waiting for the server") {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "the server did not stop within {STOP_TIMEOUT:?}");
            std::thread::sleep(Duration::from_millis(20));
        };
        LogSummary::read(&self.log, self.log_at_ready, status.success())
    }
}

impl Drop for Server {
    /// A run that panics must not leave its server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago. Another process could take it before the server binds it;
/// the server then fails to start and the run says so.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("binding a free port");
    listener.local_addr().expect("reading the bound port").port()
}

/// What the server logged at warning level and above once it was ready, and how it exited.
#[derive(Debug)]
pub struct LogSummary {
    pub path: PathBuf,
    pub exited_cleanly: bool,
    pub errors: usize,
    pub warnings: usize,
    pub first: Option<String>,
}

impl LogSummary {
    fn read(path: &Path, from: usize, exited_cleanly: bool) -> Self {
        let whole = fs::read_to_string(path).unwrap_or_default();
        let text = whole.get(from..).unwrap_or(&whole);
        let count = |level: &str| text.lines().filter(|line| line.contains(level)).count();
        LogSummary {
            path: path.to_owned(),
            exited_cleanly,
            errors: count(r#""level":"ERROR""#),
            warnings: count(r#""level":"WARN""#),
            first: text.lines().next().map(str::to_owned),
        }
    }

    pub fn is_quiet(&self) -> bool {
        self.exited_cleanly && self.errors == 0 && self.warnings == 0
    }
}
