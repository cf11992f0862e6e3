//! Table tests for the planner, and the convergence law as a property.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::model::ids::{IntegrationId, OrganizationId};
use crate::model::live::{LiveLinks, OtherIntegration};
use crate::model::{DesiredProject, SecretField, SecretRef};

fn pid(id: &str) -> ProjectId {
    ProjectId::new(id)
}

fn origin() -> Origin {
    Origin {
        file: "m.yaml".into(),
        line: 3,
        column: 3,
    }
}

fn text(s: &str) -> FieldValue {
    FieldValue::Text(s.to_owned())
}

/// A desired Bitbucket Cloud integration with the table's defaults.
fn cloud(extra: &[(Field, FieldValue)]) -> DesiredIntegration {
    let mut fields: BTreeMap<Field, FieldValue> = [
        (Field::Repository, text("acme/web")),
        (Field::AppKey, text("key")),
        (Field::FetchBranches, FieldValue::Bool(true)),
        (Field::PruneBranches, FieldValue::Bool(true)),
        (Field::BuildPullRequests, FieldValue::Bool(true)),
        (Field::ResyncPullRequests, FieldValue::Bool(false)),
    ]
    .into_iter()
    .collect();
    fields.extend(extra.iter().cloned());
    DesiredIntegration {
        kind: IntegrationType::Bitbucket,
        fields,
        deferred: BTreeMap::new(),
        secret: SecretRef {
            field: SecretField::AppSecret,
            variable: "BITBUCKET_SECRET".into(),
            origin: origin(),
        },
    }
}

fn server() -> DesiredIntegration {
    DesiredIntegration {
        kind: IntegrationType::BitbucketServer,
        fields: [
            (Field::Url, text("https://bb.example.com")),
            (Field::Username, text("bot")),
            (Field::Project, text("WEB")),
            (Field::Repository, text("shop")),
            (Field::FetchBranches, FieldValue::Bool(true)),
            (Field::PruneBranches, FieldValue::Bool(true)),
            (Field::BuildPullRequests, FieldValue::Bool(true)),
            (Field::PullRequestsCloneParentData, FieldValue::Bool(true)),
        ]
        .into_iter()
        .collect(),
        deferred: BTreeMap::new(),
        secret: SecretRef {
            field: SecretField::Token,
            variable: "BBS_TOKEN".into(),
            origin: origin(),
        },
    }
}

/// What the API returns after creating `wanted`: its fields, what the create body adds for
/// unmanaged ones ([`crate::wire::body::unmanaged_on_create`]), plus the server's defaults
/// ([`crate::wire::defaults`], the table the sandbox applies) for the fields it omits.
fn live_from(id: &str, wanted: &DesiredIntegration) -> LiveIntegration {
    let mut fields = wanted.fields.clone();
    for (field, value) in crate::wire::body::unmanaged_on_create(wanted.kind) {
        fields.entry(field).or_insert(value);
    }
    for (field, value) in crate::wire::defaults::on_create_fields(wanted.kind) {
        fields.entry(field).or_insert(value);
    }
    LiveIntegration {
        id: IntegrationId::new(id),
        kind: wanted.kind,
        fields,
        links: LiveLinks::default(),
    }
}

fn desired(projects: Vec<(&str, Target, bool)>) -> DesiredState {
    DesiredState {
        organization: None,
        prune: false,
        projects: projects
            .into_iter()
            .map(|(id, target, protect)| {
                (
                    pid(id),
                    DesiredProject {
                        id: pid(id),
                        protect,
                        target,
                        origin: origin(),
                    },
                )
            })
            .collect(),
        digest: "sha256:test".into(),
    }
}

fn known(managed: Vec<LiveIntegration>) -> ProjectLive {
    ProjectLive::Known {
        managed,
        others: vec![OtherIntegration {
            id: "wh".into(),
            kind: "webhook".into(),
        }],
    }
}

fn live(projects: Vec<(&str, ProjectLive)>) -> LiveState {
    LiveState {
        titles: Default::default(),
        projects: projects.into_iter().map(|(id, p)| (pid(id), p)).collect(),
        organization: None,
    }
}

