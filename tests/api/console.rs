//! The operator's console over HTTP: who may see it, the session cookie, and the guards of its
//! actions. The browser's view of it is `console_browser.rs`.

use std::time::Duration;

use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::helpers::fake_twenty::{FakeTwenty, encode_query};
use crate::helpers::{Options, SECRET, TestApp, delivery, eventually};

pub const ADMIN_TOKEN: &str = "console-admin-token-7f3a9c";

/// The service with a reconciler against `fake` and the console open, runs started by hand only.
pub fn with_twenty(fake: &FakeTwenty) -> Options {
    Options::default()
        .var("TWENTY_API_URL", fake.url())
        .var("TWENTY_API_KEY", FakeTwenty::API_KEY)
        .var("TWENTY_RATE_LIMIT", "off")
        .var("RECONCILE_INTERVAL", "off")
        .var("FULL_SWEEP_INTERVAL", "off")
        .var("ADMIN_TOKEN", ADMIN_TOKEN)
}

/// A form as a browser posts it (reqwest's own `form` needs a feature the service does not build).
trait FormBody {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        self.header("Content-Type", "application/x-www-form-urlencoded").body(encode_query(pairs))
    }
}

/// A client that shows redirects instead of following them, and so sees each `Set-Cookie`.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("a client")
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("twenty_mirror_session="))
        .map(str::to_owned)
}

