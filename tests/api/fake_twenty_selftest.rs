//! The fake Twenty server's own tests: it must behave as `../shared/twenty-protocol.md` says Twenty
//! does, since the reconciler's tests rely on it.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::fake_twenty::{FakeTwenty, Fault, MetadataShape, encode_query, webhook_body};

/// A client for the fake: GETs with the API key, answering status, headers and the body.
struct Client {
    http: reqwest::Client,
    base: String,
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
}

impl Client {
    fn new(fake: &FakeTwenty) -> Client {
        Client { http: reqwest::Client::new(), base: fake.url().to_owned() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("a response from the fake");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        Answer { status, headers, text }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Answer {
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{}", self.base, encode_query(query))
        };
        self.send(self.http.get(url).bearer_auth(FakeTwenty::API_KEY)).await
    }

    async fn with_body(&self, method: reqwest::Method, path: &str, body: &Value) -> Answer {
        let request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(FakeTwenty::API_KEY)
            .json(body);
        self.send(request).await
    }

    /// `GET /rest/{plural}` answered 200: the records and the whole body.
    async fn list(&self, plural: &str, query: &[(&str, &str)]) -> (Vec<Value>, Value) {
        let answer = self.get(&format!("/rest/{plural}"), query).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let body = answer.json();
        let records = body["data"][plural].as_array().expect("data.<plural> is an array").clone();
        (records, body)
    }
}

fn ids(records: &[Value]) -> Vec<String> {
    records.iter().map(|r| r["id"].as_str().expect("an id").to_owned()).collect()
}

fn error_shape(answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{}", answer.text);
    let body = answer.json();
    assert_eq!(body["statusCode"], status);
    assert!(body["error"].is_string(), "{body}");
    assert!(body["messages"][0].is_string(), "{body}");
}

#[tokio::test]
async fn requests_need_the_api_key() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let url = format!("{}/rest/people", fake.url());
    let expected = json!({"statusCode": 401, "error": "Unauthorized", "messages": ["Token invalid."]});

    let none = client.send(client.http.get(&url)).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json(), expected);
    let wrong = client.send(client.http.get(&url).bearer_auth("another-key")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json(), expected);
    let metadata = client.send(client.http.get(format!("{}/rest/metadata/objects", fake.url()))).await;
    assert_eq!(metadata.status, 401);

    assert_eq!(client.get("/rest/people", &[]).await.status, 200);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 401, 401, 200]);
}

#[tokio::test]
async fn metadata_comes_in_both_shapes() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    fake.add_object("websiteProperty", "websiteProperties", true);

    let nested = client.get("/rest/metadata/objects", &[]).await.json();
    let objects = nested["data"]["objects"].as_array().expect("data.objects").clone();
    assert_eq!(nested["totalCount"], objects.len());
    assert_eq!(nested["pageInfo"]["hasNextPage"], false);

    fake.set_metadata_shape(MetadataShape::Flat);
    let flat = client.get("/rest/metadata/objects", &[]).await.json();
    assert_eq!(flat["data"].as_array().expect("data is an array"), &objects);
    assert_eq!(flat["totalCount"], objects.len());

    let find = |singular: &str| {
        objects.iter().find(|o| o["nameSingular"] == singular).unwrap_or_else(|| panic!("{singular}")).clone()
    };
    let person = find("person");
    assert_eq!(person["namePlural"], "people");
    assert_eq!((person["isActive"].clone(), person["isSystem"].clone()), (json!(true), json!(false)));
    for key in ["id", "labelSingular", "labelPlural", "isCustom", "fields"] {
        assert!(person.get(key).is_some(), "person.{key}");
    }
    for field in person["fields"].as_array().expect("fields") {
        for key in ["id", "name", "type", "isNullable", "isActive", "isSystem", "options", "relation"] {
            assert!(field.get(key).is_some(), "field.{key} in {field}");
        }
    }
    let company =
        person["fields"].as_array().unwrap().iter().find(|f| f["name"] == "company").unwrap().clone();
    assert_eq!(company["relation"]["targetObjectMetadata"]["namePlural"], "companies");
    assert_eq!(find("company")["namePlural"], "companies");
    assert_eq!(find("opportunity")["namePlural"], "opportunities");
    assert_eq!(find("workspaceMember")["isSystem"], true);
    assert_eq!(find("legacyThing")["isActive"], false);
    let custom = find("websiteProperty");
    assert_eq!(
        (custom["namePlural"].clone(), custom["isCustom"].clone()),
        (json!("websiteProperties"), json!(true))
    );
    assert_eq!(custom["isActive"], true);

    // The custom object is served, the inactive one is not.
    fake.create("websiteProperty", json!({"name": "home"}));
    assert_eq!(client.list("websiteProperties", &[]).await.0.len(), 1);
    // An inactive object is no object: Twenty's 400.
    error_shape(&client.get("/rest/legacyThings", &[]).await, 400);
    let unknown = client.get("/rest/nothings", &[]).await;
    error_shape(&unknown, 400);
    assert_eq!(unknown.json()["messages"][0], "object 'nothings' not found.");
    let singular = client.get("/rest/person", &[]).await.json();
    assert_eq!(singular["messages"][0], "object 'person' not found. Did you mean 'people'?");
}

