//! The read API, `GET /rest/{plural}[/{id}]`, over HTTP against the real application: the same
//! answers as the fake Twenty for the same records (`differential`), its tokens, errors and
//! freshness headers (`access`), and what it shows of the records' life cycle (`records`).

mod access;
mod differential;
mod records;

use chrono::Utc;
use serde_json::{Value, json};
use twenty_mirror::mirror::{Mode, Trigger};
use twenty_mirror::sync::reconciler::RunRequest;

use crate::helpers::fake_twenty::{FakeTwenty, encode_query, webhook_body};
use crate::helpers::{Options, TestApp, reconciler};

/// The token the tests' application accepts.
const TOKEN: &str = "read-api-test-token";

/// The application with the read API on, and a fake Twenty it reconciles from.
struct Fixture {
    app: TestApp,
    fake: FakeTwenty,
}

/// An answer: its status, its headers and its body as JSON (null when it is not JSON).
struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::start_with(Options::default().var("READ_API_TOKENS", &format!("other-token, {TOKEN}"))).await
    }

    async fn start_with(options: Options) -> Fixture {
        let fake = FakeTwenty::start().await;
        let app = TestApp::spawn_with(options).await;
        Fixture { app, fake }
    }

    /// A full pass: the mirror then holds what the fake holds.
    async fn reconcile(&self) {
        let run = reconciler(&self.app.store, &self.fake, |_, _| {});
        run.reconcile_once(RunRequest::new(Trigger::Operator, Mode::Full)).await.expect("a full pass");
    }

    /// Sends Twenty's webhook for a change the fake has just made.
    async fn deliver(&self, event_name: &str, record: &Value) {
        let body = webhook_body(event_name, record, &Utc::now().to_rfc3339());
        let (status, outcome) = self.app.deliver_json(&body).await;
        assert_eq!(status, 200, "{event_name}: {outcome:?}");
    }

    /// `GET /rest/{path}` on the mirror with `token` (none: no `Authorization` header).
    async fn mirror_with(&self, path: &str, pairs: &[(&str, &str)], token: Option<&str>) -> Answer {
        get(&self.app.client, &format!("{}/rest/{path}", self.app.address), pairs, token).await
    }

    async fn mirror(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        self.mirror_with(path, pairs, Some(TOKEN)).await
    }

    /// The same request to the fake Twenty.
    async fn twenty(&self, path: &str, pairs: &[(&str, &str)]) -> Answer {
        get(&self.app.client, &format!("{}/rest/{path}", self.fake.url()), pairs, Some(FakeTwenty::API_KEY))
            .await
    }
}

async fn get(client: &reqwest::Client, url: &str, pairs: &[(&str, &str)], token: Option<&str>) -> Answer {
    let url = if pairs.is_empty() { url.to_owned() } else { format!("{url}?{}", encode_query(pairs)) };
    let mut request = client.get(&url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let shown: String = url.chars().take(300).collect();
    let response = request.send().await.unwrap_or_else(|e| panic!("GET {shown}: {e:?}"));
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    Answer { status, headers, body }
}

impl Answer {
    /// The ids of a listing's records, in order.
    fn ids(&self, plural: &str) -> Vec<String> {
        self.body["data"][plural]
            .as_array()
            .unwrap_or_else(|| panic!("no {plural} in {}", self.body))
            .iter()
            .map(|record| record["id"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    fn page_info(&self, flag: &str) -> bool {
        self.body["pageInfo"][flag].as_bool().unwrap_or_else(|| panic!("no {flag} in {}", self.body))
    }

    fn cursor(&self, which: &str) -> Option<String> {
        self.body["pageInfo"][which].as_str().map(str::to_owned)
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Twenty's error shape, with its status.
fn assert_twenty_error(answer: &Answer, status: u16, message_part: &str) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert_eq!(answer.body["statusCode"], json!(status), "{}", answer.body);
    assert!(answer.body["error"].is_string(), "{}", answer.body);
    let messages = answer.body["messages"].as_array().unwrap_or_else(|| panic!("{}", answer.body));
    assert!(
        messages.iter().any(|m| m.as_str().is_some_and(|m| m.contains(message_part))),
        "expected a message with {message_part:?}: {}",
        answer.body
    );
}
