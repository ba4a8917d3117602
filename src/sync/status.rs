//! What operators see: per object, the rows the mirror holds, the last webhook, the webhooks'
//! health and the deliveries refused since the last pass, the reconciler's position and how stale
//! the object is. Shared by `twenty-mirror status` and `GET /admin/status`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::mirror::{Counts, RunRow, WebhookHealth};
use crate::mirror::{Store, StoreError};

#[derive(Debug, Clone, Serialize)]
pub struct StatusReport {
    pub generated_at: DateTime<Utc>,
    /// The run going on now, if any.
    pub running_run: Option<i64>,
    /// The newest run, finished or not.
    pub last_run: Option<RunRow>,
    pub objects: Vec<ObjectStatus>,
    /// Deliveries refused since the last pass of any object that named no object the mirror
    /// knows (or none at all), by reason.
    pub refused_without_object: BTreeMap<String, i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ObjectStatus {
    pub object: String,
    /// Discovered in Twenty and chosen for mirroring (false for objects known only from webhooks).
    pub mirrored: bool,
    pub live: i64,
    pub soft_deleted: i64,
    pub destroyed: i64,
    pub last_webhook_at: Option<DateTime<Utc>>,
    pub watermark: Option<DateTime<Utc>>,
    pub last_delta_at: Option<DateTime<Utc>>,
    pub last_full_at: Option<DateTime<Utc>>,
    /// Seconds since the last complete reconcile pass; null when it was never reconciled.
    pub stale_seconds: Option<i64>,
    pub last_run_id: Option<i64>,
    /// The counts of the object's last complete pass.
    pub last_counts: Option<Counts>,
    /// What the last delta pass says of the object's webhooks.
    pub webhook_health: WebhookHealth,
    /// Deliveries naming the object refused since its last pass, by reason (`bad_signature`, …).
    pub refused_since_last_pass: BTreeMap<String, i64>,
    /// The object's typed view as a reader names it (`person`, `twenty.person`), when it has one.
    pub view: Option<String>,
    /// Why the view's name is not the one the rule gives (`person_2`: `person` is taken by a table
    /// the service did not create), when it is not.
    pub view_note: Option<String>,
}

pub async fn status(store: &Store, now: DateTime<Utc>) -> Result<StatusReport, StoreError> {
    let mut objects: Vec<ObjectStatus> = store
        .objects()
        .await?
        .into_iter()
        .map(|o| ObjectStatus { object: o.name_singular, mirrored: o.mirrored, ..ObjectStatus::default() })
        .collect();
    fn entry<'a>(objects: &'a mut Vec<ObjectStatus>, name: &str) -> &'a mut ObjectStatus {
        match objects.iter().position(|o| o.object == name) {
            Some(i) => &mut objects[i],
            None => {
                objects.push(ObjectStatus { object: name.to_owned(), ..ObjectStatus::default() });
                objects.last_mut().expect("just pushed")
            }
        }
    }
    for counts in store.object_counts().await? {
        let o = entry(&mut objects, &counts.object);
        o.live = counts.live;
        o.soft_deleted = counts.soft_deleted;
        o.destroyed = counts.destroyed;
        o.last_webhook_at = counts.last_webhook_at;
    }
    for state in store.sync_states().await? {
        let o = entry(&mut objects, &state.object);
        o.watermark = state.watermark;
        o.last_delta_at = state.last_delta_at;
        o.last_full_at = state.last_full_at;
        o.stale_seconds = state.last_delta_at.max(state.last_full_at).map(|at| (now - at).num_seconds());
        o.last_run_id = state.last_run_id;
        o.last_counts = state.last_counts;
        o.webhook_health = state.webhook_health;
    }
    let mut refused_without_object = BTreeMap::new();
    for refused in store.refusals().await? {
        let by_reason = match &refused.object {
            Some(object) => &mut entry(&mut objects, object).refused_since_last_pass,
            None => &mut refused_without_object,
        };
        by_reason.insert(refused.reason, refused.refused);
    }
    for view in store.views().await? {
        let o = entry(&mut objects, &view.object);
        o.view = Some(store.view_reader_name(&view.name));
        o.view_note = view.plan.as_ref().and_then(|plan| {
            let (wanted, conflict) = (plan.wanted_name.as_ref()?, plan.conflict.as_ref()?);
            Some(format!("not {}: {}", store.view_reader_name(wanted), conflict.describe(wanted)))
        });
    }
    objects.sort_by(|a, b| a.object.cmp(&b.object));
    Ok(StatusReport {
        generated_at: now,
        running_run: store.running_run().await?,
        last_run: store.runs(1).await?.into_iter().next(),
        objects,
        refused_without_object,
    })
}

impl StatusReport {
    /// A table for a terminal.
    pub fn to_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<24} {:<24} {:>8} {:>8} {:>9} {:>9} {:<24} {:<8} {:<24} {:>8}  REFUSED SINCE LAST PASS",
            "OBJECT",
            "VIEW",
            "LIVE",
            "DELETED",
            "DESTROYED",
            "REPAIRED",
            "LAST WEBHOOK",
            "HEALTH",
            "WATERMARK",
            "STALE",
        );
        for o in &self.objects {
            let name = if o.mirrored { o.object.clone() } else { format!("{} (not mirrored)", o.object) };
            let _ = writeln!(
                out,
                "{:<24} {:<24} {:>8} {:>8} {:>9} {:>9} {:<24} {:<8} {:<24} {:>8}  {}",
                name,
                match (&o.view, &o.view_note) {
                    (Some(view), Some(_)) => format!("{view} (*)"),
                    (Some(view), None) => view.clone(),
                    (None, _) => "-".to_owned(),
                },
                o.live,
                o.soft_deleted,
                o.destroyed,
                o.last_counts.map_or("-".to_owned(), |c| c.repaired.to_string()),
                time(o.last_webhook_at),
                o.webhook_health.as_str(),
                time(o.watermark),
                o.stale_seconds.map_or("never".to_owned(), human_seconds),
                by_reason(&o.refused_since_last_pass),
            );
        }
        if !self.refused_without_object.is_empty() {
            let _ = writeln!(
                out,
                "\nrefused since the last pass, naming no known object: {}",
                by_reason(&self.refused_without_object)
            );
        }
        for o in &self.objects {
            if let (Some(view), Some(note)) = (&o.view, &o.view_note) {
                let _ = writeln!(out, "(*) view {view} of {}: {note}", o.object);
            }
        }
        match &self.last_run {
            Some(run) => {
                let _ = writeln!(
                    out,
                    "\nlast run {}: {} {} {}, started {}{}; fetched {}, repaired {}",
                    run.id,
                    run.trigger.as_str(),
                    run.mode.as_str(),
                    run.status.as_str(),
                    time(Some(run.started_at)),
                    run.error.as_deref().map(|e| format!(", error: {e}")).unwrap_or_default(),
                    run.counts.fetched,
                    run.counts.repaired,
                );
            }
            None => out.push_str("\nno reconcile has run yet\n"),
        }
        out
    }
}

/// `bad_signature 3, malformed 1`, or `-`.
fn by_reason(refused: &BTreeMap<String, i64>) -> String {
    if refused.is_empty() {
        return "-".to_owned();
    }
    let counts: Vec<String> = refused.iter().map(|(reason, n)| format!("{reason} {n}")).collect();
    counts.join(", ")
}

fn time(at: Option<DateTime<Utc>>) -> String {
    at.map_or("-".to_owned(), |at| at.format("%Y-%m-%d %H:%M:%SZ").to_string())
}

fn human_seconds(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}