fn only_action(desired: &DesiredState, live: &LiveState) -> Action {
    let plan = plan(desired, live, &PlanOptions::default());
    assert_eq!(plan.actions.len(), 1, "{:#?}", plan.actions);
    plan.actions.into_iter().next().unwrap()
}

fn one(target: Target, current: Vec<LiveIntegration>) -> Action {
    only_action(
        &desired(vec![("p1", target, false)]),
        &live(vec![("p1", known(current))]),
    )
}

#[test]
fn omitted_options_at_their_defaults_are_noops() {
    let wanted = cloud(&[]);
    let action = one(
        Target::Present(wanted.clone()),
        vec![live_from("i1", &wanted)],
    );
    assert_eq!(action.action, ActionKind::Noop, "{action:#?}");
}

/// Issue 19 item 5: a live integration that lacks an option with a default holds that default,
/// so the manifest `export` writes for it (which leaves the option out) plans no change.
#[test]
fn r19_a_live_integration_lacking_a_defaulted_option_holds_its_default() {
    let wanted = cloud(&[]);
    for missing in [
        Field::ResyncPullRequests,
        Field::FetchBranches,
        Field::PruneBranches,
        Field::BuildPullRequests,
    ] {
        let mut current = live_from("i1", &wanted);
        current.fields.remove(&missing);
        let action = one(Target::Present(wanted.clone()), vec![current]);
        assert_eq!(action.action, ActionKind::Noop, "{missing}: {action:#?}");
    }
    // Pruning is off when fetching is: a live integration without `prune_branches` and with
    // fetching off matches a manifest that turns fetching off.
    let wanted = cloud(&[
        (Field::FetchBranches, FieldValue::Bool(false)),
        (Field::PruneBranches, FieldValue::Bool(false)),
    ]);
    let mut current = live_from("i1", &wanted);
    current.fields.remove(&Field::PruneBranches);
    let action = one(Target::Present(wanted), vec![current]);
    assert_eq!(action.action, ActionKind::Noop, "{action:#?}");
    // A value other than the default is still a change, shown from the real live side.
    let wanted = cloud(&[(Field::ResyncPullRequests, FieldValue::Bool(true))]);
    let mut current = live_from("i1", &wanted);
    current.fields.remove(&Field::ResyncPullRequests);
    let action = one(Target::Present(wanted), vec![current]);
    assert_eq!(action.action, ActionKind::Update, "{action:#?}");
    assert_eq!(action.fields[0].name, Field::ResyncPullRequests);
    assert_eq!(action.fields[0].before, None, "shown as `(unset)`");
}

#[test]
fn every_managed_option_drifted_is_an_update() {
    for (field, drifted) in [
        (Field::FetchBranches, FieldValue::Bool(false)),
        (Field::PruneBranches, FieldValue::Bool(false)),
        (Field::BuildPullRequests, FieldValue::Bool(false)),
        (Field::ResyncPullRequests, FieldValue::Bool(true)),
        (Field::Repository, text("acme/other")),
    ] {
        let wanted = cloud(&[]);
        let mut current = live_from("i1", &wanted);
        current.fields.insert(field, drifted.clone());
        let action = one(Target::Present(wanted.clone()), vec![current]);
        assert_eq!(action.action, ActionKind::Update, "{field}");
        assert_eq!(action.fields.len(), 1);
        assert_eq!(action.fields[0].name, field);
        assert_eq!(action.fields[0].before, Some(drifted));
        assert!(!action.send_credentials, "{field} is not a credential");
    }
}

#[test]
fn set_options_are_compared_and_not_managed_ones_never_diff() {
    let wanted = cloud(&[
        (Field::EnvironmentInitResources, text("minimum")),
        (Field::PullRequestsCloneParentData, FieldValue::Bool(false)),
    ]);
    let mut current = live_from("i1", &cloud(&[]));
    current
        .fields
        .insert(Field::PullRequestsMaxPages, FieldValue::Integer(4));
    current
        .fields
        .insert(Field::BuildPullRequestsPostMerge, FieldValue::Bool(true));
    let action = one(Target::Present(wanted), vec![current]);
    let names: Vec<Field> = action.fields.iter().map(|c| c.name).collect();
    assert_eq!(
        names,
        vec![
            Field::PullRequestsCloneParentData,
            Field::EnvironmentInitResources
        ]
    );
}

