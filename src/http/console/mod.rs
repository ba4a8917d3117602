//! The operator's console at `/` (design section 9): per object, what the mirror holds and how
//! fresh it is; the last runs; deliveries and repairs as charts; and the two actions, a delta pass
//! and a full one, each followed on the run's own page until it ends.
//!
//! Server-rendered HTML, its style inline, nothing loaded from another host. `ADMIN_TOKEN` opens
//! it through a sign-in that sets a session cookie (`session.rs`); every action needs the
//! session's CSRF token and a same-origin `Origin`.

mod charts;
mod pages;
mod session;
mod staleness;

use std::sync::OnceLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use base64::Engine as _;
use maud::Markup;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::AppState;
use crate::mirror::{Mode, StoreError, Trigger};
use crate::sync::reconciler::{ReconcileError, RunRequest, Started};
use crate::sync::status::status;
use session::{Session, SessionKey};

/// How many runs the front page lists.
const RUNS_LISTED: usize = 20;
/// How many runs the repaired chart reads: a week of the default 5-minute cadence is 2,016 runs,
/// and the runs an operator or a full sweep adds fit in the rest.
const RUNS_CHARTED: i64 = 2_100;

pub fn routes(config: &mut web::ServiceConfig) {
    config
        .route("/", web::get().to(index))
        .route("/sign-in", web::post().to(sign_in))
        .route("/sign-out", web::post().to(sign_out))
        .route("/actions/reconcile", web::post().to(reconcile))
        .route("/runs/{id}", web::get().to(run_page));
}

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("there is no run {0}")]
    NotFound(i64),
    #[error("the reconciler is off: set TWENTY_API_URL and TWENTY_API_KEY")]
    ReconcilerOff,
    /// Another process holds the reconciler, in a run this database does not show yet.
    #[error("another reconciler is running; try again once it has ended")]
    Busy,
    #[error("the database is unavailable; try again in a moment")]
    Unavailable,
    #[error("something went wrong; the service's log says what")]
    Internal,
}

impl ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            ConsoleError::Forbidden(_) => StatusCode::FORBIDDEN,
            ConsoleError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ConsoleError::NotFound(_) => StatusCode::NOT_FOUND,
            ConsoleError::Busy => StatusCode::CONFLICT,
            ConsoleError::ReconcilerOff | ConsoleError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ConsoleError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let title = match self {
            ConsoleError::Forbidden(_) => "Refused",
            ConsoleError::BadRequest(_) => "Bad request",
            ConsoleError::NotFound(_) => "Not found",
            ConsoleError::ReconcilerOff => "The reconciler is off",
            ConsoleError::Busy => "Busy",
            ConsoleError::Unavailable | ConsoleError::Internal => "Unavailable",
        };
        page(self.status_code(), pages::message(title, &self.to_string()))
    }
}

impl From<StoreError> for ConsoleError {
    fn from(error: StoreError) -> Self {
        tracing::error!(error = ?error, "a console page failed in the store");
        if error.is_unavailable() { ConsoleError::Unavailable } else { ConsoleError::Internal }
    }
}

/// Lets the page's own style sheet, and nothing else: no script, no request to any host, no frame.
fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(pages::STYLE.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        )
    })
}

/// A console page with the headers every one carries. `no-store`: a signed-in page holds the
/// mirror's state, which a shared cache must not keep.
fn page(status: StatusCode, markup: Markup) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, content_security_policy()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "same-origin"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(markup.into_string())
}

fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther().insert_header((header::LOCATION, location)).finish()
}

/// Who is asking.
enum Visitor {
    /// `ADMIN_TOKEN` is unset: the console is closed.
    Closed,
    SignedOut,
    SignedIn(SessionKey, Session),
}

fn visitor(request: &HttpRequest, state: &AppState) -> Visitor {
    let Some(token) = &state.admin_token else { return Visitor::Closed };
    let key = SessionKey::of(token);
    match session::of_request(request, &key, state.clock.now()) {
        Some(session) => Visitor::SignedIn(key, session),
        None => Visitor::SignedOut,
    }
}

