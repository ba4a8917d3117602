//! The store's vocabulary: what goes in, what comes out, and the rows both backends read and write.
//! It imports no backend; both backends import it.

use std::any::Any;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::error::StoreError;
use super::rule::ApplyOutcome;
use super::views::ObjectFields;
use crate::change::{Change, Source, Stage};

/// What a verified delivery did, as `webhook_events.outcome` records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventOutcome {
    Applied,
    Stale,
    Duplicate,
    Ignored,
    Failed,
}

impl EventOutcome {
    pub const ALL: [EventOutcome; 5] = [
        EventOutcome::Applied,
        EventOutcome::Stale,
        EventOutcome::Duplicate,
        EventOutcome::Ignored,
        EventOutcome::Failed,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|outcome| outcome.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventOutcome::Applied => "applied",
            EventOutcome::Stale => "stale",
            EventOutcome::Duplicate => "duplicate",
            EventOutcome::Ignored => "ignored",
            EventOutcome::Failed => "failed",
        }
    }
}

impl From<ApplyOutcome> for EventOutcome {
    fn from(outcome: ApplyOutcome) -> Self {
        match outcome {
            ApplyOutcome::Inserted | ApplyOutcome::Updated => EventOutcome::Applied,
            ApplyOutcome::Duplicate => EventOutcome::Duplicate,
            ApplyOutcome::Stale => EventOutcome::Stale,
        }
    }
}

/// How many deliveries of one outcome the event log received in one hour (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HourlyDeliveries {
    /// The start of the hour.
    pub hour: DateTime<Utc>,
    pub outcome: EventOutcome,
    pub deliveries: i64,
}

impl HourlyDeliveries {
    /// A row as a backend read it, refusing an outcome the store does not know.
    pub(crate) fn read(hour: DateTime<Utc>, outcome: &str, deliveries: i64) -> Result<Self, StoreError> {
        let outcome = EventOutcome::parse(outcome)
            .ok_or_else(|| StoreError::Corrupt(format!("a delivery's outcome {outcome:?}")))?;
        Ok(HourlyDeliveries { hour, outcome, deliveries })
    }
}

/// A verified delivery on its way to the event log, with what to do with it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub received_at: DateTime<Utc>,
    pub event_name: Option<String>,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub record_updated_at: Option<DateTime<Utc>>,
    pub body: String,
    pub disposition: Disposition,
}

#[derive(Debug, Clone)]
pub enum Disposition {
    /// A record event: applied to the mirror, logged with the apply outcome.
    Apply(Change),
    /// Not a record event we apply (`metadata.*`, an unknown action): logged as `ignored`.
    Ignore,
    /// Verified but malformed: logged as `failed` with the reason.
    Fail(String),
}

/// A batch of deliveries in one transaction (group commit): the changes to apply, in order, and
/// the `webhook_events` row of every delivery, whose outcome the apply step fills in.
pub(crate) struct DeliveryBatch<'a> {
    pub changes: Vec<&'a Change>,
    pub logged: Vec<LoggedDelivery<'a>>,
}

/// A `webhook_events` row being written; `outcome` is filled in by the apply step for record events.
#[derive(Debug)]
pub(crate) struct LoggedDelivery<'a> {
    pub delivery: &'a Delivery,
    pub outcome: Option<EventOutcome>,
    pub error: Option<&'a str>,
}

impl<'a> DeliveryBatch<'a> {
    pub fn new(deliveries: &'a [Delivery]) -> Self {
        let mut changes = Vec::new();
        let mut logged = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            let (outcome, error) = match &delivery.disposition {
                Disposition::Apply(change) => {
                    changes.push(change);
                    (None, None)
                }
                Disposition::Ignore => (Some(EventOutcome::Ignored), None),
                Disposition::Fail(reason) => (Some(EventOutcome::Failed), Some(reason.as_str())),
            };
            logged.push(LoggedDelivery { delivery, outcome, error });
        }
        DeliveryBatch { changes, logged }
    }

    /// Fills in the outcome of each record event, in order, from the apply step's outcomes.
    pub fn fill_outcomes(&mut self, outcomes: Vec<ApplyOutcome>) {
        let mut outcomes = outcomes.into_iter();
        for event in self.logged.iter_mut().filter(|e| e.outcome.is_none()) {
            event.outcome = outcomes.next().map(EventOutcome::from);
        }
    }

    /// Every delivery's outcome, in order.
    pub fn outcomes(&self) -> Result<Vec<EventOutcome>, StoreError> {
        self.logged
            .iter()
            .map(|e| e.outcome.ok_or_else(|| StoreError::Corrupt("an outcome was lost".into())))
            .collect()
    }
}

