//! How the binary exits. The codes are part of its interface: scripts, cron jobs and a PaaS's
//! release step act on them.

use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: the command did what it was asked; `reconcile`'s run succeeded, `webhook check` passed.
    Success,
    /// 1: it failed: an error (the database, Twenty, a bad `--url`), a `reconcile` run that ended
    /// `failed` (a refused mass destroy included), a `webhook check` that found a problem.
    Failure,
    /// 2: the settings are wrong: a malformed variable (the message names it), or `webhook` without
    /// TWENTY_API_URL and TWENTY_API_KEY. Arguments the command line does not accept exit 2 as
    /// well (clap's usage error).
    Settings,
    /// 3: `reconcile` did nothing because another reconciler holds the run (the scheduler of a
    /// running `serve`, or another `reconcile`).
    AlreadyRunning,
}

impl Exit {
    /// `Success` when `passed`, else `Failure`.
    pub fn from_success(passed: bool) -> Self {
        if passed { Exit::Success } else { Exit::Failure }
    }

    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Settings => 2,
            Exit::AlreadyRunning => 3,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
