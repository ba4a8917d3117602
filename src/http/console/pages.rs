//! The console's pages as HTML. `maud` escapes every value it interpolates, so names and errors
//! that come from Twenty reach the page as text, never as markup; the one unescaped piece is the
//! page's own style sheet.

use std::time::Duration;

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::charts::{self, HourBucket, RepairedPoint};
use super::staleness::Staleness;
use crate::mirror::{Counts, EventOutcome, RunRow, RunStatus};
use crate::sync::status::{ObjectStatus, StatusReport};

/// The style sheet, inline so that the page loads nothing from anywhere; the Content-Security-Policy
/// allows it by its hash. Narrow screens get each table row as a card.
pub const STYLE: &str = include_str!("style.css");

/// How often a run's page reloads while the run goes on: often enough to follow a run of a few
/// seconds, seldom enough to cost nothing (one row read).
pub const REFRESH_SECONDS: u32 = 1;

fn layout(title: &str, refresh: bool, header_extra: Markup, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if refresh {
                    meta http-equiv="refresh" content=(REFRESH_SECONDS);
                }
                title { (title) " · twenty-mirror" }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { a href="/" { "twenty-mirror" } }
                    (header_extra)
                }
                main { (body) }
            }
        }
    }
}

/// Without `ADMIN_TOKEN`: how to turn the console on, and nothing else.
pub fn disabled() -> Markup {
    layout(
        "console off",
        false,
        html! {},
        html! {
            section.notice {
                h2 { "The console is off" }
                p {
                    "It needs " code { "ADMIN_TOKEN" } ". Set it to a long random value, for example the "
                    "output of " code { "openssl rand -hex 32" } ", restart the service, "
                    "and sign in here with it."
                }
                p.muted { "The same token opens " code { "/admin/*" } " as a bearer token." }
            }
        },
    )
}

