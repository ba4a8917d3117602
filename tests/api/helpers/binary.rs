//! The built `twenty-mirror` binary as a child process, as an operator runs it.

use std::process::{Child, Command};

/// The binary with an empty environment but `PATH`, logging JSON lines: each test adds the
/// settings it means.
pub fn twenty_mirror() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_twenty-mirror"));
    command.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default()).env("LOG_FORMAT", "json");
    command
}

/// A port free on 127.0.0.1 now, for a child to listen on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Sends `signal` (`-TERM`, `-KILL`) to the child, as an operator's `kill` would.
pub fn signal(child: &Child, signal: &str) {
    let sent = Command::new("kill").args([signal, &child.id().to_string()]).status().expect("running kill");
    assert!(sent.success(), "kill {signal} {}", child.id());
}
