//! The apply rule: which of two versions of a row wins. It is what makes the mirror converge
//! whatever Twenty does (duplicates, drops, reordering, replica lag).
//!
//! This Rust copy reduces several changes to one row inside a batch before they reach the database
//! (PostgreSQL refuses to touch a row twice in one `INSERT … ON CONFLICT`), and on SQLite it decides
//! every write: SQLite has one writer, and the batch holds the write lock from the read of the
//! stored rows to the write. PostgreSQL's writers run concurrently, so there the rule is also the
//! guard of its upsert (`twenty_mirror_supersedes`); the property tests hold the copies together.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::change::{Change, Source, Stage};

/// What applying one change did to the mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApplyOutcome {
    /// The row did not exist and was created.
    Inserted,
    /// The row existed and was overwritten.
    Updated,
    /// The row already held exactly this change.
    Duplicate,
    /// The row holds a version the rule puts later; the change was ignored.
    Stale,
}

impl ApplyOutcome {
    /// Whether the mirror changed.
    pub fn changed(self) -> bool {
        matches!(self, ApplyOutcome::Inserted | ApplyOutcome::Updated)
    }
}

/// The parts of a row the rule compares, whether stored or incoming.
#[derive(Debug, Clone, Copy)]
pub struct Version<'a> {
    pub updated_at: DateTime<Utc>,
    pub stage: Stage,
    pub source: Source,
    pub data: &'a str,
    pub partial: bool,
}

impl<'a> From<&'a Change> for Version<'a> {
    fn from(c: &'a Change) -> Self {
        Version {
            updated_at: c.updated_at,
            stage: c.stage(),
            source: c.source,
            data: &c.data,
            partial: c.partial,
        }
    }
}

impl Version<'_> {
    /// This version as the stored row that `incoming` meets.
    fn as_stored(&self, incoming: &Version<'_>) -> StoredRow {
        StoredRow {
            updated_at: self.updated_at,
            stage: self.stage,
            source: self.source,
            same_data: self.data == incoming.data,
        }
    }
}

/// A stored row as the rule reads it, its data already compared with the incoming change's: the
/// database compares the text where it lies instead of handing it back.
#[derive(Debug, Clone, Copy)]
pub struct StoredRow {
    pub updated_at: DateTime<Utc>,
    pub stage: Stage,
    pub source: Source,
    pub same_data: bool,
}

impl StoredRow {
    /// A tombstone the reconciler inferred from a record's absence in a sweep: an inference, not an
    /// event, so a later read that returns the record makes it live again.
    fn is_inferred_tombstone(&self) -> bool {
        self.stage == Stage::Destroyed && self.source == Source::Reconcile
    }
}

/// Whether `incoming` overwrites `stored`.
pub fn supersedes(incoming: &Version<'_>, stored: &StoredRow) -> bool {
    use std::cmp::Ordering::*;
    if stored.is_inferred_tombstone()
        && incoming.source == Source::Reconcile
        && incoming.stage != Stage::Destroyed
    {
        return incoming.updated_at >= stored.updated_at;
    }
    match (incoming.updated_at.cmp(&stored.updated_at), incoming.stage.cmp(&stored.stage)) {
        (Greater, _) => true,
        (Less, _) => false,
        (Equal, Greater) => true,
        (Equal, Less) => false,
        (Equal, Equal) => {
            // Twenty can change a row without moving updatedAt (a relation nulled when its target is
            // destroyed): a reconciler read is the truth and overwrites different data.
            let read_differs = incoming.source == Source::Reconcile && !incoming.partial && !stored.same_data;
            // A destroyed event confirms a tombstone the reconciler only inferred, making it final.
            let confirms_inference = stored.is_inferred_tombstone() && incoming.source == Source::Webhook;
            read_differs || confirms_inference
        }
    }
}

/// Whether `incoming` is a repeat of `stored`: same version, same stage, same data.
pub fn identical(incoming: &Version<'_>, stored: &StoredRow) -> bool {
    incoming.updated_at == stored.updated_at
        && incoming.stage == stored.stage
        && (incoming.partial || stored.same_data)
}

/// What applying `incoming` to the row as stored does, when nothing else writes the row in between.
pub fn outcome(incoming: &Version<'_>, stored: Option<&StoredRow>) -> ApplyOutcome {
    match stored {
        None => ApplyOutcome::Inserted,
        Some(stored) if supersedes(incoming, stored) => ApplyOutcome::Updated,
        Some(stored) if identical(incoming, stored) => ApplyOutcome::Duplicate,
        Some(_) => ApplyOutcome::Stale,
    }
}