#[test]
fn the_fetch_prune_rule_converges_both_ways() {
    // Desired fetch off (model forced prune off); live has both on: both change together.
    let wanted = cloud(&[
        (Field::FetchBranches, FieldValue::Bool(false)),
        (Field::PruneBranches, FieldValue::Bool(false)),
    ]);
    let action = one(
        Target::Present(wanted.clone()),
        vec![live_from("i1", &cloud(&[]))],
    );
    let names: Vec<Field> = action.fields.iter().map(|c| c.name).collect();
    assert_eq!(names, vec![Field::FetchBranches, Field::PruneBranches]);
    // The API reports prune off once fetch is off: no flapping diff.
    let action = one(
        Target::Present(wanted.clone()),
        vec![live_from("i1", &wanted)],
    );
    assert_eq!(action.action, ActionKind::Noop);
    // And back on.
    let action = one(Target::Present(cloud(&[])), vec![live_from("i1", &wanted)]);
    assert_eq!(action.fields.len(), 2);
}

#[test]
fn secrets_are_never_compared_but_public_parts_carry_them() {
    let wanted = cloud(&[]);
    let action = one(
        Target::Present(wanted.clone()),
        vec![live_from("i1", &wanted)],
    );
    assert_eq!(
        action.action,
        ActionKind::Noop,
        "the secret is not compared"
    );
    let mut current = live_from("i1", &wanted);
    current.fields.insert(Field::AppKey, text("old-key"));
    let action = one(Target::Present(wanted), vec![current]);
    assert_eq!(action.action, ActionKind::Update);
    assert!(action.send_credentials);
    assert!(
        action
            .reason
            .unwrap()
            .contains("`app_credentials.key` changed")
    );
    let wanted = server();
    let mut current = live_from("i1", &wanted);
    current.fields.insert(Field::Username, text("old-bot"));
    assert!(one(Target::Present(wanted), vec![current]).send_credentials);
}

#[test]
fn rotation_sends_credentials_to_every_existing_integration() {
    let wanted = cloud(&[]);
    let d = desired(vec![
        ("p1", Target::Present(wanted.clone()), false),
        ("p2", Target::Present(wanted.clone()), false),
    ]);
    let l = live(vec![
        ("p1", known(vec![live_from("i1", &wanted)])),
        ("p2", known(vec![])),
    ]);
    let p = plan(
        &d,
        &l,
        &PlanOptions {
            rotate_credentials: true,
            ..PlanOptions::default()
        },
    );
    let kinds: Vec<(ActionKind, bool)> = p
        .actions
        .iter()
        .map(|a| (a.action, a.send_credentials))
        .collect();
    assert_eq!(
        kinds,
        vec![(ActionKind::Create, true), (ActionKind::Update, true)]
    );
}

#[test]
fn a_type_change_is_a_replace() {
    let action = one(
        Target::Present(server()),
        vec![live_from("i1", &cloud(&[]))],
    );
    assert_eq!(action.action, ActionKind::Replace);
    assert_eq!(action.kind, Some(IntegrationType::BitbucketServer));
    assert!(action.send_credentials && action.live_fingerprint.is_some());
}

#[test]
fn absent_with_and_without_a_live_integration() {
    assert_eq!(one(Target::Absent, vec![]).action, ActionKind::Noop);
    let action = one(Target::Absent, vec![live_from("i1", &cloud(&[]))]);
    assert_eq!(action.action, ActionKind::Delete);
    assert!(!action.pruned);
}

