//! The simulated workspace: the fake Twenty server holding sample companies, people and
//! opportunities, and the changes a busy team makes to them.

use chrono::Utc;
use fake_twenty::FakeTwenty;
use fastrand::Rng;
use serde_json::Value;

use super::samples::{self, SampleObject};

/// Records at start: a screenful of each object, and enough that a few destroys are a small share
/// of any of them.
const SEED_COMPANIES: usize = 12;
const SEED_PEOPLE: usize = 36;
const SEED_OPPORTUNITIES: usize = 18;

/// What a change does to a record, as the last word of Twenty's `eventName` says it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Created,
    Updated,
    /// A soft delete: the record goes to the trash.
    Deleted,
    Restored,
    /// A hard delete, from the trash.
    Destroyed,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Deleted => "deleted",
            Action::Restored => "restored",
            Action::Destroyed => "destroyed",
        }
    }

    /// The action for a roll of 0..100, among what the object's records allow: its live records
    /// and those in its trash. Updates are most of a team's work; about one change in ten
    /// empties something from the trash, and so the trash stays small.
    pub fn pick(roll: u32, live: usize, trashed: usize) -> Action {
        let wanted = match roll {
            0..15 => Action::Created,
            15..70 => Action::Updated,
            70..84 => Action::Deleted,
            84..90 => Action::Restored,
            _ => Action::Destroyed,
        };
        match wanted {
            Action::Updated | Action::Deleted if live == 0 => Action::Created,
            Action::Restored | Action::Destroyed if trashed == 0 => {
                if live == 0 {
                    Action::Created
                } else {
                    Action::Updated
                }
            }
            wanted => wanted,
        }
    }
}

/// One change made in the workspace: what its webhook delivery carries.
#[derive(Debug, Clone)]
pub struct Change {
    pub object: SampleObject,
    pub action: Action,
    /// The record after the change; before it, for a destroy (as Twenty sends them).
    pub record: Value,
    /// The fields an update changed (Twenty's `updatedFields`), `deletedAt` for a soft delete.
    pub updated_fields: Vec<&'static str>,
}

impl Change {
    /// Twenty's `eventName`: `person.updated`.
    pub fn event_name(&self) -> String {
        format!("{}.{}", self.object.singular(), self.action.as_str())
    }

    pub fn record_id(&self) -> &str {
        self.record["id"].as_str().unwrap_or_default()
    }
}

pub struct Workspace {
    twenty: FakeTwenty,
    rng: Rng,
    /// How many records were created so far: the next one's `position`.
    created: usize,
}

impl Workspace {
    /// Starts the fake Twenty server on 127.0.0.1 and fills it with sample records.
    pub async fn start(rng: Rng) -> Workspace {
        let mut workspace = Workspace { twenty: FakeTwenty::start().await, rng, created: 0 };
        for _ in 0..SEED_COMPANIES {
            workspace.create(SampleObject::Company);
        }
        for _ in 0..SEED_PEOPLE {
            workspace.create(SampleObject::Person);
        }
        for _ in 0..SEED_OPPORTUNITIES {
            workspace.create(SampleObject::Opportunity);
        }
        workspace
    }

    /// The base URL of its REST and metadata API, `http://127.0.0.1:PORT`.
    pub fn api_url(&self) -> &str {
        self.twenty.url()
    }

