//! Two writers: the daemon noticing that someone else keeps undoing its writes.
//!
//! bbsync assumes one writer per organization: the daemon *or* a CI `apply`. When both run,
//! each reverts the other for ever and nobody is told. The daemon remembers what it last wrote
//! to each project; a later plan that must write the same values again means someone undid
//! them. [`UNDOS`] such undos within [`WINDOW`] make the project *contested*: the daemon stops
//! writing it (it is held, its drift still reported) and says so at WARN, in `/status` and in
//! `bbsync_contested_projects`, so that a human can decide. A change of the manifest in force,
//! or a restart, lifts it.
//!
//! Pure: the caller passes the time (`tokio::time::Instant`, so paused time drives the window).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use crate::apply::Outcome;
use crate::model::field::{Field, FieldValue};
use crate::model::ids::ProjectId;
use crate::plan::{Action, ActionKind, Plan};

/// Undos that make a project contested.
pub(crate) const UNDOS: usize = 3;

/// The window they must fall in.
pub(crate) const WINDOW: Duration = Duration::from_secs(3600);

/// What the daemon wrote, and who undid it.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    /// Per project, the values of its last write (of the managed public fields).
    written: HashMap<ProjectId, BTreeMap<Field, FieldValue>>,
    /// Per project, when its writes were seen undone, within [`WINDOW`].
    undone: HashMap<ProjectId, VecDeque<Instant>>,
    /// Contested projects, with why.
    contested: BTreeMap<ProjectId, String>,
}

impl Writers {
    /// Looks at a fresh plan: each project whose planned write puts back values the daemon
    /// already wrote was undone by someone else. Returns the projects that became contested
    /// now, with why.
    pub(crate) fn observe(&mut self, plan: &Plan, now: Instant) -> Vec<(ProjectId, String)> {
        let mut newly = Vec::new();
        for action in plan.actions.iter().filter(|a| a.action.writes()) {
            let Some(undone) = self.undone_fields(action) else {
                continue;
            };
            // One undo per write of ours: a run that plans the revert and then writes nothing
            // (a guard, a superseded manifest) must not count the same undo again next run.
            self.written.remove(&action.project);
            let times = self.undone.entry(action.project.clone()).or_default();
            times.push_back(now);
            while times
                .front()
                .is_some_and(|t| now.saturating_duration_since(*t) > WINDOW)
            {
                times.pop_front();
            }
            if times.len() >= UNDOS && !self.contested.contains_key(&action.project) {
                let why = format!(
                    "another writer is changing this project: bbsync's write of {undone} was undone {} times within {} minutes; bbsync stops writing it until the manifest changes or the daemon restarts (run one writer: this daemon or a CI apply)",
                    times.len(),
                    WINDOW.as_secs() / 60
                );
                self.contested.insert(action.project.clone(), why.clone());
                newly.push((action.project.clone(), why));
            }
        }
        newly
    }

    /// The fields of the daemon's last write to the project that `action` writes back, named
    /// for people; `None` when it does not undo one.
    fn undone_fields(&self, action: &Action) -> Option<String> {
        let written = self.written.get(&action.project)?;
        let names: Vec<&str> = match action.action {
            ActionKind::Update => action
                .fields
                .iter()
                .filter(|c| written.get(&c.name) == Some(&c.after))
                .map(|c| c.name.name())
                .collect(),
            // The integration it made was deleted, or changed past updating.
            ActionKind::Create | ActionKind::Replace => {
                let after = action.after.as_ref()?;
                if &after.fields != written {
                    return None;
                }
                vec!["the integration"]
            }
            _ => Vec::new(),
        };
        (!names.is_empty()).then(|| names.join(", "))
    }

    /// Notes how a write ended: what it wrote is what the next plans compare with.
    pub(crate) fn wrote(&mut self, action: &Action, outcome: Outcome) {
        match outcome {
            Outcome::Created | Outcome::Replaced => {
                if let Some(after) = &action.after {
                    self.written
                        .insert(action.project.clone(), after.fields.clone());
                }
            }
            Outcome::Updated => {
                let written = self.written.entry(action.project.clone()).or_default();
                for change in &action.fields {
                    written.insert(change.name, change.after.clone());
                }
            }
            Outcome::Deleted if !action.pruned => {
                self.written.remove(&action.project);
            }
            _ => {}
        }
    }