/// A row of `twenty_records`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub object: String,
    pub id: String,
    pub data: serde_json::Value,
    pub updated_at: DateTime<Utc>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub destroyed_at: Option<DateTime<Utc>>,
    pub source: Source,
    pub synced_at: DateTime<Utc>,
}

/// A row of `webhook_events`.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub id: i64,
    pub received_at: DateTime<Utc>,
    pub event_name: Option<String>,
    pub object: Option<String>,
    pub record_id: Option<String>,
    pub record_updated_at: Option<DateTime<Utc>>,
    pub outcome: String,
    pub error: Option<String>,
    pub body: String,
}

/// An object discovered through Twenty's metadata API: a row of `twenty_objects`.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ObjectRow {
    pub name_singular: String,
    pub name_plural: String,
    pub label_singular: String,
    pub label_plural: String,
    pub metadata_id: String,
    pub is_custom: bool,
    pub fields: serde_json::Value,
    pub mirrored: bool,
}

/// The objects chosen for mirroring, as the typed views take them: the others get no view.
pub(crate) fn mirrored_fields(objects: &[ObjectRow]) -> Vec<ObjectFields<'_>> {
    objects
        .iter()
        .filter(|o| o.mirrored)
        .map(|o| ObjectFields { name_singular: &o.name_singular, fields: &o.fields })
        .collect()
}

/// A row of `sync_state`.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct SyncState {
    pub object: String,
    pub watermark: Option<DateTime<Utc>>,
    pub last_delta_at: Option<DateTime<Utc>>,
    pub last_full_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<i64>,
    pub last_counts: Option<Counts>,
    /// What the object's last delta pass said of its webhooks.
    pub webhook_health: WebhookHealth,
}

/// What a run (or one object's pass) did. `repaired` counts the writes that changed the mirror:
/// the changes the webhooks should have brought and did not. Its columns in `sync_runs` have its
/// fields' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct Counts {
    pub fetched: i64,
    pub inserted: i64,
    pub updated: i64,
    pub deleted: i64,
    pub destroyed: i64,
    pub unchanged: i64,
    pub repaired: i64,
}

impl Counts {
    /// The counts of one applied page: each read is inserted, updated, deleted (an applied soft
    /// delete) or unchanged.
    pub fn of_page(changes: &[Change], outcomes: &[ApplyOutcome]) -> Counts {
        let mut counts = Counts { fetched: changes.len() as i64, ..Counts::default() };
        for (change, outcome) in changes.iter().zip(outcomes) {
            match (outcome, change.stage()) {
                (ApplyOutcome::Inserted, _) => counts.inserted += 1,
                (ApplyOutcome::Updated, Stage::SoftDeleted) => counts.deleted += 1,
                (ApplyOutcome::Updated, _) => counts.updated += 1,
                (ApplyOutcome::Duplicate | ApplyOutcome::Stale, _) => counts.unchanged += 1,
            }
            if outcome.changed() {
                counts.repaired += 1;
            }
        }
        counts
    }

    /// The counts of a sweep that marked `destroyed` rows.
    pub fn of_sweep(destroyed: u64) -> Counts {
        let destroyed = destroyed as i64;
        Counts { destroyed, repaired: destroyed, ..Counts::default() }
    }

