//! Who may read, what a refusal says, and the freshness every answer carries.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::{Fixture, TOKEN, assert_twenty_error};
use crate::helpers::Options;

#[tokio::test]
async fn without_read_api_tokens_the_api_is_closed_and_says_how_to_open_it() {
    let fixture = Fixture::start_with(Options::default()).await;
    for path in ["people", "people/0b8e9c58-0000-4000-8000-000000000001"] {
        let answer = fixture.mirror(path, &[]).await;
        assert_twenty_error(&answer, 403, "set READ_API_TOKENS");
    }
}

#[tokio::test]
async fn a_missing_token_is_403_and_a_wrong_one_401_as_twenty_answers() {
    let fixture = Fixture::start().await;
    fixture.reconcile().await;
    let person = fixture.fake.create("person", json!({"city": "Paris"}));
    fixture.deliver("person.created", &person).await;
    let one = format!("people/{}", person["id"].as_str().unwrap());
    for path in ["people", one.as_str()] {
        let missing = fixture.mirror_with(path, &[], None).await;
        assert_twenty_error(&missing, 403, "Missing authentication token");
        assert_eq!(missing.body["error"], "FORBIDDEN_EXCEPTION");
        let wrong = fixture.mirror_with(path, &[], Some("not-a-token")).await;
        assert_twenty_error(&wrong, 401, "Token invalid.");
        assert_eq!(wrong.body["error"], "UNAUTHENTICATED");
        let prefix = fixture.mirror_with(path, &[], Some(&TOKEN[..TOKEN.len() - 1])).await;
        assert_eq!(prefix.status, 401, "a prefix of a token is a wrong token");
        // Both configured tokens are accepted.
        for token in [TOKEN, "other-token"] {
            let right = fixture.mirror_with(path, &[], Some(token)).await;
            assert_eq!(right.status, 200, "{path} with {token}: {}", right.body);
        }
    }
}

#[tokio::test]
async fn the_envelope_and_one_record_are_twentys() {
    let fixture = Fixture::start().await;
    let person = fixture.fake.create("person", json!({"city": "Paris", "jobTitle": "CTO"}));
    fixture.reconcile().await;
    let id = person["id"].as_str().unwrap();
    let listing = fixture.mirror("people", &[]).await;
    assert_eq!(listing.status, 200, "{}", listing.body);
    assert_eq!(listing.body["data"]["people"], json!([person]), "records as Twenty sent them");
    assert_eq!(listing.body["totalCount"], 1);
    let info = &listing.body["pageInfo"];
    assert_eq!((info["hasNextPage"].clone(), info["hasPreviousPage"].clone()), (json!(false), json!(false)));
    assert_eq!(info["startCursor"], info["endCursor"]);
    let one = fixture.mirror(&format!("people/{id}"), &[]).await;
    assert_eq!(one.status, 200, "{}", one.body);
    assert_eq!(one.body, json!({"data": {"person": person}}));
}