#[tokio::test]
async fn pages_through_450_records_with_cursors() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    for n in 0..450 {
        fake.create("person", json!({"jobTitle": format!("job {n}")}));
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "200")];
        if let Some(cursor) = &cursor {
            query.push(("starting_after", cursor));
        }
        let (records, body) = client.list("people", &query).await;
        pages += 1;
        assert_eq!(body["totalCount"], 450, "the count ignores the cursor");
        assert_eq!(body["pageInfo"]["hasPreviousPage"], cursor.is_some());
        seen.extend(ids(&records));
        if body["pageInfo"]["hasNextPage"] == false {
            assert_eq!(records.len(), 50);
            break;
        }
        assert_eq!(records.len(), 200);
        assert!(body["pageInfo"]["startCursor"].is_string());
        cursor = Some(body["pageInfo"]["endCursor"].as_str().expect("an end cursor").to_owned());
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 450);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 450);
    assert_eq!(seen, ids(&fake.records("person")), "default order: id ascending");

    // ending_before goes back.
    let (first, body) = client.list("people", &[("limit", "10")]).await;
    let end = body["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    let (second, body) = client.list("people", &[("limit", "10"), ("starting_after", &end)]).await;
    let start = body["pageInfo"]["startCursor"].as_str().unwrap().to_owned();
    let (back, _) = client.list("people", &[("limit", "10"), ("ending_before", &start)]).await;
    assert_eq!(ids(&back), ids(&first));
    assert_ne!(ids(&second), ids(&first));
}

#[tokio::test]
async fn limit_defaults_to_60_and_is_clamped_to_200() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let records: Vec<Value> = (0..250)
        .map(|n| json!({"id": format!("p{n:03}"), "updatedAt": "2026-01-01T00:00:00.000Z"}))
        .collect();
    fake.bulk_insert("person", records);

    assert_eq!(client.list("people", &[]).await.0.len(), 60);
    let (records, body) = client.list("people", &[("limit", "500")]).await;
    assert_eq!(records.len(), 200);
    assert_eq!(body["pageInfo"]["hasNextPage"], true);
    assert_eq!(body["totalCount"], 250);
    assert_eq!(client.list("people", &[("limit", "7"), ("depth", "0")]).await.0.len(), 7);
    error_shape(&client.get("/rest/people", &[("limit", "many")]).await, 400);
}

#[tokio::test]
async fn soft_deleted_records_are_hidden_unless_the_filter_mentions_deleted_at() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let a = fake.create("person", json!({"jobTitle": "a"}));
    let b = fake.create("person", json!({"jobTitle": "b"}));
    let deleted = fake.soft_delete("person", b["id"].as_str().unwrap());
    assert!(deleted["deletedAt"].is_string());
    assert_eq!(deleted["deletedAt"], deleted["updatedAt"]);
    assert!(deleted["updatedAt"].as_str() > b["updatedAt"].as_str());

    let (visible, body) = client.list("people", &[]).await;
    assert_eq!(ids(&visible), ids(std::slice::from_ref(&a)));
    assert_eq!(body["totalCount"], 1);
    let (visible, _) = client.list("people", &[("filter", "jobTitle[neq]:\"zzz\"")]).await;
    assert_eq!(visible.len(), 1, "a filter that does not mention deletedAt still hides them");

    let (only_deleted, body) = client.list("people", &[("filter", "deletedAt[is]:NOT_NULL")]).await;
    assert_eq!(only_deleted, vec![deleted.clone()]);
    assert_eq!(body["totalCount"], 1);
    let (both, _) =
        client.list("people", &[("filter", "or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL)")]).await;
    assert_eq!(both.len(), 2);

    let id = deleted["id"].as_str().unwrap();
    error_shape(&client.get(&format!("/rest/people/{id}"), &[]).await, 404);
    assert_eq!(fake.records("person").len(), 2, "records() includes soft-deleted ones");

    let restored = fake.restore("person", id);
    assert_eq!(restored["deletedAt"], Value::Null);
    let one = client.get(&format!("/rest/people/{id}"), &[]).await;
    assert_eq!(one.status, 200);
    assert_eq!(one.json(), json!({"data": {"person": restored}}));

    let destroyed = fake.destroy("person", id);
    assert_eq!(destroyed, restored, "destroy returns the row as it was");
    assert_eq!(fake.records("person").len(), 1);
    assert!(fake.record("person", id).is_none());
    error_shape(&client.get(&format!("/rest/people/{id}"), &[]).await, 404);
}