    /// Binds the seven counts, in the order of their `sync_runs` columns (fetched, inserted,
    /// updated, deleted, destroyed, unchanged, repaired), as the query's next parameters.
    pub(crate) fn bind_to<'q, DB>(
        self,
        query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    ) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
    where
        DB: sqlx::Database,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
        query
            .bind(self.fetched)
            .bind(self.inserted)
            .bind(self.updated)
            .bind(self.deleted)
            .bind(self.destroyed)
            .bind(self.unchanged)
            .bind(self.repaired)
    }

    pub fn add(&mut self, other: Counts) {
        self.fetched += other.fetched;
        self.inserted += other.inserted;
        self.updated += other.updated;
        self.deleted += other.deleted;
        self.destroyed += other.destroyed;
        self.unchanged += other.unchanged;
        self.repaired += other.repaired;
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

text_enum!(
    /// What started a run.
    Trigger { Schedule => "schedule", Operator => "operator", Startup => "startup" }
);
text_enum!(
    /// A delta pass reads what changed since the watermark; a full pass reads everything and
    /// then infers what was destroyed.
    Mode { Delta => "delta", Full => "full" }
);
text_enum!(
    RunStatus { Running => "running", Succeeded => "succeeded", Failed => "failed" }
);
text_enum!(
    /// What an object's last delta pass says of its webhooks (design section 9): `ok` when it
    /// repaired nothing, `lossy` when it repaired something and deliveries for the object arrived
    /// since the previous pass, `silent` when it repaired something and none arrived, `unknown`
    /// before the first delta pass.
    #[derive(Default)]
    WebhookHealth { Ok => "ok", Lossy => "lossy", Silent => "silent", #[default] Unknown => "unknown" }
);

impl WebhookHealth {
    pub const ALL: [WebhookHealth; 4] =
        [WebhookHealth::Ok, WebhookHealth::Lossy, WebhookHealth::Silent, WebhookHealth::Unknown];

    /// The verdict of a delta pass that repaired `repaired` rows, when deliveries for the object
    /// did or did not arrive (refused ones included: they arrived) since the previous pass.
    pub fn after_delta_pass(repaired: i64, deliveries_arrived: bool) -> WebhookHealth {
        match (repaired, deliveries_arrived) {
            (0, _) => WebhookHealth::Ok,
            (_, true) => WebhookHealth::Lossy,
            (_, false) => WebhookHealth::Silent,
        }
    }
}

/// Deliveries refused for one reason (the signature checks' reasons, or `malformed`), of one
/// object, or of none the mirror knows (`object` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RefusedDeliveries {
    pub object: Option<String>,
    pub reason: String,
    pub refused: i64,
}

/// What a completed delta pass concluded of its object's webhooks, next to what the pass before
/// it had concluded, and the refusals of the window it closed (the object's and those of no
/// known object).
#[derive(Debug, Clone, PartialEq)]
pub struct PassHealth {
    pub previous: WebhookHealth,
    pub current: WebhookHealth,
    pub refused: Vec<RefusedDeliveries>,
}

/// What the store knows, when a delta pass of `object` completes, of the window since the pass
/// before it.
pub(crate) struct HealthWindow<'a> {
    pub object: &'a str,
    pub repaired: i64,
    /// The health the previous delta pass concluded; `None` before the first one.
    pub previous: Option<WebhookHealth>,
    /// When the previous pass (delta or full) ended; `None` when none did.
    pub previous_pass_at: Option<DateTime<Utc>>,
    /// The newest delivery of the object the event log received.
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// The refusals of the window: the object's, and those of no known object.
    pub refused: Vec<RefusedDeliveries>,
}

impl HealthWindow<'_> {
    /// A delivery arrived when a verified one came after the previous pass ended, or when one
    /// naming the object was refused since.
    pub fn judge(self) -> PassHealth {
        let delivered = match (self.last_delivery_at, self.previous_pass_at) {
            (Some(delivery), Some(pass)) => delivery > pass,
            (delivery, None) => delivery.is_some(),
            (None, Some(_)) => false,
        };
        let refused = self.refused.iter().any(|r| r.object.as_deref() == Some(self.object) && r.refused > 0);
        PassHealth {
            previous: self.previous.unwrap_or_default(),
            current: WebhookHealth::after_delta_pass(self.repaired, delivered || refused),
            refused: self.refused,
        }
    }
}

/// A row of `sync_runs`; its JSON uses the column names.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunRow {
    pub id: i64,
    pub trigger: Trigger,
    pub mode: Mode,
    pub objects: Vec<String>,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub status: RunStatus,
    pub error: Option<String>,
    #[serde(flatten)]
    pub counts: Counts,
}

/// How many rows of an object the mirror holds, by stage, and when its last webhook came.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ObjectCounts {
    pub object: String,
    pub live: i64,
    pub soft_deleted: i64,
    pub destroyed: i64,
    pub last_webhook_at: Option<DateTime<Utc>>,
}

