//! The reconciler: it pulls what changed from Twenty's REST API and backfills everything the
//! webhooks missed, deletions included, through the same apply rule as the webhook path.

pub mod reconciler;
pub mod rediscovery;
pub mod replay;
pub mod scheduler;
pub mod status;

pub use reconciler::{
    ObjectReport, QuotaExhausted, ReconcileError, Reconciler, ReconcilerSettings, RunOutcome, RunRequest,
    Started,
};
pub use rediscovery::Rediscovery;