    /// The contested projects, with why: held by the daemon.
    pub(crate) fn contested(&self) -> &BTreeMap<ProjectId, String> {
        &self.contested
    }

    /// The manifest in force changed: its values are new, so nothing is contested any more.
    pub(crate) fn reset(&mut self) {
        self.contested.clear();
        self.undone.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::FieldChange;

    fn update(project: &str, value: bool) -> Action {
        let mut action = crate::plan::tests_support::action(project, ActionKind::Update);
        action.fields = vec![FieldChange {
            name: Field::BuildPullRequests,
            before: Some(FieldValue::Bool(!value)),
            after: FieldValue::Bool(value),
        }];
        action
    }

    fn plan(actions: Vec<Action>) -> Plan {
        let mut plan = crate::plan::tests_support::empty_plan();
        plan.actions = actions;
        plan
    }

    #[tokio::test(start_paused = true)]
    async fn three_undos_within_an_hour_contest_the_project() {
        let mut writers = Writers::default();
        let revert = update("p1", true);
        // The first write is the daemon's own: nothing undone yet.
        assert!(
            writers
                .observe(&plan(vec![revert.clone()]), Instant::now())
                .is_empty()
        );
        writers.wrote(&revert, Outcome::Updated);
        for undo in 1..=UNDOS {
            tokio::time::advance(Duration::from_secs(600)).await;
            let newly = writers.observe(&plan(vec![revert.clone()]), Instant::now());
            if undo < UNDOS {
                assert!(newly.is_empty(), "undo {undo}");
                writers.wrote(&revert, Outcome::Updated);
            } else {
                assert_eq!(newly.len(), 1);
                assert!(newly[0].1.contains("build_pull_requests"), "{}", newly[0].1);
                assert!(newly[0].1.contains("another writer"), "{}", newly[0].1);
            }
        }
        assert!(writers.contested().contains_key(&revert.project));
        // Reported once, not on every run.
        assert!(
            writers
                .observe(&plan(vec![revert.clone()]), Instant::now())
                .is_empty()
        );
        writers.reset();
        assert!(writers.contested().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn undos_spread_over_more_than_an_hour_do_not() {
        let mut writers = Writers::default();
        let revert = update("p1", true);
        writers.wrote(&revert, Outcome::Updated);
        for _ in 0..10 {
            tokio::time::advance(Duration::from_secs(1900)).await;
            assert!(
                writers
                    .observe(&plan(vec![revert.clone()]), Instant::now())
                    .is_empty()
            );
            writers.wrote(&revert, Outcome::Updated);
        }
        assert!(writers.contested().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_undo_counts_once_until_the_daemon_writes_again() {
        let mut writers = Writers::default();
        let revert = update("p1", true);
        writers.wrote(&revert, Outcome::Updated);
        // Runs that plan the revert but write nothing (a guard blocks them) see one undo.
        for _ in 0..10 {
            assert!(
                writers
                    .observe(&plan(vec![revert.clone()]), Instant::now())
                    .is_empty()
            );
        }
        assert!(writers.contested().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_desired_value_is_no_undo() {
        let mut writers = Writers::default();
        writers.wrote(&update("p1", true), Outcome::Updated);
        // The manifest now wants `false`: writing it undoes nothing of anyone's.
        for _ in 0..5 {
            let newly = writers.observe(&plan(vec![update("p1", false)]), Instant::now());
            assert!(newly.is_empty());
        }
        assert!(writers.contested().is_empty());
        // A failed write records nothing.
        let mut other = Writers::default();
        other.wrote(&update("p2", true), Outcome::Failed);
        for _ in 0..5 {
            other.observe(&plan(vec![update("p2", true)]), Instant::now());
        }
        assert!(other.contested().is_empty());
    }
}