/// What the reduction decided for one change of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// The change goes to the database for its row.
    Winner,
    /// Another change of the batch (by index) supersedes this one.
    LostTo { winner: usize, identical: bool },
}

/// A batch reduced to one change per row.
#[derive(Debug)]
pub struct Reduced {
    /// Indexes of the changes that go to the database, in `(object, id)` order, so that concurrent
    /// batches lock rows in the same order and cannot deadlock.
    pub winners: Vec<usize>,
    fates: Vec<Fate>,
}

impl Reduced {
    /// Reduces `changes` by the rule, as if they were applied one after another in order.
    pub fn new(changes: &[&Change]) -> Self {
        let mut fates = vec![Fate::Winner; changes.len()];
        let mut current: HashMap<(&str, &str), usize> = HashMap::with_capacity(changes.len());
        for (i, change) in changes.iter().enumerate() {
            let key = (change.object.as_str(), change.id.as_str());
            match current.get(&key).copied() {
                None => {
                    current.insert(key, i);
                }
                Some(held) => {
                    let incoming = Version::from(*change);
                    if supersedes(&incoming, &Version::from(changes[held]).as_stored(&incoming)) {
                        fates[held] = Fate::LostTo { winner: i, identical: false };
                        current.insert(key, i);
                    } else {
                        fates[i] = Fate::LostTo { winner: held, identical: false };
                    }
                }
            }
        }
        // A change that lost to one that later lost too is reported against the final winner.
        for i in 0..fates.len() {
            if let Fate::LostTo { mut winner, .. } = fates[i] {
                while let Fate::LostTo { winner: next, .. } = fates[winner] {
                    winner = next;
                }
                let incoming = Version::from(changes[i]);
                let repeat = identical(&incoming, &Version::from(changes[winner]).as_stored(&incoming));
                fates[i] = Fate::LostTo { winner, identical: repeat };
            }
        }
        let mut winners: Vec<usize> = current.into_values().collect();
        winners.sort_by(|&a, &b| {
            (&changes[a].object, &changes[a].id).cmp(&(&changes[b].object, &changes[b].id))
        });
        Reduced { winners, fates }
    }