#[tokio::test]
async fn bad_requests_are_400_naming_what_is_wrong_and_an_unknown_id_404() {
    let fixture = Fixture::start().await;
    fixture.fake.bulk_insert("person", (0..3).map(|i| json!({"city": format!("c{i}")})).collect());
    fixture.reconcile().await;
    let unknown = fixture.mirror("person", &[]).await;
    assert_twenty_error(&unknown, 400, "object 'person' not found. Did you mean 'people'?");
    let twenty = fixture.twenty("person", &[]).await;
    assert_eq!(twenty.status, 400, "the fake answers as Twenty: {}", twenty.body);
    assert_twenty_error(&fixture.mirror("nothing", &[]).await, 400, "object 'nothing' not found.");

    let cases: &[(&[(&str, &str)], &str)] = &[
        (&[("limit", "ten")], "limit 'ten' is invalid"),
        (&[("limit", "-1")], "limit '-1' is invalid"),
        (&[("depth", "2")], "'depth=2' parameter invalid"),
        (&[("order_by", "city[Sideways]")], "'order_by' direction 'Sideways' invalid"),
        (&[("order_by", "nope")], "field 'nope' does not exist"),
        (&[("order_by", "name")], "field 'name' is a composite field"),
        (&[("filter", "city[eq]:")], "filter"),
        (&[("filter", "and(city[eq]:a")], "filter"),
        (&[("filter", "nope[eq]:1")], "field 'nope' does not exist"),
        (&[("filter", "createdAt[gt]:yesterday")], "'yesterday' is not a date-time"),
        (&[("starting_after", "bm90IGpzb24=")], "Invalid cursor"),
        (&[("starting_after", "a"), ("ending_before", "b")], "cannot be used together"),
    ];
    for (pairs, message) in cases {
        assert_twenty_error(&fixture.mirror("people", pairs).await, 400, message);
    }

    // A cursor made for another ordering.
    let by_city = fixture.mirror("people", &[("order_by", "city"), ("limit", "1")]).await;
    let cursor = by_city.cursor("endCursor").expect("a cursor");
    let other = fixture.mirror("people", &[("starting_after", &cursor)]).await;
    assert_eq!(other.status, 200, "an id ordering finds its key in any cursor: {}", other.body);
    let by_id = fixture.mirror("people", &[("limit", "1")]).await;
    let cursor = by_id.cursor("endCursor").expect("a cursor");
    let refused = fixture.mirror("people", &[("order_by", "city"), ("starting_after", &cursor)]).await;
    assert_twenty_error(&refused, 400, "Cursor is missing the value for orderBy field \"city\"");
    assert_eq!(refused.body["error"], "INVALID_CURSOR");

    assert_twenty_error(
        &fixture.mirror("people/not-a-uuid", &[]).await,
        400,
        "'not-a-uuid' is not a valid UUID",
    );
    let missing = fixture.mirror("people/0b8e9c58-0000-4000-8000-000000000001", &[]).await;
    assert_twenty_error(&missing, 404, "not found");
    assert_eq!(
        fixture.twenty("people/0b8e9c58-0000-4000-8000-000000000001", &[]).await.status,
        404,
        "the fake answers an unknown id alike"
    );
}

#[tokio::test]
async fn limit_defaults_to_60_and_stops_at_200() {
    let fixture = Fixture::start().await;
    fixture.fake.bulk_insert("person", (0..230).map(|i| json!({"city": format!("c{i}")})).collect());
    fixture.reconcile().await;
    for (limit, expected) in [(None, 60), (Some("5"), 5), (Some("0"), 0), (Some("500"), 200), (Some(""), 60)]
    {
        let pairs: Vec<(&str, &str)> = limit.map(|l| ("limit", l)).into_iter().collect();
        let answer = fixture.mirror("people", &pairs).await;
        assert_eq!(answer.ids("people").len(), expected, "limit {limit:?}");
        assert_eq!(answer.body["totalCount"], 230);
    }
}

fn instant(text: Option<&str>) -> DateTime<Utc> {
    let text = text.expect("a freshness header");
    assert!(text.ends_with('Z') && text.len() == 24, "RFC 3339 in UTC to the millisecond: {text}");
    DateTime::parse_from_rfc3339(text).expect("RFC 3339").to_utc()
}

#[tokio::test]
async fn every_answer_says_when_the_last_pass_ended_and_the_last_delivery_came() {
    let fixture = Fixture::start().await;
    let person = fixture.fake.create("person", json!({"city": "Paris"}));
    let one = format!("people/{}", person["id"].as_str().unwrap());
    let started = Utc::now();
    fixture.reconcile().await;
    for path in ["people", one.as_str()] {
        let answer = fixture.mirror(path, &[]).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let pass = instant(answer.header("x-mirror-last-complete-pass"));
        assert!(pass >= started - chrono::Duration::milliseconds(1) && pass <= Utc::now(), "{pass}");
        assert_eq!(answer.header("x-mirror-last-delivery"), None);
    }

    let delivered = Utc::now();
    let updated = fixture.fake.update("person", person["id"].as_str().unwrap(), json!({"city": "Lyon"}));
    fixture.deliver("person.updated", &updated).await;
    let missing = fixture.mirror("people/0b8e9c58-0000-4000-8000-000000000001", &[]).await;
    for answer in [fixture.mirror("people", &[]).await, fixture.mirror(&one, &[]).await, missing] {
        let last = instant(answer.header("x-mirror-last-delivery"));
        assert!(last >= delivered - chrono::Duration::milliseconds(1) && last <= Utc::now(), "{last}");
        assert!(answer.header("x-mirror-last-complete-pass").is_some());
    }
}