/// A page read by the reconciler, with where it leaves the object's checkpoint.
pub struct PageWrite<'a> {
    pub object: &'a str,
    pub changes: &'a [Change],
    /// Where the watermark moves, up and never down: the newest `updatedAt` of this page and the
    /// pages before it, once nothing before it can still fail to commit.
    pub watermark: Option<DateTime<Utc>>,
    /// The run whose counts the page adds to; `None` in a dry run, which writes nothing.
    pub run_id: Option<i64>,
    /// The run's lock. A SQLite lease is renewed in the page's own transaction, so a page commits
    /// only while its run still holds the lease, and costs no commit of its own.
    pub lock: Option<&'a ReconcilerLock>,
}

/// Proof that this process is the one reconciler; released by `Store::unlock_reconciler`. What it
/// holds is the backend's own (a lease's holder, a connection that holds an advisory lock), and
/// only the backend that made it looks inside: nothing of either backend shows here.
pub struct ReconcilerLock(Box<dyn Any + Send + Sync>);

impl ReconcilerLock {
    pub(crate) fn new<G: Any + Send + Sync>(guard: G) -> Self {
        ReconcilerLock(Box::new(guard))
    }

    /// The guard, if this lock was made by the backend whose guard is a `G`.
    pub(crate) fn guard<G: Any>(&self) -> Option<&G> {
        self.0.downcast_ref()
    }

    /// The guard by value, to release it; a lock of another backend is handed back.
    pub(crate) fn into_guard<G: Any>(self) -> Result<G, ReconcilerLock> {
        match self.0.downcast() {
            Ok(guard) => Ok(*guard),
            Err(other) => Err(ReconcilerLock(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::parse_timestamp;

    fn window(
        previous_pass: Option<&str>,
        last_delivery: Option<&str>,
        repaired: i64,
    ) -> HealthWindow<'static> {
        HealthWindow {
            object: "person",
            repaired,
            previous: Some(WebhookHealth::Ok),
            previous_pass_at: previous_pass.and_then(parse_timestamp),
            last_delivery_at: last_delivery.and_then(parse_timestamp),
            refused: Vec::new(),
        }
    }

    const PASS: &str = "2026-09-21T10:00:00.000Z";
    const BEFORE: &str = "2026-09-21T09:59:59.999Z";
    const AFTER: &str = "2026-09-21T10:00:00.001Z";

    #[test]
    fn a_pass_that_repaired_nothing_is_ok_whatever_arrived() {
        assert_eq!(window(Some(PASS), None, 0).judge().current, WebhookHealth::Ok);
        assert_eq!(window(Some(PASS), Some(AFTER), 0).judge().current, WebhookHealth::Ok);
    }

    #[test]
    fn repairs_are_lossy_when_a_delivery_arrived_since_the_previous_pass_and_silent_otherwise() {
        assert_eq!(window(Some(PASS), Some(AFTER), 2).judge().current, WebhookHealth::Lossy);
        assert_eq!(window(Some(PASS), Some(BEFORE), 2).judge().current, WebhookHealth::Silent);
        assert_eq!(window(Some(PASS), None, 2).judge().current, WebhookHealth::Silent);
        assert_eq!(window(None, Some(BEFORE), 2).judge().current, WebhookHealth::Lossy, "no pass before");
        assert_eq!(window(None, None, 2).judge().current, WebhookHealth::Silent);
    }

    #[test]
    fn a_refused_delivery_naming_the_object_arrived_but_one_naming_none_did_not() {
        let refused = |object: Option<&str>| RefusedDeliveries {
            object: object.map(str::to_owned),
            reason: "bad_signature".into(),
            refused: 3,
        };
        let mut named = window(Some(PASS), Some(BEFORE), 2);
        named.refused = vec![refused(Some("person"))];
        assert_eq!(named.judge().current, WebhookHealth::Lossy, "a wrong secret is not silence");
        let mut unnamed = window(Some(PASS), Some(BEFORE), 2);
        unnamed.refused = vec![refused(None)];
        let verdict = unnamed.judge();
        assert_eq!((verdict.previous, verdict.current), (WebhookHealth::Ok, WebhookHealth::Silent));
        assert_eq!(verdict.refused, vec![refused(None)], "handed on, for the warning");
    }
}