    /// Every change's outcome, given the database's outcome for each winner (in `winners` order).
    pub fn outcomes(&self, winner_outcomes: &[ApplyOutcome]) -> Vec<ApplyOutcome> {
        let by_index: HashMap<usize, ApplyOutcome> =
            self.winners.iter().copied().zip(winner_outcomes.iter().copied()).collect();
        self.fates
            .iter()
            .enumerate()
            .map(|(i, fate)| match *fate {
                Fate::Winner => by_index[&i],
                // A repeat of what was written, or of what was already there, is a duplicate.
                Fate::LostTo { winner, identical: true } if by_index[&winner] != ApplyOutcome::Stale => {
                    ApplyOutcome::Duplicate
                }
                Fate::LostTo { .. } => ApplyOutcome::Stale,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::change::parse_timestamp;
    use serde_json::json;

    fn at(minute: u32) -> String {
        format!("2026-09-21T10:{minute:02}:00.000Z")
    }

    fn upsert(id: &str, minute: u32, name: &str, source: Source) -> Change {
        Change::upsert("person", &json!({"id": id, "updatedAt": at(minute), "name": name}), source).unwrap()
    }

    fn destroy(id: &str, minute: u32) -> Change {
        let record = json!({"id": id, "updatedAt": at(minute)});
        Change::destroy("person", &record, parse_timestamp(&at(minute + 1)).unwrap()).unwrap()
    }

    fn wins(a: &Change, b: &Change) -> bool {
        let incoming = Version::from(a);
        supersedes(&incoming, &Version::from(b).as_stored(&incoming))
    }

    #[test]
    fn newer_versions_win_and_older_ones_do_not() {
        let (old, new) = (upsert("a", 1, "x", Source::Webhook), upsert("a", 2, "y", Source::Webhook));
        assert!(wins(&new, &old));
        assert!(!wins(&old, &new));
    }

    #[test]
    fn at_the_same_version_the_later_stage_wins() {
        let live = upsert("a", 1, "x", Source::Webhook);
        let deleted = Change::soft_delete(
            "person",
            &json!({"id": "a", "updatedAt": at(1), "deletedAt": null}),
            parse_timestamp(&at(2)).unwrap(),
        )
        .unwrap();
        let destroyed = destroy("a", 1);
        assert!(wins(&deleted, &live) && !wins(&live, &deleted));
        assert!(wins(&destroyed, &deleted) && !wins(&deleted, &destroyed));
    }

    #[test]
    fn a_reconciler_read_overwrites_different_data_at_the_same_version_and_a_webhook_does_not() {
        let stored = upsert("a", 1, "x", Source::Webhook);
        assert!(wins(&upsert("a", 1, "y", Source::Reconcile), &stored));
        assert!(!wins(&upsert("a", 1, "x", Source::Reconcile), &stored));
        assert!(!wins(&upsert("a", 1, "y", Source::Webhook), &stored));
    }

    #[test]
    fn an_inferred_tombstone_yields_to_a_read_but_an_event_tombstone_is_final() {
        let mut inferred = upsert("a", 1, "x", Source::Reconcile);
        inferred.destroyed_at = parse_timestamp(&at(5));
        assert!(wins(&upsert("a", 1, "x", Source::Reconcile), &inferred));
        assert!(!wins(&upsert("a", 1, "x", Source::Webhook), &inferred));
        assert!(wins(&destroy("a", 1), &inferred));
        let event = destroy("a", 1);
        assert!(!wins(&upsert("a", 1, "x", Source::Reconcile), &event));
    }

    #[test]
    fn against_a_stored_row_a_change_inserts_updates_repeats_or_is_stale() {
        use ApplyOutcome::*;
        let stored = upsert("a", 2, "x", Source::Webhook);
        let outcome_over = |incoming: &Change, stored: Option<&Change>| {
            let incoming = Version::from(incoming);
            outcome(&incoming, stored.map(|s| Version::from(s).as_stored(&incoming)).as_ref())
        };
        assert_eq!(outcome_over(&stored, None), Inserted);
        assert_eq!(outcome_over(&upsert("a", 3, "y", Source::Webhook), Some(&stored)), Updated);
        assert_eq!(outcome_over(&upsert("a", 2, "x", Source::Webhook), Some(&stored)), Duplicate);
        assert_eq!(outcome_over(&upsert("a", 1, "w", Source::Webhook), Some(&stored)), Stale);
        assert_eq!(outcome_over(&upsert("a", 2, "z", Source::Webhook), Some(&stored)), Stale);
        assert_eq!(outcome_over(&upsert("a", 2, "z", Source::Reconcile), Some(&stored)), Updated);
    }

    #[test]
    fn a_batch_reduces_to_the_newest_change_per_row_in_key_order() {
        let changes = [
            upsert("b", 2, "b2", Source::Webhook),
            upsert("a", 3, "a3", Source::Webhook),
            upsert("b", 1, "b1", Source::Webhook),
            upsert("b", 2, "b2", Source::Webhook),
            upsert("b", 4, "b4", Source::Webhook),
        ];
        let reduced = Reduced::new(&changes.iter().collect::<Vec<_>>());
        assert_eq!(reduced.winners, vec![1, 4]);
        let outcomes = reduced.outcomes(&[ApplyOutcome::Inserted, ApplyOutcome::Updated]);
        use ApplyOutcome::*;
        assert_eq!(outcomes, vec![Stale, Inserted, Stale, Stale, Updated]);
    }

    #[test]
    fn repeats_of_the_winner_are_duplicates_unless_the_winner_was_stale() {
        let changes = [upsert("a", 1, "x", Source::Webhook), upsert("a", 1, "x", Source::Webhook)];
        let reduced = Reduced::new(&changes.iter().collect::<Vec<_>>());
        assert_eq!(reduced.winners, vec![0]);
        use ApplyOutcome::*;
        assert_eq!(reduced.outcomes(&[Inserted]), vec![Inserted, Duplicate]);
        assert_eq!(reduced.outcomes(&[Duplicate]), vec![Duplicate, Duplicate]);
        assert_eq!(reduced.outcomes(&[Stale]), vec![Stale, Stale]);
    }

    #[test]
    fn a_repeat_of_a_change_that_lost_later_in_the_batch_is_stale() {
        let x = upsert("a", 1, "x", Source::Webhook);
        let changes = [&x, &x, &upsert("a", 2, "y", Source::Webhook)];
        let reduced = Reduced::new(&changes);
        assert_eq!(reduced.winners, vec![2]);
        use ApplyOutcome::*;
        assert_eq!(reduced.outcomes(&[Updated]), vec![Stale, Stale, Updated]);
    }
}
