//! The daemon's audit trail: what each of its writes changed, field by field.
//!
//! The daemon is the one writer nobody watches, so every write it makes is logged at info (one
//! event per field, with `--log-format json` as structured fields) and kept in `/status` (the
//! last [`KEPT`] changes). Values are the plan's: public fields as they are, the write-only
//! secret as its `${NAME}` reference, never a value.

use serde::Serialize;

use crate::apply::{ActionReport, Outcome};
use crate::model::field::FieldValue;
use crate::model::ids::ProjectId;
use crate::plan::{Action, ActionKind};

/// Changes kept in `/status`.
pub(crate) const KEPT: usize = 100;

/// One write of the daemon's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// When it ended (RFC 3339).
    pub at: String,
    /// The run that made it.
    pub run: u64,
    /// What started that run.
    pub triggers: Vec<&'static str>,
    /// The project.
    pub project: ProjectId,
    /// The integration written (the new one for a create or a replace), when known.
    pub integration: Option<String>,
    /// What was done.
    pub action: ActionKind,
    /// Each field's before and after.
    pub fields: Vec<FieldDiff>,
}

/// One field of a [`Change`]. `before` is null when the field was unset (a create) and `after`
/// is null when it is gone (a delete).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldDiff {
    /// Its manifest name.
    pub field: &'static str,
    /// The live value before the write.
    pub before: serde_json::Value,
    /// The value written.
    pub after: serde_json::Value,
}

/// What `report` (a finished action of `action`) changed; `None` when it wrote nothing.
pub(crate) fn change(
    action: &Action,
    report: &ActionReport,
    run: u64,
    triggers: &[&'static str],
    at: String,
) -> Option<Change> {
    if !matches!(
        report.outcome,
        Outcome::Created | Outcome::Updated | Outcome::Replaced | Outcome::Deleted
    ) {
        return None;
    }
    let live = action.before.as_ref().map(|b| &b.fields);
    let value = |v: Option<&FieldValue>| v.map_or(serde_json::Value::Null, FieldValue::to_json);
    let mut fields: Vec<FieldDiff> = if report.outcome == Outcome::Deleted {
        live.into_iter()
            .flatten()
            .map(|(field, before)| FieldDiff {
                field: field.name(),
                before: before.to_json(),
                after: serde_json::Value::Null,
            })
            .collect()
    } else {
        action
            .fields
            .iter()
            .map(|change| FieldDiff {
                field: change.name.name(),
                // A replace plans from scratch; what it replaces is the live integration.
                before: value(
                    change
                        .before
                        .as_ref()
                        .or_else(|| live.and_then(|l| l.get(&change.name))),
                ),
                after: change.after.to_json(),
            })
            .collect()
    };
    if let Some(after) = &action.after
        && report.outcome != Outcome::Deleted
    {
        for (field, template) in &after.deferred {
            fields.push(FieldDiff {
                field: field.name(),
                before: value(live.and_then(|l| l.get(field))),
                after: template.to_string().into(),
            });
        }
        if action.send_credentials {
            fields.push(FieldDiff {
                field: after.secret.field.name(),
                // Write-only: the API never shows it, so neither side is a value.
                before: serde_json::Value::Null,
                after: after.secret.reference().into(),
            });
        }
    }
    let integration = report
        .integration_id
        .clone()
        .or_else(|| action.before.as_ref().map(|b| b.id.to_string()));
    Some(Change {
        at,
        run,
        triggers: triggers.to_vec(),
        project: action.project.clone(),
        integration,
        action: action.action,
        fields,
    })
}

/// Logs `change` at info: one event per field, so that JSON logs carry each as fields.
pub(crate) fn log(change: &Change) {
    let shown = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "(unset)".to_owned(),
        other => other.to_string(),
    };
    let integration = change.integration.as_deref().unwrap_or("");
    let triggers = change.triggers.join(",");
    for diff in &change.fields {
        tracing::info!(
            run = change.run,
            triggers = %triggers,
            project = %change.project,
            integration,
            action = change.action.as_str(),
            field = diff.field,
            before = %shown(&diff.before),
            after = %shown(&diff.after),
            "changed"
        );
    }
}

/// The plan action `report` reports on.
pub(crate) fn planned<'a>(actions: &'a [Action], report: &ActionReport) -> Option<&'a Action> {
    actions.iter().find(|a| {
        a.project == report.project
            && a.action == report.action
            && match (a.action, &a.before, &report.integration_id) {
                // Two deletes in one project (a pruned duplicate): the one with this ID.
                (ActionKind::Delete, Some(before), Some(id)) => before.id.as_str() == id,
                _ => true,
            }
    })
}