/// `GET /`: the console, the sign-in form, or how to turn the console on.
async fn index(request: HttpRequest, state: web::Data<AppState>) -> Result<HttpResponse, ConsoleError> {
    let (key, session) = match visitor(&request, &state) {
        Visitor::Closed => return Ok(page(StatusCode::FORBIDDEN, pages::disabled())),
        Visitor::SignedOut => return Ok(page(StatusCode::OK, pages::sign_in(false))),
        Visitor::SignedIn(key, session) => (key, session),
    };
    let now = state.clock.now();
    let report = status(&state.store, now).await?;
    let runs = state.store.runs(RUNS_CHARTED).await?;
    let deliveries = state.store.deliveries_per_hour(charts::first_hour(now)).await?;
    let overview = pages::Overview {
        now,
        stale_after: state.stale_after,
        report: &report,
        runs: &runs[..runs.len().min(RUNS_LISTED)],
        deliveries: &charts::deliveries_by_hour(now, &deliveries),
        repaired: &charts::repaired_per_run(now, &runs),
        reconciler_on: state.reconciler.is_some(),
        csrf: &key.csrf_token(&session),
    };
    Ok(page(StatusCode::OK, pages::overview(&overview)))
}

#[derive(Debug, Deserialize)]
struct SignInForm {
    #[serde(default)]
    token: String,
}

/// `POST /sign-in`: the token for a session cookie.
async fn sign_in(
    request: HttpRequest,
    form: web::Form<SignInForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let Some(token) = &state.admin_token else { return Ok(page(StatusCode::FORBIDDEN, pages::disabled())) };
    if !session::is_same_origin(&request) {
        return Err(ConsoleError::Forbidden("a sign-in must come from the console's own page"));
    }
    if !token.matches(form.token.trim()) {
        tracing::warn!("refused a console sign-in with a wrong token");
        return Ok(page(StatusCode::UNAUTHORIZED, pages::sign_in(true)));
    }
    let now = state.clock.now();
    let session = SessionKey::of(token).issue(now).map_err(|error| {
        tracing::error!(%error, "no randomness for a session");
        ConsoleError::Internal
    })?;
    let cookie = session.set_cookie(now, session::is_https(&request));
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((header::SET_COOKIE, cookie))
        .finish())
}

#[derive(Debug, Deserialize)]
struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mode: String,
    confirmed: Option<String>,
    force: Option<String>,
    force_confirmed: Option<String>,
}

/// The checks of every state-changing request: the console is open, the request comes from its
/// own pages (`Origin`) of a signed-in browser, and carries the session's CSRF token.
fn guard(request: &HttpRequest, state: &AppState, csrf: &str) -> Result<(SessionKey, Session), ConsoleError> {
    let (key, session) = match visitor(request, state) {
        Visitor::Closed => return Err(ConsoleError::Forbidden("the console is off: set ADMIN_TOKEN")),
        Visitor::SignedOut => return Err(ConsoleError::Forbidden("sign in first")),
        Visitor::SignedIn(key, session) => (key, session),
    };
    if !session::is_same_origin(request) {
        tracing::warn!("refused a console action from another origin");
        return Err(ConsoleError::Forbidden("an action must come from the console's own page"));
    }
    if !key.check_csrf(&session, csrf) {
        tracing::warn!("refused a console action without its CSRF token");
        return Err(ConsoleError::Forbidden("the form is out of date: reload the console and try again"));
    }
    Ok((key, session))
}

/// `POST /sign-out`.
async fn sign_out(
    request: HttpRequest,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    guard(&request, &state, &form.csrf)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((header::SET_COOKIE, session::clear_cookie(session::is_https(&request))))
        .finish())
}

/// What an action form asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Start {
        mode: Mode,
        force: bool,
    },
    /// Ask first: a full pass, or (`force`) a forced one.
    Confirm {
        force: bool,
    },
}

impl Action {
    fn parse(form: &ActionForm) -> Result<Action, ConsoleError> {
        let flag = |name: &str, value: &Option<String>| match value.as_deref() {
            None => Ok(false),
            Some("yes") => Ok(true),
            Some(other) => {
                Err(ConsoleError::BadRequest(format!("{name} is {other:?}: expected yes or nothing")))
            }
        };
        let confirmed = flag("confirmed", &form.confirmed)?;
        let force = flag("force", &form.force)?;
        let force_confirmed = flag("force_confirmed", &form.force_confirmed)?;
        match Mode::parse(&form.mode) {
            Some(Mode::Delta) if force => {
                Err(ConsoleError::BadRequest("force applies to a full pass only".to_owned()))
            }
            Some(Mode::Delta) => Ok(Action::Start { mode: Mode::Delta, force: false }),
            Some(Mode::Full) => Ok(match (confirmed, force, force_confirmed) {
                (false, _, _) => Action::Confirm { force: false },
                (true, false, _) => Action::Start { mode: Mode::Full, force: false },
                (true, true, false) => Action::Confirm { force: true },
                (true, true, true) => Action::Start { mode: Mode::Full, force: true },
            }),
            None => Err(ConsoleError::BadRequest(format!("mode is {:?}: expected delta or full", form.mode))),
        }
    }
}

