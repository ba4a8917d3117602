//! The one shutdown listener of the long-running commands, `serve`, `playground` and `reconcile`:
//! SIGTERM (a platform stopping the machine) and SIGINT (Ctrl-C) both cancel one token, and
//! whatever watches it drains: the server answers the requests it has, the reconciler commits the
//! pages in flight.

use std::fmt;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// The signal that asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    Terminate,
    Interrupt,
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signal::Terminate => "SIGTERM",
            Signal::Interrupt => "SIGINT",
        })
    }
}

/// Waits for SIGTERM or SIGINT and then cancels `shutdown`; returns the signal, or `None` when the
/// token was cancelled another way first. Both signals mean a graceful stop: actix's own handling,
/// which treats SIGINT as a forced one, is turned off where the server is built.
pub async fn cancel_on_signal(shutdown: CancellationToken) -> Option<Signal> {
    let received = tokio::select! {
        () = arrival(Signal::Terminate) => Signal::Terminate,
        () = arrival(Signal::Interrupt) => Signal::Interrupt,
        () = shutdown.cancelled() => return None,
    };
    tracing::info!(signal = %received, "received {received}");
    shutdown.cancel();
    Some(received)
}

/// Resolves when `which` arrives; never, when the process cannot listen for it (said in the log).
async fn arrival(which: Signal) {
    let kind = match which {
        Signal::Terminate => SignalKind::terminate(),
        Signal::Interrupt => SignalKind::interrupt(),
    };
    match signal(kind) {
        Ok(mut arrivals) => {
            arrivals.recv().await;
        }
        Err(error) => {
            tracing::error!(%error, "cannot listen for {which}");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Command;
    use std::time::Duration;

    use super::*;

    /// Sends `which` to this process until `shutdown` is cancelled: the listener may not be
    /// listening yet when the first one arrives.
    async fn send_until_cancelled(which: Signal, shutdown: &CancellationToken) {
        let flag = match which {
            Signal::Terminate => "-TERM",
            Signal::Interrupt => "-INT",
        };
        for _ in 0..100 {
            let sent = Command::new("kill").args([flag, &std::process::id().to_string()]).status();
            assert!(sent.is_ok_and(|status| status.success()), "kill {flag}");
            if tokio::time::timeout(Duration::from_millis(50), shutdown.cancelled()).await.is_ok() {
                return;
            }
        }
        panic!("{which} did not cancel the token");
    }

    #[tokio::test]
    async fn sigterm_and_sigint_both_cancel_the_token() {
        // Listening here first keeps a signal that arrives before the listener from ending the
        // test process.
        let _terminate = signal(SignalKind::terminate()).expect("listening for SIGTERM");
        let _interrupt = signal(SignalKind::interrupt()).expect("listening for SIGINT");
        for which in [Signal::Terminate, Signal::Interrupt] {
            let shutdown = CancellationToken::new();
            let listener = tokio::spawn(cancel_on_signal(shutdown.clone()));
            send_until_cancelled(which, &shutdown).await;
            assert_eq!(listener.await.expect("the listener"), Some(which));
            // A second signal of this round may still be on its way: let it land before the next.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    #[tokio::test]
    async fn a_token_cancelled_elsewhere_ends_the_listener_without_a_signal() {
        let shutdown = CancellationToken::new();
        let listener = tokio::spawn(cancel_on_signal(shutdown.clone()));
        shutdown.cancel();
        assert_eq!(listener.await.expect("the listener"), None);
    }
}