pub fn sign_in(refused: bool) -> Markup {
    layout(
        "sign in",
        false,
        html! {},
        html! {
            section {
                h2 { "Sign in" }
                @if refused {
                    p.notice.error role="alert" { "That is not the admin token." }
                }
                form method="post" action="/sign-in" {
                    p { label for="token" { "Admin token (" code { "ADMIN_TOKEN" } ")" } }
                    p {
                        input #token type="password" name="token" autocomplete="current-password"
                            required autofocus;
                    }
                    p { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}

fn sign_out(csrf: &str) -> Markup {
    html! {
        form method="post" action="/sign-out" {
            input type="hidden" name="csrf" value=(csrf);
            button.secondary type="submit" { "Sign out" }
        }
    }
}

pub fn message(title: &str, text: &str) -> Markup {
    layout(
        title,
        false,
        html! {},
        html! {
            section.notice.error {
                h2 { (title) }
                p { (text) }
                p { a href="/" { "Back to the console" } }
            }
        },
    )
}

/// What the console's front page shows.
pub struct Overview<'a> {
    pub now: DateTime<Utc>,
    pub stale_after: Duration,
    pub report: &'a StatusReport,
    pub runs: &'a [RunRow],
    pub deliveries: &'a [HourBucket],
    pub repaired: &'a [RepairedPoint],
    pub reconciler_on: bool,
    pub csrf: &'a str,
}

pub fn overview(page: &Overview<'_>) -> Markup {
    layout(
        "console",
        false,
        sign_out(page.csrf),
        html! {
            @if let Some(id) = page.report.running_run {
                p.notice { "Run " a href={ "/runs/" (id) } { (id) } " is going on." }
            }
            section {
                h2 { "Actions" }
                (actions(page.reconciler_on, page.csrf))
            }
            section {
                h2 { "Objects" }
                p.muted #staleness-rule {
                    "Stale once the last complete pass is older than " (setting(page.stale_after))
                    "; an alert past twice that or when never reconciled."
                }
                (objects_table(page))
            }
            div.charts {
                section {
                    h2 { "Deliveries per hour, last 24 hours" }
                    (charts::deliveries_svg(page.deliveries))
                    p.legend {
                        @for outcome in EventOutcome::ALL {
                            span { i class={ "o-" (outcome.as_str()) } {} (outcome.as_str()) }
                        }
                    }
                }
                section {
                    h2 { "Repaired per run, last 7 days" }
                    (charts::repaired_svg(page.now, page.repaired))
                    p.legend { "What the webhooks missed and a run wrote." }
                }
            }
            section {
                h2 { "Last runs" }
                (runs_table(page.now, page.runs))
            }
        },
    )
}

fn actions(reconciler_on: bool, csrf: &str) -> Markup {
    html! {
        @if reconciler_on {
            div.actions {
                form method="post" action="/actions/reconcile" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="mode" value="delta";
                    button #reconcile-now type="submit" { "Reconcile now" }
                }
                form method="post" action="/actions/reconcile" {
                    input type="hidden" name="csrf" value=(csrf);
                    input type="hidden" name="mode" value="full";
                    button.secondary #full-pass type="submit" { "Full pass…" }
                }
            }
            p.muted {
                "Reconcile now reads what changed since the last pass; a full pass reads everything and "
                "marks destroyed what Twenty no longer has."
            }
        } @else {
            p.notice {
                "The reconciler is off: set " code { "TWENTY_API_URL" } " and " code { "TWENTY_API_KEY" }
                " to reconcile from here. The mirror follows webhooks only."
            }
        }
    }
}

/// The confirmation of a full pass (`force` false) or of a forced one.
pub fn confirm_full(csrf: &str, force: bool) -> Markup {
    layout(
        "confirm a full pass",
        false,
        sign_out(csrf),
        html! {
            section {
                @if force {
                    h2 { "Force a full pass?" }
                    p {
                        "A forced pass marks destroyed every row Twenty no longer lists, "
                        strong { "even past " code { "RECONCILE_MAX_DESTROY_SHARE" } }
                        ", the breaker that stops a pass which would destroy a large share of an object "
                        "(a Twenty answering wrongly looks the same)."
                    }
                } @else {
                    h2 { "Run a full pass?" }
                    p {
                        "A full pass reads every record of every mirrored object and then marks destroyed "
                        "the rows Twenty no longer has, up to " code { "RECONCILE_MAX_DESTROY_SHARE" }
                        " of an object."
                    }
                }
                div.actions {
                    form method="post" action="/actions/reconcile" {
                        input type="hidden" name="csrf" value=(csrf);
                        input type="hidden" name="mode" value="full";
                        input type="hidden" name="confirmed" value="yes";
                        @if force {
                            input type="hidden" name="force" value="yes";
                            input type="hidden" name="force_confirmed" value="yes";
                            button.danger #confirm-force type="submit" { "Yes, force it" }
                        } @else {
                            button #confirm-full type="submit" { "Run the full pass" }
                        }
                    }
                    @if !force {
                        form method="post" action="/actions/reconcile" {
                            input type="hidden" name="csrf" value=(csrf);
                            input type="hidden" name="mode" value="full";
                            input type="hidden" name="confirmed" value="yes";
                            input type="hidden" name="force" value="yes";
                            button.danger #force type="submit" { "Force…" }
                        }
                    }
                    a href="/" { "Cancel" }
                }
            }
        },
    )
}

fn objects_table(page: &Overview<'_>) -> Markup {
    html! {
        @if page.report.objects.is_empty() {
            p.muted { "No object yet: a webhook delivery or a reconcile brings the first." }
        } @else {
            table.cards #objects {
                thead { tr {
                    th { "Object" } th.n { "Live" } th.n { "Soft-deleted" } th.n { "Destroyed" }
                    th { "View" } th { "Last delivery" } th { "Webhooks" } th { "Last delta" }
                    th { "Last full" } th { "Freshness" }
                } }
                tbody {
                    @for object in &page.report.objects { (object_row(page, object)) }
                }
            }
        }
    }
}

fn object_row(page: &Overview<'_>, object: &ObjectStatus) -> Markup {
    let staleness = Staleness::of(object.last_delta_at, object.last_full_at, page.now, page.stale_after);
    let never = object.last_delta_at.is_none() && object.last_full_at.is_none();
    html! {
        tr data-object=(object.object) {
            td data-label="Object" {
                (object.object)
                @if !object.mirrored { " " span.muted { "(not mirrored)" } }
            }
            td.n data-label="Live" { (object.live) }
            td.n data-label="Soft-deleted" { (object.soft_deleted) }
            td.n data-label="Destroyed" { (object.destroyed) }
            td data-label="View" {
                @match &object.view {
                    Some(view) => code { (view) },
                    None => span.muted { "none" },
                }
            }
            td data-label="Last delivery" { (ago(page.now, object.last_webhook_at)) }
            td data-label="Webhooks" { (badge(object.webhook_health.as_str())) }
            td data-label="Last delta" { (ago(page.now, object.last_delta_at)) }
            td data-label="Last full" { (ago(page.now, object.last_full_at)) }
            td data-label="Freshness" {
                @if object.mirrored {
                    @let title = never.then_some("never reconciled");
                    span class={ "badge staleness " (staleness.as_str()) } title=[title] {
                        (staleness.as_str())
                    }
                } @else {
                    span.badge.staleness.unknown title="the reconciler does not read this object" { "n/a" }
                }
            }
        }
    }
}

const COUNT_NAMES: [&str; 7] =
    ["fetched", "inserted", "updated", "deleted", "destroyed", "unchanged", "repaired"];

/// A run's (or a pass's) counts as table cells, in the order of [`COUNT_NAMES`].
fn count_cells(counts: &Counts) -> Markup {
    let values = [
        counts.fetched,
        counts.inserted,
        counts.updated,
        counts.deleted,
        counts.destroyed,
        counts.unchanged,
        counts.repaired,
    ];
    html! { @for (name, value) in COUNT_NAMES.iter().zip(values) { td.n data-label=(name) { (value) } } }
}

/// A state as a coloured badge; the style sheet colours it by its name.
fn badge(state: &str) -> Markup {
    html! { span class={ "badge " (state) } { (state) } }
}

fn runs_table(now: DateTime<Utc>, runs: &[RunRow]) -> Markup {
    html! {
        @if runs.is_empty() {
            p.muted { "No run yet." }
        } @else {
            table.cards #runs {
                thead { tr {
                    th { "Run" } th { "Trigger" } th { "Mode" } th { "Status" } th { "Started" }
                    th.n { "Duration" }
                    @for name in COUNT_NAMES { th.n { (name) } }
                    th { "Error" }
                } }
                tbody {
                    @for run in runs {
                        tr data-run=(run.id) {
                            td data-label="Run" { a href={ "/runs/" (run.id) } { (run.id) } }
                            td data-label="Trigger" { (run.trigger.as_str()) }
                            td data-label="Mode" { (run.mode.as_str()) }
                            td data-label="Status" { (badge(run.status.as_str())) }
                            td data-label="Started" { (ago(now, Some(run.started_at))) }
                            td.n data-label="Duration" { (duration(now, run)) }
                            (count_cells(&run.counts))
                            td data-label="Error" { @if let Some(error) = &run.error { (error) } }
                        }
                    }
                }
            }
        }
    }
}