/// `POST /actions/reconcile`: starts a run (after the confirmations a full pass needs) and sends
/// the browser to the run's page.
async fn reconcile(
    request: HttpRequest,
    form: web::Form<ActionForm>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    guard(&request, &state, &form.csrf)?;
    let reconciler = state.reconciler.as_ref().ok_or(ConsoleError::ReconcilerOff)?;
    let (mode, force) = match Action::parse(&form)? {
        Action::Confirm { force } => return Ok(page(StatusCode::OK, pages::confirm_full(&form.csrf, force))),
        Action::Start { mode, force } => (mode, force),
    };
    let run = RunRequest { force, ..RunRequest::new(Trigger::Operator, mode) };
    let id = match reconciler.start(run, &state.tasks).await {
        Ok(Started::Began(id) | Started::AlreadyRunning(Some(id))) => id,
        Ok(Started::AlreadyRunning(None)) => return Err(ConsoleError::Busy),
        Err(ReconcileError::Store(error)) => return Err(error.into()),
        Err(error) => {
            tracing::error!(%error, "could not start a run from the console");
            return Err(ConsoleError::Internal);
        }
    };
    Ok(see_other(&format!("/runs/{id}")))
}

/// `GET /runs/{id}`: one run and its objects; it reloads itself until the run ends.
async fn run_page(
    request: HttpRequest,
    id: web::Path<i64>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ConsoleError> {
    let Visitor::SignedIn(key, session) = visitor(&request, &state) else { return Ok(see_other("/")) };
    let id = id.into_inner();
    let run = state.store.run(id).await?.ok_or(ConsoleError::NotFound(id))?;
    let now = state.clock.now();
    let report = status(&state.store, now).await?;
    Ok(page(StatusCode::OK, pages::run_page(now, &run, &report.objects, &key.csrf_token(&session))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(mode: &str, confirmed: bool, force: bool, force_confirmed: bool) -> ActionForm {
        let yes = |on: bool| on.then(|| "yes".to_owned());
        ActionForm {
            csrf: String::new(),
            mode: mode.to_owned(),
            confirmed: yes(confirmed),
            force: yes(force),
            force_confirmed: yes(force_confirmed),
        }
    }

    #[test]
    fn a_full_pass_is_confirmed_and_force_confirmed_again() {
        let parse = |f: ActionForm| Action::parse(&f).unwrap();
        assert_eq!(
            parse(form("delta", false, false, false)),
            Action::Start { mode: Mode::Delta, force: false }
        );
        assert_eq!(parse(form("full", false, false, false)), Action::Confirm { force: false });
        assert_eq!(parse(form("full", false, true, true)), Action::Confirm { force: false }, "unconfirmed");
        assert_eq!(parse(form("full", true, false, false)), Action::Start { mode: Mode::Full, force: false });
        assert_eq!(parse(form("full", true, true, false)), Action::Confirm { force: true });
        assert_eq!(parse(form("full", true, true, true)), Action::Start { mode: Mode::Full, force: true });
    }

    #[test]
    fn a_bad_form_names_what_is_wrong() {
        let error = |f: ActionForm| Action::parse(&f).unwrap_err().to_string();
        assert!(error(form("sideways", false, false, false)).contains("mode is \"sideways\""));
        assert!(error(form("delta", false, true, false)).contains("force applies to a full pass only"));
        let mut odd = form("full", false, false, false);
        odd.confirmed = Some("sure".to_owned());
        assert!(error(odd).contains("confirmed is \"sure\""));
    }

    #[test]
    fn the_policy_allows_the_style_sheet_and_nothing_from_elsewhere() {
        let policy = content_security_policy();
        assert!(policy.starts_with("default-src 'none'; style-src 'sha256-"), "{policy}");
        assert!(!policy.contains("http") && !policy.contains("unsafe"), "{policy}");
    }
}