#[test]
fn a_project_whose_code_comes_from_github_or_gitlab_gets_an_error_never_a_create() {
    for kind in ["github", "gitlab"] {
        let live_state = live(vec![(
            "p1",
            ProjectLive::Known {
                managed: vec![],
                others: vec![OtherIntegration {
                    id: "src1".into(),
                    kind: kind.into(),
                }],
            },
        )]);
        let action = only_action(
            &desired(vec![("p1", Target::Present(cloud(&[])), false)]),
            &live_state,
        );
        assert_eq!(action.action, ActionKind::Error, "{kind}");
        let reason = action.reason.unwrap();
        assert!(
            reason.contains(&format!("its `{kind}` integration `src1`")),
            "{reason}"
        );
    }
    // A replace would delete, then fail to create: an error too, and nothing is deleted.
    let current = live_from("i1", &cloud(&[]));
    let action = only_action(
        &desired(vec![("p1", Target::Present(server()), false)]),
        &live(vec![(
            "p1",
            ProjectLive::Known {
                managed: vec![current],
                others: vec![OtherIntegration {
                    id: "gh".into(),
                    kind: "github".into(),
                }],
            },
        )]),
    );
    assert_eq!(action.action, ActionKind::Error);
    // A webhook is no code source: the create is planned.
    let action = only_action(
        &desired(vec![("p1", Target::Present(cloud(&[])), false)]),
        &live(vec![(
            "p1",
            ProjectLive::Known {
                managed: vec![],
                others: vec![OtherIntegration {
                    id: "w1".into(),
                    kind: "webhook".into(),
                }],
            },
        )]),
    );
    assert_eq!(action.action, ActionKind::Create);
}

#[test]
fn create_when_nothing_is_there() {
    let action = one(Target::Present(cloud(&[])), vec![]);
    assert_eq!(action.action, ActionKind::Create);
    assert_eq!(action.live_fingerprint, None);
    assert!(action.send_credentials);
}

#[test]
fn protect_blocks_deletes_and_replaces_only() {
    let d = desired(vec![("p1", Target::Absent, true)]);
    let action = only_action(
        &d,
        &live(vec![("p1", known(vec![live_from("i1", &cloud(&[]))]))]),
    );
    assert_eq!(
        (action.action, action.blocked_action),
        (ActionKind::Blocked, Some(ActionKind::Delete))
    );
    let d = desired(vec![("p1", Target::Present(server()), true)]);
    let action = only_action(
        &d,
        &live(vec![("p1", known(vec![live_from("i1", &cloud(&[]))]))]),
    );
    assert_eq!(action.blocked_action, Some(ActionKind::Replace));
    let d = desired(vec![("p1", Target::Present(cloud(&[])), true)]);
    assert_eq!(
        only_action(&d, &live(vec![("p1", known(vec![]))])).action,
        ActionKind::Create
    );
}

#[test]
fn unknown_live_state_plans_nothing() {
    let d = desired(vec![("p1", Target::Present(cloud(&[])), false)]);
    let l = live(vec![(
        "p1",
        ProjectLive::Unknown {
            error: "HTTP 500".into(),
        },
    )]);
    let p = plan(&d, &l, &PlanOptions::default());
    assert_eq!(p.actions[0].action, ActionKind::Error);
    assert!(p.has_errors() && !p.has_changes());
}

#[test]
fn two_bitbucket_integrations_name_both_ids() {
    let action = one(
        Target::Present(cloud(&[])),
        vec![live_from("i1", &cloud(&[])), live_from("i2", &server())],
    );
    assert_eq!(action.action, ActionKind::Error);
    let reason = action.reason.unwrap();
    assert!(
        reason.contains("`i1`") && reason.contains("`i2`"),
        "{reason}"
    );
}

fn pruning(listing: OrganizationLive) -> Plan {
    let mut d = desired(vec![("listed", Target::Absent, false)]);
    d.prune = true;
    d.organization = Some(OrganizationId::new("org"));
    let mut l = live(vec![
        ("listed", known(vec![])),
        ("unlisted", known(vec![live_from("i1", &cloud(&[]))])),
        ("githubonly", known(vec![])),
        (
            "broken",
            ProjectLive::Unknown {
                error: "HTTP 500".into(),
            },
        ),
    ]);
    l.organization = Some(listing);
    plan(&d, &l, &PlanOptions::default())
}