#[tokio::test]
async fn the_delta_filter_sees_changes_and_soft_deletes() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let unchanged = fake.create("company", json!({"name": "unchanged"}));
    let changed = fake.create("company", json!({"name": "changed"}));
    let gone = fake.create("company", json!({"name": "gone"}));
    let watermark = fake.begin().started_at();

    let changed = fake.update("company", changed["id"].as_str().unwrap(), json!({"name": "changed!"}));
    let gone = fake.soft_delete("company", gone["id"].as_str().unwrap());
    let created = fake.create("company", json!({"name": "new"}));

    let filter = format!("or(updatedAt[gte]:\"{watermark}\",deletedAt[gte]:\"{watermark}\")");
    let query = [("filter", filter.as_str()), ("order_by", "updatedAt[AscNullsFirst]")];
    let (records, body) = client.list("companies", &query).await;
    assert_eq!(records, vec![changed.clone(), gone.clone(), created]);
    assert_eq!(body["totalCount"], 3);
    assert!(!ids(&records).contains(&unchanged["id"].as_str().unwrap().to_owned()));

    // Other operators and combinators.
    let count = |filter: String| {
        let client = &client;
        async move { client.list("companies", &[("filter", filter.as_str())]).await.0.len() }
    };
    assert_eq!(count(format!("updatedAt[lt]:\"{watermark}\"")).await, 1);
    assert_eq!(count("and(name[like]:\"%ed%\",not(name[eq]:unchanged))".into()).await, 1);
    assert_eq!(count("name[in]:[\"unchanged\",\"new\"]".into()).await, 2);
    assert_eq!(count("name[ilike]:\"UN%\",name[startsWith]:un".into()).await, 1, "top level: and");
    assert_eq!(
        count("not(deletedAt[gte]:\"2000-01-01T00:00:00.000Z\")".into()).await,
        0,
        "NULL stays unknown"
    );
    for bad in ["updatedAt[gte]", "name[nope]:x", "or(name[eq]:x", "name[eq]:\"x", "foo(name[eq]:x)"] {
        error_shape(&client.get("/rest/companies", &[("filter", bad)]).await, 400);
    }
}

#[tokio::test]
async fn a_late_commit_appears_with_an_older_updated_at() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let first = fake.create("person", json!({"jobTitle": "first"}));
    let tx = fake.begin();
    let second = fake.create("person", json!({"jobTitle": "second"}));
    let query = [("order_by", "updatedAt[AscNullsFirst]")];
    let (records, body) = client.list("people", &query).await;
    assert_eq!(records, vec![first.clone(), second.clone()]);
    let cursor = body["pageInfo"]["endCursor"].as_str().unwrap().to_owned();

    let late = fake.commit_create(tx, "person", json!({"jobTitle": "late"}));
    let moved = fake.commit_update(tx, "person", first["id"].as_str().unwrap(), json!({"jobTitle": "moved"}));
    assert_eq!(late["updatedAt"], tx.started_at());
    assert_eq!(moved["updatedAt"], tx.started_at());
    assert!(late["updatedAt"].as_str() < second["updatedAt"].as_str(), "older than a record already read");

    let after = [("order_by", "updatedAt[AscNullsFirst]"), ("starting_after", cursor.as_str())];
    assert!(client.list("people", &after).await.0.is_empty(), "a cursor past them misses them");
    let (records, _) = client.list("people", &query).await;
    let mut expected = vec![moved.clone(), late.clone()];
    expected.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    expected.push(second.clone());
    assert_eq!(records, expected, "updatedAt order, id breaking ties");

    // Other orders are served too.
    let (desc, _) = client.list("people", &[("order_by", "updatedAt[DescNullsLast]")]).await;
    assert_eq!(desc[0], second);
    let (by_id, _) = client.list("people", &[("order_by", "id")]).await;
    assert_eq!(by_id, fake.records("person"));
    let next = fake.update("person", second["id"].as_str().unwrap(), json!({}));
    assert!(next["updatedAt"].as_str() > second["updatedAt"].as_str(), "the clock only moves forward");
}