/// A signed-in browser: the `Cookie` header value of its session.
pub async fn sign_in(app: &TestApp) -> String {
    let response = browser()
        .post(format!("{}/sign-in", app.address))
        .header("Origin", &app.address)
        .form_body(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .expect("signing in");
    assert_eq!(response.status(), 303);
    let cookie = session_cookie(response.headers()).expect("a session cookie");
    cookie.split(';').next().expect("name=value").to_owned()
}

async fn get(app: &TestApp, path: &str, cookie: Option<&str>) -> (u16, HeaderMap, String) {
    let mut request = browser().get(format!("{}{path}", app.address));
    if let Some(cookie) = cookie {
        request = request.header("Cookie", cookie);
    }
    let response = request.send().await.expect("an answer");
    let (status, headers) = (response.status().as_u16(), response.headers().clone());
    (status, headers, response.text().await.expect("a body"))
}

/// The CSRF token in a page's forms.
fn csrf_of(page: &str) -> String {
    let marker = r#"name="csrf" value=""#;
    let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
    page[start..].split('"').next().expect("the token's end").to_owned()
}

async fn post_action(
    app: &TestApp,
    cookie: &str,
    origin: Option<&str>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut request =
        browser().post(format!("{}/actions/reconcile", app.address)).header("Cookie", cookie).form_body(form);
    if let Some(origin) = origin {
        request = request.header("Origin", origin);
    }
    request.send().await.expect("an answer")
}

#[tokio::test]
async fn without_admin_token_the_page_says_how_and_shows_nothing_else() {
    let app = TestApp::spawn().await;
    app.deliver_json(&delivery("person.created", "p1", 1, json!({"jobTitle": "CTO"}))).await;
    let (status, headers, page) = get(&app, "/", None).await;
    assert_eq!(status, 403);
    assert!(page.contains("ADMIN_TOKEN") && page.contains("The console is off"), "{page}");
    for absent in ["person", "Sign in", "Objects", "Last runs", "<form"] {
        assert!(!page.contains(absent), "{absent:?} shows without ADMIN_TOKEN: {page}");
    }
    assert!(headers["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    let response = browser()
        .post(format!("{}/sign-in", app.address))
        .header("Origin", &app.address)
        .form_body(&[("token", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(session_cookie(response.headers()).is_none());
}

#[tokio::test]
async fn signed_out_the_console_asks_for_the_token_and_a_wrong_one_is_refused() {
    let app = TestApp::spawn_with(Options::default().var("ADMIN_TOKEN", ADMIN_TOKEN)).await;
    let (status, _, page) = get(&app, "/", None).await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"action="/sign-in""#) && !page.contains("Last runs"), "{page}");
    let (status, headers, _) = get(&app, "/runs/1", None).await;
    assert_eq!((status, headers.get(LOCATION).map(|v| v.to_str().unwrap())), (303, Some("/")));

    for wrong in
        ["", "console-admin-token-7f3a9", "console-admin-token-7f3a9cX", "Bearer console-admin-token-7f3a9c"]
    {
        let response = browser()
            .post(format!("{}/sign-in", app.address))
            .header("Origin", &app.address)
            .form_body(&[("token", wrong)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{wrong:?}");
        assert!(session_cookie(response.headers()).is_none(), "{wrong:?}");
        assert!(response.text().await.unwrap().contains("That is not the admin token."));
    }
    // A forged cookie is no session.
    let (_, _, page) = get(&app, "/", Some("twenty_mirror_session=4102444800.00.00")).await;
    assert!(page.contains(r#"action="/sign-in""#));
}

#[tokio::test]
async fn sign_in_sets_a_strict_http_only_expiring_cookie_without_the_token() {
    let app =
        TestApp::spawn_with(Options::default().var("ADMIN_TOKEN", ADMIN_TOKEN).var("STALE_AFTER", "30m"))
            .await;
    let sign_in_over = |https: bool| {
        let mut request = browser()
            .post(format!("{}/sign-in", app.address))
            .header("Origin", &app.address)
            .form_body(&[("token", ADMIN_TOKEN)]);
        if https {
            request = request.header("X-Forwarded-Proto", "https");
        }
        request.send()
    };
    let response = sign_in_over(false).await.unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(response.headers()[LOCATION], "/");
    let cookie = session_cookie(response.headers()).expect("a session cookie");
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(attributes, ["Path=/", "Max-Age=43200", "HttpOnly", "SameSite=Strict"], "{cookie}");
    assert!(!cookie.contains(ADMIN_TOKEN), "{cookie}");
    let secure = session_cookie(sign_in_over(true).await.unwrap().headers()).unwrap();
    assert!(secure.ends_with("; HttpOnly; SameSite=Strict; Secure"), "{secure}");

    let session = cookie.split(';').next().unwrap();
    let (status, headers, page) = get(&app, "/", Some(session)).await;
    assert_eq!(status, 200);
    assert!(page.contains("Last runs") && page.contains("Sign out"), "{page}");
    assert!(page.contains("The reconciler is off"), "no API key: {page}");
    assert!(page.contains("older than 30m;"), "STALE_AFTER: {page}");
    assert_eq!(headers["cache-control"], "no-store");

    // A sign-in from another site's page is refused.
    let response = browser()
        .post(format!("{}/sign-in", app.address))
        .header("Origin", "http://evil.example.com")
        .form_body(&[("token", ADMIN_TOKEN)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(session_cookie(response.headers()).is_none());

    // Signing out clears the cookie.
    let response = browser()
        .post(format!("{}/sign-out", app.address))
        .header("Cookie", session)
        .header("Origin", &app.address)
        .form_body(&[("csrf", csrf_of(&page).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert!(session_cookie(response.headers()).unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn an_action_needs_the_csrf_token_and_the_same_origin() {
    let fake = FakeTwenty::start().await;
    fake.create("person", json!({"jobTitle": "CTO"}));
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    let cookie = sign_in(&app).await;
    let (_, _, page) = get(&app, "/", Some(&cookie)).await;
    let csrf = csrf_of(&page);
    let origin = app.address.as_str();

    for (case, origin, form) in [
        ("no CSRF token", Some(origin), vec![("mode", "delta")]),
        ("a wrong CSRF token", Some(origin), vec![("csrf", "00ff"), ("mode", "delta")]),
        ("another origin", Some("http://evil.example.com"), vec![("csrf", csrf.as_str()), ("mode", "delta")]),
        ("no origin", None, vec![("csrf", csrf.as_str()), ("mode", "delta")]),
    ] {
        let response = post_action(&app, &cookie, origin, &form).await;
        assert_eq!(response.status(), 403, "{case}");
    }
    let response = browser()
        .post(format!("{}/actions/reconcile", app.address))
        .header("Origin", origin)
        .form_body(&[("csrf", csrf.as_str()), ("mode", "delta")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403, "no session");
    assert!(app.store.runs(10).await.unwrap().is_empty(), "a refused action started a run");

    let response = post_action(&app, &cookie, Some(origin), &[("csrf", &csrf), ("mode", "sideways")]).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("mode is &quot;sideways&quot;: expected delta or full"));

    let response = post_action(&app, &cookie, Some(origin), &[("csrf", &csrf), ("mode", "delta")]).await;
    assert_eq!(response.status(), 303);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let id: i64 = location.strip_prefix("/runs/").expect("the run's page").parse().unwrap();
    assert!(
        eventually(Duration::from_secs(20), || async {
            get(&app, &location, Some(&cookie)).await.2.contains(r#"data-status="succeeded""#)
        })
        .await,
        "run {id} did not end on its page"
    );
    let (_, _, run_page) = get(&app, &location, Some(&cookie)).await;
    assert!(run_page.contains(r#"data-object="person""#), "{run_page}");
    assert!(!run_page.contains(r#"http-equiv="refresh""#), "an ended run's page keeps reloading");
}

#[tokio::test]
async fn a_full_pass_asks_twice_before_force() {
    let fake = FakeTwenty::start().await;
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    let cookie = sign_in(&app).await;
    let csrf = csrf_of(&get(&app, "/", Some(&cookie)).await.2);
    let origin = Some(app.address.as_str());

    let response = post_action(&app, &cookie, origin, &[("csrf", &csrf), ("mode", "full")]).await;
    assert_eq!(response.status(), 200);
    let page = response.text().await.unwrap();
    assert!(page.contains("Run a full pass?") && page.contains(r#"id="force""#), "{page}");
    let forced = [("csrf", csrf.as_str()), ("mode", "full"), ("confirmed", "yes"), ("force", "yes")];
    let page = post_action(&app, &cookie, origin, &forced).await.text().await.unwrap();
    assert!(page.contains("Force a full pass?"), "{page}");
    assert!(app.store.runs(10).await.unwrap().is_empty(), "a confirmation started a run");

    let confirmed = [&forced[..], &[("force_confirmed", "yes")]].concat();
    let response = post_action(&app, &cookie, origin, &confirmed).await;
    assert_eq!(response.status(), 303);
    let runs = app.store.runs(10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].mode.as_str(), "full");
}

#[tokio::test]
async fn no_page_shows_a_secret_or_a_delivery_body() {
    let fake = FakeTwenty::start().await;
    fake.create("person", json!({"jobTitle": "CTO"}));
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    let marker = "body-marker-9d2e41";
    app.deliver_json(&delivery("person.created", "p1", 1, json!({"jobTitle": marker}))).await;
    // A name from Twenty is hostile: it reaches the page as text.
    let hostile = "<script>alert(1)</script>";
    app.deliver_json(&delivery(&format!("{hostile}.created"), "p2", 1, json!({}))).await;
    let cookie = sign_in(&app).await;
    let csrf = csrf_of(&get(&app, "/", Some(&cookie)).await.2);
    let response =
        post_action(&app, &cookie, Some(&app.address), &[("csrf", &csrf), ("mode", "delta")]).await;
    let run = response.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(
        eventually(Duration::from_secs(20), || async {
            get(&app, &run, Some(&cookie)).await.2.contains(r#"data-status="succeeded""#)
        })
        .await
    );
    let mut pages = Vec::new();
    for path in ["/", run.as_str()] {
        pages.push(get(&app, path, Some(&cookie)).await.2);
    }
    assert!(pages.iter().all(|page| page.contains(r#"data-object="person""#)), "{pages:?}");
    pages.push(
        post_action(&app, &cookie, Some(&app.address), &[("csrf", &csrf), ("mode", "full")])
            .await
            .text()
            .await
            .unwrap(),
    );
    assert!(
        pages[0].contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the hostile object's row: {}",
        pages[0]
    );
    let database_url = app.db.url.clone();
    for page in &pages {
        for secret in [ADMIN_TOKEN, FakeTwenty::API_KEY, SECRET, marker, hostile] {
            assert!(!page.contains(secret), "the page shows {secret:?}");
        }
        assert!(!page.contains(&database_url), "the page shows the database URL");
    }
}

#[tokio::test]
async fn deliveries_are_counted_per_hour_and_outcome_from_the_given_hour() {
    use chrono::{DurationRound, TimeDelta, Utc};
    use twenty_mirror::mirror::{Delivery, Disposition, EventOutcome, HourlyDeliveries};

    let app = TestApp::spawn().await;
    let since = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap() - TimeDelta::hours(3);
    let logged = |after: TimeDelta, disposition: Disposition| Delivery {
        received_at: since + after,
        event_name: Some("metadata.updated".to_owned()),
        object: None,
        record_id: None,
        record_updated_at: None,
        body: "{}".to_owned(),
        disposition,
    };
    let deliveries = [
        logged(TimeDelta::milliseconds(-1), Disposition::Ignore), // before the range
        logged(TimeDelta::zero(), Disposition::Ignore),
        logged(TimeDelta::minutes(10), Disposition::Ignore),
        logged(TimeDelta::milliseconds(3_599_999), Disposition::Fail("bad".to_owned())),
        logged(TimeDelta::hours(1), Disposition::Ignore),
        logged(TimeDelta::minutes(150), Disposition::Fail("bad".to_owned())),
    ];
    app.store.record_deliveries(&deliveries).await.expect("logging deliveries");
    let hour = |n: i64| since + TimeDelta::hours(n);
    let row = |hour, outcome, deliveries| HourlyDeliveries { hour, outcome, deliveries };
    assert_eq!(
        app.store.deliveries_per_hour(since).await.expect("counting"),
        [
            row(hour(0), EventOutcome::Failed, 1),
            row(hour(0), EventOutcome::Ignored, 2),
            row(hour(1), EventOutcome::Ignored, 1),
            row(hour(2), EventOutcome::Failed, 1),
        ]
    );
}