#[test]
fn prune_deletes_only_unlisted_bitbucket_integrations() {
    let ids: BTreeSet<ProjectId> = ["listed", "unlisted", "githubonly", "broken"]
        .into_iter()
        .map(pid)
        .collect();
    let p = pruning(OrganizationLive::Listed(ids));
    let summary: Vec<(&str, ActionKind)> = p
        .actions
        .iter()
        .map(|a| (a.project.as_str(), a.action))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("broken", ActionKind::Error),
            ("unlisted", ActionKind::Delete),
            ("listed", ActionKind::Noop)
        ]
    );
    assert!(p.actions[1].pruned);
}

#[test]
fn a_failed_listing_prunes_nothing() {
    let p = pruning(OrganizationLive::Failed("HTTP 500 on page 2".into()));
    assert!(p.actions.iter().all(|a| a.action != ActionKind::Delete));
    assert_eq!(p.errors.len(), 1);
    assert!(p.has_errors());
}

#[test]
fn project_selection_makes_a_partial_plan() {
    let d = desired(vec![
        ("p1", Target::Present(cloud(&[])), false),
        ("p2", Target::Absent, false),
    ]);
    let l = live(vec![("p1", known(vec![])), ("p2", known(vec![]))]);
    let only = Some([pid("p2")].into_iter().collect());
    let p = plan(
        &d,
        &l,
        &PlanOptions {
            only,
            ..PlanOptions::default()
        },
    );
    assert!(p.partial);
    assert_eq!(p.actions.len(), 1);
    assert_eq!(p.actions[0].project, pid("p2"));
}

#[test]
fn case_only_differences_are_pointed_out() {
    let wanted = cloud(&[]);
    let mut current = live_from("i1", &wanted);
    current.fields.insert(Field::Repository, text("Acme/Web"));
    let p = plan(
        &desired(vec![("p1", Target::Present(wanted), false)]),
        &live(vec![("p1", known(vec![current]))]),
        &PlanOptions::default(),
    );
    assert!(p.warnings[0].contains("only by case"), "{:?}", p.warnings);
}

#[test]
fn guards_limit_deletes() {
    let ids: BTreeSet<ProjectId> = ["listed", "unlisted"].into_iter().map(pid).collect();
    let p = pruning(OrganizationLive::Listed(ids));
    assert!(
        check_guards(&p, None, 0).is_ok(),
        "one prune is under the default limit"
    );
    assert!(check_guards(&p, Some(0), 0).is_err());
    assert!(check_guards(&p, Some(1), 0).is_ok());
}

#[test]
fn held_projects_are_left_out_and_named() {
    let d = desired(vec![
        ("held", Target::Present(cloud(&[])), false),
        ("free", Target::Present(cloud(&[])), false),
        ("quiet", Target::Absent, false),
    ]);
    let l = live(vec![
        ("held", known(vec![])),
        ("free", known(vec![])),
        ("quiet", known(vec![])),
    ]);
    let options = PlanOptions {
        held: [
            (pid("held"), "backing off".to_owned()),
            (pid("quiet"), "backing off".to_owned()),
        ]
        .into(),
        ..PlanOptions::default()
    };
    let p = plan(&d, &l, &options);
    let projects: Vec<&str> = p.actions.iter().map(|a| a.project.as_str()).collect();
    assert_eq!(
        projects,
        ["free", "quiet"],
        "a held noop stays; a held write goes"
    );
    assert_eq!(
        p.held,
        vec![Held {
            project: pid("held"),
            action: ActionKind::Create,
            reason: "backing off".to_owned(),
        }]
    );
    assert_eq!(p.summary.create, 1, "only the write that runs is counted");
}