#[tokio::test]
async fn a_lagging_replica_serves_older_data() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let person = fake.create("person", json!({"jobTitle": "v1"}));
    let id = person["id"].as_str().unwrap().to_owned();
    fake.set_replica_lag(Duration::from_millis(400));
    tokio::time::sleep(Duration::from_millis(500)).await;

    let updated = fake.update("person", &id, json!({"jobTitle": "v2"}));
    let fresh = fake.create("person", json!({"jobTitle": "fresh"}));
    let (records, body) = client.list("people", &[]).await;
    assert_eq!(records, vec![person.clone()], "the replica has neither the update nor the new record");
    assert_eq!(body["totalCount"], 1);
    assert_eq!(client.get(&format!("/rest/people/{id}"), &[]).await.json()["data"]["person"], person);
    error_shape(&client.get(&format!("/rest/people/{}", fresh["id"].as_str().unwrap()), &[]).await, 404);
    assert_eq!(fake.records("person").len(), 2, "records() is the primary");

    tokio::time::sleep(Duration::from_millis(500)).await;
    let (records, _) = client.list("people", &[("order_by", "updatedAt")]).await;
    assert_eq!(records, vec![updated, fresh]);

    fake.destroy("person", &id);
    assert_eq!(client.list("people", &[]).await.0.len(), 2, "the destroy has not reached the replica");
    fake.set_replica_lag(Duration::ZERO);
    assert_eq!(client.list("people", &[]).await.0.len(), 1);
}

#[tokio::test]
async fn over_the_rate_limit_answers_429_without_retry_after() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    fake.set_rate_limit(3, Duration::from_secs(60));
    for _ in 0..3 {
        assert_eq!(client.get("/rest/people", &[]).await.status, 200);
    }
    let refused = client.get("/rest/people", &[]).await;
    error_shape(&refused, 429);
    assert!(refused.headers.get("retry-after").is_none());
    assert!(refused.json()["messages"][0].as_str().unwrap().starts_with("Limit reached"));
    assert_eq!(client.get("/rest/metadata/objects", &[]).await.status, 429, "every route counts");
    let anonymous = client.send(client.http.get(format!("{}/rest/people", fake.url()))).await;
    assert_eq!(anonymous.status, 401, "unauthenticated requests are not counted nor limited");

    // Two buckets: 100 a minute and 2 a second, refilled continuously.
    fake.set_rate_limits(&[(100, Duration::from_secs(60)), (2, Duration::from_secs(1))]);
    assert_eq!(client.get("/rest/people", &[]).await.status, 200);
    assert_eq!(client.get("/rest/people", &[]).await.status, 200);
    assert_eq!(client.get("/rest/people", &[]).await.status, 429);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(client.get("/rest/people", &[]).await.status, 200, "one token back after half a second");
    assert_eq!(client.get("/rest/people", &[]).await.status, 429);

    fake.set_rate_limits(&[]);
    assert_eq!(client.get("/rest/people", &[]).await.status, 200);
}

#[tokio::test]
async fn older_releases_answer_400_limit_reached() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    fake.set_rate_limit(1, Duration::from_secs(60));
    fake.set_limit_reached_as_400(true);
    assert_eq!(client.get("/rest/people", &[]).await.status, 200);
    let refused = client.get("/rest/people", &[]).await;
    error_shape(&refused, 400);
    assert!(refused.json()["messages"][0].as_str().unwrap().starts_with("Limit reached"));

    fake.set_rate_limits(&[]);
    fake.inject(Fault::LimitReached400, 1);
    let injected = client.get("/rest/people", &[]).await;
    error_shape(&injected, 400);
    assert!(injected.json()["messages"][0].as_str().unwrap().starts_with("Limit reached"));
    assert_eq!(client.get("/rest/people", &[]).await.status, 200);
}