    /// The API key it accepts.
    pub fn api_key(&self) -> &'static str {
        FakeTwenty::API_KEY
    }

    /// The records of `object` Twenty holds now, soft-deleted ones included.
    pub fn records(&self, object: SampleObject) -> Vec<Value> {
        self.twenty.records(object.singular())
    }

    /// Makes one change to a record of a random object.
    pub fn change(&mut self) -> Change {
        let object = SampleObject::ALL[self.rng.usize(..SampleObject::ALL.len())];
        let (live, trashed): (Vec<Value>, Vec<Value>) =
            self.records(object).into_iter().partition(|record| record["deletedAt"].is_null());
        let action = Action::pick(self.rng.u32(0..100), live.len(), trashed.len());
        let singular = object.singular();
        let mut pick = |among: &[Value]| among[self.rng.usize(..among.len())].clone();
        let id_of = |record: &Value| record["id"].as_str().unwrap_or_default().to_owned();
        let (record, updated_fields) = match action {
            Action::Created => (self.create(object), Vec::new()),
            Action::Updated => {
                let target = pick(&live);
                let (fields, updated) = samples::edit(&mut self.rng, object, &target);
                (self.twenty.update(singular, &id_of(&target), fields), updated)
            }
            Action::Deleted => (self.twenty.soft_delete(singular, &id_of(&pick(&live))), vec!["deletedAt"]),
            Action::Restored => (self.twenty.restore(singular, &id_of(&pick(&trashed))), vec!["deletedAt"]),
            Action::Destroyed => (self.twenty.destroy(singular, &id_of(&pick(&trashed))), Vec::new()),
        };
        Change { object, action, record, updated_fields }
    }

    /// Creates a sample record of `object`, linked to a live company when it has a relation.
    fn create(&mut self, object: SampleObject) -> Value {
        self.created += 1;
        let position = self.created;
        let fields = match object {
            SampleObject::Company => samples::company(&mut self.rng, position),
            SampleObject::Person => {
                let company = self.live_company();
                samples::person(&mut self.rng, position, &company)
            }
            SampleObject::Opportunity => {
                let company = self.live_company();
                samples::opportunity(&mut self.rng, position, &company, Utc::now())
            }
        };
        self.twenty.create(object.singular(), fields)
    }

    /// A company that is not in the trash, created when there is none.
    fn live_company(&mut self) -> Value {
        let mut live = self.records(SampleObject::Company);
        live.retain(|company| company["deletedAt"].is_null());
        match self.rng.choice(live) {
            Some(company) => company,
            None => self.create(SampleObject::Company),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_the_roll_and_fall_back_to_what_the_records_allow() {
        let roll = |action: Action| match action {
            Action::Created => 0,
            Action::Updated => 15,
            Action::Deleted => 70,
            Action::Restored => 84,
            Action::Destroyed => 99,
        };
        for action in [Action::Created, Action::Updated, Action::Deleted, Action::Restored, Action::Destroyed]
        {
            assert_eq!(Action::pick(roll(action), 5, 5), action, "{action:?} with records of both kinds");
        }
        assert_eq!(Action::pick(roll(Action::Updated), 0, 5), Action::Created, "nothing live to update");
        assert_eq!(Action::pick(roll(Action::Deleted), 0, 5), Action::Created, "nothing live to delete");
        assert_eq!(Action::pick(roll(Action::Restored), 5, 0), Action::Updated, "an empty trash");
        assert_eq!(Action::pick(roll(Action::Destroyed), 5, 0), Action::Updated, "an empty trash");
        assert_eq!(Action::pick(roll(Action::Destroyed), 0, 0), Action::Created, "an empty object");
    }

    #[test]
    fn a_hundred_rolls_are_mostly_updates_with_a_few_destroys() {
        let count = |wanted: Action| (0..100).filter(|&roll| Action::pick(roll, 5, 5) == wanted).count();
        assert_eq!(count(Action::Updated), 55);
        assert_eq!(count(Action::Destroyed), 10);
        assert_eq!(count(Action::Created) + count(Action::Deleted) + count(Action::Restored), 35);
    }

    #[tokio::test]
    async fn the_workspace_starts_with_its_samples_and_every_change_is_what_twenty_now_holds() {
        let mut workspace = Workspace::start(Rng::with_seed(7)).await;
        let counts = SampleObject::ALL.map(|object| workspace.records(object).len());
        assert_eq!(counts, [SEED_PEOPLE, SEED_COMPANIES, SEED_OPPORTUNITIES]);
        let person = &workspace.records(SampleObject::Person)[0];
        let company_id = person["companyId"].as_str().expect("a person works at a company");
        let companies = workspace.records(SampleObject::Company);
        assert!(companies.iter().any(|company| company["id"] == company_id), "its company exists");

        let mut seen = Vec::new();
        for _ in 0..300 {
            let change = workspace.change();
            let singular = change.object.singular();
            assert!(change.event_name().starts_with(&format!("{singular}.")), "{}", change.event_name());
            let now = workspace.twenty.record(singular, change.record_id());
            match change.action {
                Action::Destroyed => {
                    assert_eq!(now, None, "destroyed");
                    assert!(!change.record["deletedAt"].is_null(), "destroyed from the trash");
                }
                Action::Deleted => {
                    assert_eq!(now.as_ref(), Some(&change.record));
                    assert!(!change.record["deletedAt"].is_null());
                }
                Action::Created | Action::Updated | Action::Restored => {
                    assert_eq!(now.as_ref(), Some(&change.record), "{}", change.event_name());
                    assert!(change.record["deletedAt"].is_null());
                }
            }
            if change.action == Action::Updated {
                assert_eq!(change.updated_fields.len(), 1);
            }
            seen.push(change.action);
        }
        for action in [Action::Created, Action::Updated, Action::Deleted, Action::Restored, Action::Destroyed]
        {
            assert!(seen.contains(&action), "{action:?} happens");
        }
    }

    #[tokio::test]
    async fn an_update_changes_the_field_it_names() {
        let mut workspace = Workspace::start(Rng::with_seed(11)).await;
        let mut updates = 0;
        while updates < 50 {
            let before: Vec<Vec<Value>> = SampleObject::ALL.map(|object| workspace.records(object)).into();
            let change = workspace.change();
            if change.action != Action::Updated {
                continue;
            }
            updates += 1;
            let index = SampleObject::ALL.iter().position(|&o| o == change.object).expect("an object");
            let old = before[index].iter().find(|r| r["id"] == change.record["id"]).expect("it existed");
            let field = change.updated_fields[0];
            assert_ne!(old[field], change.record[field], "{} changed {field}", change.event_name());
        }
    }
}