#[test]
fn staleness_is_per_project() {
    let wanted = cloud(&[]);
    let d = desired(vec![
        ("p1", Target::Present(wanted.clone()), false),
        ("p2", Target::Absent, false),
        ("p3", Target::Present(wanted.clone()), false),
    ]);
    let mut drifted = live_from("i1", &wanted);
    drifted
        .fields
        .insert(Field::BuildPullRequests, FieldValue::Bool(false));
    let l = live(vec![
        ("p1", known(vec![drifted.clone()])),
        ("p2", known(vec![live_from("i2", &wanted)])),
        ("p3", known(vec![])),
    ]);
    let p = plan(&d, &l, &PlanOptions::default());
    assert!(stale_projects(&p, &l).is_empty());
    let mut now = l.clone();
    now.projects
        .insert(pid("p1"), known(vec![live_from("i1", &wanted)]));
    now.projects
        .insert(pid("p3"), known(vec![live_from("i9", &wanted)]));
    let stale: Vec<String> = stale_projects(&p, &now)
        .into_iter()
        .map(|(id, _)| id.to_string())
        .collect();
    let stale: BTreeSet<String> = stale.into_iter().collect();
    assert_eq!(
        stale,
        ["p1".to_owned(), "p3".to_owned()].into_iter().collect()
    );
}

// ---- The convergence law -------------------------------------------------------------------

/// A model of the API: what the live state becomes when `plan` is carried out.
pub(crate) fn model_apply(plan: &Plan, live: &LiveState) -> LiveState {
    let mut next = live.clone();
    for (n, action) in plan.actions.iter().enumerate() {
        let Some(ProjectLive::Known { managed, .. }) = next.projects.get_mut(&action.project)
        else {
            assert!(
                !action.action.writes(),
                "a write planned for an unknown project"
            );
            continue;
        };
        match action.action {
            ActionKind::Create => managed.push(live_from(
                &format!("new{n}"),
                action.after.as_ref().unwrap(),
            )),
            ActionKind::Delete => {
                managed.retain(|i| Some(&i.id) != action.before.as_ref().map(|b| &b.id))
            }
            ActionKind::Replace => {
                managed.clear();
                managed.push(live_from(
                    &format!("new{n}"),
                    action.after.as_ref().unwrap(),
                ));
            }
            ActionKind::Update => {
                let current = managed
                    .iter_mut()
                    .find(|i| Some(&i.id) == action.before.as_ref().map(|b| &b.id))
                    .unwrap();
                current.fields.extend(action.changes());
            }
            ActionKind::Noop | ActionKind::Blocked | ActionKind::Error => {}
        }
    }
    next
}

fn arb_value(field: Field) -> BoxedStrategy<FieldValue> {
    match field {
        Field::Repository => prop::sample::select(vec!["acme/web", "acme/shop", "Acme/Web"])
            .prop_map(text)
            .boxed(),
        Field::EnvironmentInitResources => {
            prop::sample::select(vec!["default", "parent", "minimum"])
                .prop_map(text)
                .boxed()
        }
        Field::PullRequestsMaxPages => (1u64..4).prop_map(FieldValue::Integer).boxed(),
        Field::Url => prop::sample::select(vec!["https://a.example", "https://b.example"])
            .prop_map(text)
            .boxed(),
        Field::Username | Field::Project | Field::AppKey | Field::AddonKey | Field::ClientKey => {
            prop::sample::select(vec!["x", "y"]).prop_map(text).boxed()
        }
        _ => any::<bool>().prop_map(FieldValue::Bool).boxed(),
    }
}

fn arb_integration() -> impl Strategy<Value = DesiredIntegration> {
    (
        prop::bool::ANY,
        prop::collection::vec(any::<prop::sample::Index>(), 15),
    )
        .prop_flat_map(|(is_cloud, picks)| {
            let base = if is_cloud { cloud(&[]) } else { server() };
            let kind = base.kind;
            let fields: Vec<Field> = Field::ALL
                .into_iter()
                .filter(|f| f.applies_to(kind))
                .filter(|f| !matches!(f, Field::AddonKey | Field::ClientKey))
                .zip(picks)
                .filter(|(f, pick)| base.fields.contains_key(f) || pick.index(2) == 0)
                .map(|(f, _)| f)
                .collect();
            let values: Vec<BoxedStrategy<(Field, FieldValue)>> = fields
                .into_iter()
                .map(|f| arb_value(f).prop_map(move |v| (f, v)).boxed())
                .collect();
            values.prop_map(move |pairs| {
                let mut d = base.clone();
                d.fields = pairs.into_iter().collect();
                if d.fields.get(&Field::FetchBranches) == Some(&FieldValue::Bool(false)) {
                    d.fields
                        .insert(Field::PruneBranches, FieldValue::Bool(false));
                }
                d
            })
        })
}