#[tokio::test]
async fn injected_faults_and_delays() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let person = fake.create("person", json!({}));
    let one = format!("/rest/people/{}", person["id"].as_str().unwrap());

    fake.inject(Fault::Status(500), 2);
    fake.inject(Fault::Status(401), 1);
    assert_eq!(client.get("/rest/metadata/objects", &[]).await.status, 200, "metadata is not affected");
    error_shape(&client.get("/rest/people", &[]).await, 500);
    error_shape(&client.get(&one, &[]).await, 500);
    error_shape(&client.get("/rest/people", &[]).await, 401);
    assert_eq!(client.get("/rest/people", &[]).await.status, 200);

    fake.inject(Fault::Status(502), 1);
    let proxy = client.get("/rest/people", &[]).await;
    assert_eq!(proxy.status, 502);
    assert!(proxy.text.contains("502 Bad Gateway"), "a proxy's HTML page");

    fake.inject(Fault::Status(429), 1);
    let throttled = client.get("/rest/people", &[]).await;
    error_shape(&throttled, 429);
    assert!(throttled.headers.get("retry-after").is_none());

    fake.fail_always(Some(Fault::Status(503)));
    for _ in 0..3 {
        assert_eq!(client.get("/rest/people", &[]).await.status, 503);
    }
    fake.fail_always(None);
    assert_eq!(client.get("/rest/people", &[]).await.status, 200);

    fake.inject(Fault::Delay(Duration::from_millis(300)), 1);
    let started = Instant::now();
    let (records, _) = client.list("people", &[]).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(records, vec![person]);
    let started = Instant::now();
    client.list("people", &[]).await;
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn the_webhook_subscription_api() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let base = "/rest/metadata/webhooks";
    let operations = json!(["*.created", "*.updated", "*.deleted", "*.restored", "*.destroyed"]);
    let created = client
        .with_body(
            reqwest::Method::POST,
            base,
            &json!({"targetUrl": "https://mirror.example.com/webhooks/twenty", "operations": operations,
                    "description": "mirror", "secret": "s3cret"}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let subscription = created.json();
    let mut keys: Vec<&str> = subscription.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["createdAt", "description", "id", "operations", "secret", "targetUrl", "updatedAt"]);
    assert_eq!(subscription["secret"], "s3cret");
    assert_eq!(subscription["operations"], operations);
    let id = subscription["id"].as_str().unwrap().to_owned();

    let generated = client
        .with_body(reqwest::Method::POST, base, &json!({"targetUrl": "https://other.example.com/hook"}))
        .await;
    assert_eq!(generated.status, 201);
    let generated = generated.json();
    assert!(!generated["secret"].as_str().unwrap().is_empty(), "a secret is generated when none is given");
    assert_eq!(generated["operations"], json!(["*.*"]));
    let unsigned = client
        .with_body(
            reqwest::Method::POST,
            base,
            &json!({"targetUrl": "https://x.example.com/h", "secret": ""}),
        )
        .await
        .json();
    assert_eq!(unsigned["secret"], "");
    error_shape(&client.with_body(reqwest::Method::POST, base, &json!({"operations": ["*.*"]})).await, 400);

    let list = client.get(base, &[]).await.json();
    assert_eq!(list.as_array().expect("a plain array").len(), 3);
    assert_eq!(list[0], subscription);
    fake.set_webhook_list_paged(true);
    let paged = client.get(base, &[]).await.json();
    assert_eq!(paged["data"], list);
    assert_eq!(paged["totalCount"], 3);
    assert!(paged["pageInfo"].is_object());

    let one = client.get(&format!("{base}/{id}"), &[]).await;
    assert_eq!((one.status, one.json()), (200, subscription.clone()));
    let missing = client.get(&format!("{base}/00000000-0000-4000-8000-000000000000"), &[]).await;
    assert_eq!((missing.status, missing.text.as_str()), (200, ""), "a missing id: 200 and an empty body");

    let patched = client
        .with_body(reqwest::Method::PATCH, &format!("{base}/{id}"), &json!({"operations": ["*.*"]}))
        .await;
    assert_eq!(patched.status, 200);
    assert_eq!(patched.json()["operations"], json!(["*.*"]));
    assert_eq!(fake.webhooks()[0]["operations"], json!(["*.*"]));
    let deleted = client
        .send(client.http.delete(format!("{}{base}/{id}", fake.url())).bearer_auth(FakeTwenty::API_KEY))
        .await;
    assert_eq!(deleted.status, 200);
    assert_eq!(fake.webhooks().len(), 2);
    assert!(fake.webhooks().iter().all(|w| w["id"] != id.as_str()));

    // Older servers: /rest/webhooks only.
    fake.set_legacy_webhooks_path(true);
    error_shape(&client.get(base, &[]).await, 404);
    let legacy = client
        .with_body(
            reqwest::Method::POST,
            "/rest/webhooks",
            &json!({"targetUrl": "https://legacy.example.com/h"}),
        )
        .await;
    assert_eq!(legacy.status, 201);
    assert_eq!(client.get("/rest/webhooks", &[]).await.json()["totalCount"], 3);
    fake.set_legacy_webhooks_path(false);
    error_shape(&client.get("/rest/webhooks", &[]).await, 404);
}