/// One run's page: refreshes itself while the run goes on.
pub fn run_page(now: DateTime<Utc>, run: &RunRow, objects: &[ObjectStatus], csrf: &str) -> Markup {
    let running = run.status == RunStatus::Running;
    layout(
        &format!("run {}", run.id),
        running,
        sign_out(csrf),
        html! {
            section #run data-status=(run.status.as_str()) {
                h2 { "Run " (run.id) " " (badge(run.status.as_str())) }
                @if running { p.muted { "This page follows the run until it ends." } }
                p {
                    (run.trigger.as_str()) ", " (run.mode.as_str()) " pass, started "
                    (ago(now, Some(run.started_at)))
                    ", " (if running { "running for " } else { "took " }) (duration(now, run)) "."
                }
                @if let Some(error) = &run.error { p.notice.error { (error) } }
                table.cards {
                    thead { tr { @for name in COUNT_NAMES { th.n { (name) } } } }
                    tbody { tr { (count_cells(&run.counts)) } }
                }
            }
            section {
                h2 { "Objects" }
                @if run.objects.is_empty() {
                    p.muted { "Discovery has not named the run's objects yet." }
                } @else {
                    p.muted { "An object's counts show while this run is its last complete pass." }
                    table.cards #run-objects {
                        thead { tr {
                            th { "Object" } th.n { "Live" }
                            @for name in COUNT_NAMES { th.n { (name) } }
                        } }
                        tbody {
                            @for name in &run.objects {
                                @let status = objects.iter().find(|o| &o.object == name);
                                @let this_run = status.filter(|o| o.last_run_id == Some(run.id));
                                @let counts = this_run.and_then(|o| o.last_counts);
                                tr data-object=(name) {
                                    td data-label="Object" { (name) }
                                    td.n data-label="Live" { (status.map_or(0, |o| o.live)) }
                                    @match counts {
                                        Some(counts) => { (count_cells(&counts)) },
                                        None => { td.muted colspan=(COUNT_NAMES.len()) { "—" } },
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p { a href="/" { "Back to the console" } }
        },
    )
}

fn duration(now: DateTime<Utc>, run: &RunRow) -> String {
    let seconds = (run.ended_at.unwrap_or(now) - run.started_at).num_milliseconds().max(0) as f64 / 1000.0;
    if seconds < 60.0 { format!("{seconds:.1}s") } else { humanize(Duration::from_secs(seconds as u64)) }
}

/// `3m ago`, with the instant itself in the tooltip; a dash for never.
fn ago(now: DateTime<Utc>, at: Option<DateTime<Utc>>) -> Markup {
    match at {
        None => html! { span.muted { "never" } },
        Some(at) => {
            let age = (now - at).to_std().unwrap_or(Duration::ZERO);
            html! {
                @let exact = at.format("%Y-%m-%d %H:%M:%S UTC");
                time datetime=(at.to_rfc3339()) title=(exact) { (humanize(age)) " ago" }
            }
        }
    }
}

/// A duration as an operator would write the setting: `1h`, `30m`, `90s`.
fn setting(duration: Duration) -> String {
    match duration.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

fn humanize(duration: Duration) -> String {
    match duration.as_secs() {
        s if s < 120 => format!("{s}s"),
        s if s < 7_200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}