fn arb_target() -> impl Strategy<Value = Target> {
    prop_oneof![1 => Just(Target::Absent), 4 => arb_integration().prop_map(Target::Present)]
}

fn arb_live_project() -> impl Strategy<Value = ProjectLive> {
    prop_oneof![
        1 => Just(ProjectLive::Unknown { error: "HTTP 500".into() }),
        8 => prop::collection::vec(arb_integration(), 0..=2).prop_map(|list| {
            known(list.iter().enumerate().map(|(i, d)| live_from(&format!("live{i}"), d)).collect())
        }),
    ]
}

proptest! {
    // 512 cases by default; `PROPTEST_CASES=20000 cargo test` for a longer search.
    #![proptest_config(ProptestConfig {
        // proptest reads PROPTEST_CASES itself (default 256); this suite runs at least 512.
        cases: ProptestConfig::default().cases.max(512),
        ..ProptestConfig::default()
    })]

    /// Applying a plan and planning again leaves nothing to write.
    #[test]
    fn apply_then_plan_is_empty(
        targets in prop::collection::vec((arb_target(), prop::bool::weighted(0.2)), 0..6),
        lives in prop::collection::vec(arb_live_project(), 8),
        prune in prop::bool::ANY,
        listing_fails in prop::bool::weighted(0.2),
        rotate in prop::bool::weighted(0.2),
    ) {
        let names = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
        let d = {
            let projects = targets.iter().enumerate().map(|(i, (t, protect))| (names[i], t.clone(), *protect)).collect();
            let mut d = desired(projects);
            d.prune = prune;
            d.organization = Some(OrganizationId::new("org"));
            d
        };
        let mut l = live(names.iter().copied().zip(lives).collect());
        l.organization = Some(if listing_fails {
            OrganizationLive::Failed("boom".into())
        } else {
            OrganizationLive::Listed(names.iter().copied().map(pid).collect())
        });
        let first = plan(&d, &l, &PlanOptions { rotate_credentials: rotate, ..PlanOptions::default() });
        let after = model_apply(&first, &l);
        let second = plan(&d, &after, &PlanOptions::default());
        let writes: Vec<_> = second.actions.iter().filter(|a| a.action.writes()).collect();
        prop_assert!(writes.is_empty(), "still to do after applying: {writes:#?}");
        // And nothing planned for a project whose state is unknown.
        for action in first.actions.iter().filter(|a| a.action.writes()) {
            let known_state = matches!(l.projects.get(&action.project), Some(ProjectLive::Known { .. }));
            prop_assert!(known_state, "a write for a project of unknown state");
        }
    }

    /// Markdown shortened for a comment never exceeds its limit, always keeps the summary, says
    /// when it left something out, and is the whole rendering when that fits.
    #[test]
    fn markdown_within_a_limit(
        targets in prop::collection::vec((arb_target(), prop::bool::weighted(0.2)), 0..6),
        lives in prop::collection::vec(arb_live_project(), 8),
        limit in 1000usize..6000,
    ) {
        let names = ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"];
        let projects = targets.iter().enumerate().map(|(i, (t, protect))| (names[i], t.clone(), *protect)).collect();
        let l = live(names.iter().copied().zip(lives).collect());
        let p = plan(&desired(projects), &l, &PlanOptions::default());
        let full = crate::render::plan_markdown(&p, crate::render::Flavor::Github);
        let short = crate::render::plan_markdown_within(&p, Some(limit), crate::render::Flavor::Github);
        let size = short.chars().count();
        prop_assert!(size <= limit, "{size} characters for a limit of {limit}:\n{short}");
        let summary = crate::render::summary_line(&p.summary);
        prop_assert!(short.contains(&summary));
        if full.chars().count() <= limit {
            prop_assert_eq!(&short, &full);
        } else {
            prop_assert!(short.contains("Shortened to fit"), "{}", short);
        }
    }
}