#[tokio::test]
async fn requests_are_logged() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    client.get("/rest/people", &[("limit", "5"), ("filter", "id[eq]:\"x y\"")]).await;
    client.get("/rest/metadata/objects", &[]).await;
    let requests = fake.requests();
    assert_eq!(fake.request_count(), 2);
    assert_eq!((requests[0].method.as_str(), requests[0].path.as_str()), ("GET", "/rest/people"));
    assert_eq!(requests[0].query, encode_query(&[("limit", "5"), ("filter", "id[eq]:\"x y\"")]));
    assert_eq!(requests[0].status, 200);
    assert!(requests[0].at <= requests[1].at);
    fake.reset_requests();
    assert_eq!(fake.request_count(), 0);
}

#[tokio::test]
async fn webhook_bodies_match_the_metadata() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let record = fake.create("opportunity", json!({"name": "deal"}));
    let body = webhook_body("opportunity.created", &record, "2026-09-21T10:20:02.877Z");
    assert_eq!(body["eventName"], "opportunity.created");
    assert_eq!(body["objectMetadata"]["nameSingular"], "opportunity");
    assert_eq!(body["record"], record);
    assert_eq!(body["eventDate"], "2026-09-21T10:20:02.877Z");
    assert_eq!(body["workspaceId"], FakeTwenty::WORKSPACE_ID);
    for key in ["targetUrl", "webhookId"] {
        assert!(body[key].is_string(), "{key}");
    }
    let objects = client.get("/rest/metadata/objects", &[]).await.json();
    let opportunity = objects["data"]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["nameSingular"] == "opportunity")
        .cloned();
    assert_eq!(body["objectMetadata"]["id"], opportunity.unwrap()["id"]);
}

#[tokio::test]
async fn the_server_stops_when_dropped() {
    let fake = FakeTwenty::start().await;
    let url = format!("{}/rest/people", fake.url());
    drop(fake);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if http.get(&url).bearer_auth(FakeTwenty::API_KEY).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the port is closed after the drop");
}

#[tokio::test]
async fn paging_100k_records_is_fast() {
    let fake = FakeTwenty::start().await;
    let client = Client::new(&fake);
    let base = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap();
    // Small records: this checks that a full pass is linear, not serde_json's speed in a debug build
    // (1 KB records take ~15 ms a page to serialise unoptimised, ~1 ms in release).
    let padding = "x".repeat(50);
    let records: Vec<Value> = (0..100_000)
        .map(|n| {
            let at = (base + chrono::Duration::milliseconds(n / 3)).to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            json!({"id": format!("{n:08}"), "createdAt": at, "updatedAt": at, "deletedAt": null, "bio": padding})
        })
        .collect();
    fake.bulk_insert("person", records);

    let started = Instant::now();
    let filter =
        "or(updatedAt[gte]:\"2025-01-01T00:00:00.000Z\",deletedAt[gte]:\"2025-01-01T00:00:00.000Z\")";
    let mut cursor: Option<String> = None;
    let mut seen = 0;
    let mut pages = 0;
    loop {
        let mut query = vec![("limit", "200"), ("order_by", "updatedAt[AscNullsFirst]"), ("filter", filter)];
        if let Some(cursor) = &cursor {
            query.push(("starting_after", cursor));
        }
        let (records, body) = client.list("people", &query).await;
        seen += records.len();
        pages += 1;
        if body["pageInfo"]["hasNextPage"] == false {
            break;
        }
        cursor = body["pageInfo"]["endCursor"].as_str().map(str::to_owned);
    }
    let elapsed = started.elapsed();
    assert_eq!((seen, pages), (100_000, 500));
    eprintln!("500 pages of 200 out of 100,000 records in {elapsed:?}");
    assert!(elapsed < Duration::from_secs(60), "{elapsed:?}");
}