#[test]
fn writes_take_their_target_from_the_live_state_read_now() {
    let wanted = cloud(&[]);
    let d = desired(vec![
        ("p1", Target::Absent, false),
        ("p2", Target::Present(wanted.clone()), false),
        ("p3", Target::Present(wanted.clone()), false),
    ]);
    let mut drifted = live_from("i2", &wanted);
    drifted
        .fields
        .insert(Field::BuildPullRequests, FieldValue::Bool(false));
    let l = live(vec![
        ("p1", known(vec![live_from("i1", &wanted)])),
        ("p2", known(vec![drifted])),
        ("p3", known(vec![])),
    ]);
    let mut p = plan(&d, &l, &PlanOptions::default());
    // A plan file edited to aim its writes elsewhere.
    for action in &mut p.actions {
        if let Some(before) = &mut action.before {
            before.id = IntegrationId::new("gh1");
            before.links.self_href = Some("/projects/p9/integrations/gh1".into());
        }
    }
    assert!(
        stale_projects(&p, &l).is_empty(),
        "the fingerprints still hold"
    );
    bind_to_live(&mut p, &l);
    let before = |p: &Plan, project: &str| {
        p.actions
            .iter()
            .find(|a| a.project == pid(project))
            .and_then(|a| a.before.clone())
    };
    assert_eq!(before(&p, "p1").unwrap().id, IntegrationId::new("i1"));
    assert_eq!(before(&p, "p1").unwrap().links, LiveLinks::default());
    assert_eq!(before(&p, "p2").unwrap().id, IntegrationId::new("i2"));
    assert_eq!(before(&p, "p3"), None, "a create has no target");
    // Gone meanwhile (a stale plan is never bound, but never aimed by the file either).
    let gone = live(vec![("p1", known(vec![]))]);
    bind_to_live(&mut p, &gone);
    assert_eq!(before(&p, "p1"), None);
}

#[test]
fn a_first_fetch_with_pruning_needs_an_environment_preview_and_the_guard_reads_it() {
    use super::environments::{EnvironmentDeletions, needs_preview, violation};
    let create = one(Target::Present(cloud(&[])), vec![]);
    assert!(needs_preview(&create), "a create fetches with pruning on");
    let no_prune = one(
        Target::Present(cloud(&[(Field::PruneBranches, FieldValue::Bool(false))])),
        vec![],
    );
    assert!(
        !needs_preview(&no_prune),
        "prune_branches: false is the way out"
    );
    let mut live = live_from("i1", &cloud(&[]));
    live.fields
        .insert(Field::BuildPullRequests, FieldValue::Bool(false));
    let update = one(Target::Present(cloud(&[])), vec![live.clone()]);
    assert_eq!(update.action, ActionKind::Update);
    assert!(
        !needs_preview(&update),
        "an update that leaves fetching alone"
    );
    live.fields
        .insert(Field::PruneBranches, FieldValue::Bool(false));
    let turned_on = one(Target::Present(cloud(&[])), vec![live]);
    assert!(needs_preview(&turned_on), "an update that turns pruning on");

    let mut plan = plan(
        &desired(vec![("p1", Target::Present(cloud(&[])), false)]),
        &live_state_empty(),
        &PlanOptions::default(),
    );
    assert!(
        violation(&plan, 0).is_none(),
        "nothing marked, nothing to stop"
    );
    plan.actions[0].environment_deletions = Some(EnvironmentDeletions::known(vec!["a".into()]));
    let stop = violation(&plan, 0).expect("one over 0");
    assert!(stop.to_string().contains("p1 (a)"), "{stop}");
    assert!(violation(&plan, 1).is_none());
    plan.actions[0].environment_deletions = Some(EnvironmentDeletions::unknown("HTTP 500"));
    let stop = violation(&plan, 100).expect("unknown is not absent");
    assert!(
        stop.to_string().contains("unknown for p1 (HTTP 500)"),
        "{stop}"
    );
    assert!(stop.to_string().contains("prune_branches: false"), "{stop}");
}

fn live_state_empty() -> LiveState {
    live(vec![(
        "p1",
        ProjectLive::Known {
            managed: vec![],
            others: vec![],
        },
    )])
}
