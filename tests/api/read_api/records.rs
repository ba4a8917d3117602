//! What the read API shows of the records' life cycle and relations, how a cursor walk behaves
//! while the records change, and how it stands up to filters built to hurt.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{Fixture, assert_twenty_error};

#[tokio::test]
async fn soft_deleted_records_show_only_when_the_filter_mentions_deleted_at_and_destroyed_ones_never() {
    let fixture = Fixture::start().await;
    let ids: Vec<String> = (0..4)
        .map(|i| {
            fixture.fake.create("person", json!({"city": format!("c{i}")}))["id"].as_str().unwrap().to_owned()
        })
        .collect();
    fixture.reconcile().await;
    let soft = fixture.fake.soft_delete("person", &ids[0]);
    fixture.deliver("person.deleted", &soft).await;
    let destroyed = fixture.fake.destroy("person", &ids[1]);
    fixture.deliver("person.destroyed", &destroyed).await;

    let live = fixture.mirror("people", &[]).await;
    assert_eq!(live.ids("people"), sorted(&ids[2..]));
    assert_eq!(live.body["totalCount"], 2, "the kept live count");
    let with_deleted = fixture.mirror("people", &[("filter", "deletedAt[is]:NOT_NULL")]).await;
    assert_eq!(with_deleted.ids("people"), vec![ids[0].clone()]);
    let either =
        fixture.mirror("people", &[("filter", "or(deletedAt[is]:NULL,deletedAt[is]:NOT_NULL)")]).await;
    assert_eq!(either.ids("people"), sorted(&[ids[0].clone(), ids[2].clone(), ids[3].clone()]));
    assert_eq!(either.body["totalCount"], 3, "destroyed records are never counted");

    assert_twenty_error(&fixture.mirror(&format!("people/{}", ids[0]), &[]).await, 404, "not found");
    assert_twenty_error(&fixture.mirror(&format!("people/{}", ids[1]), &[]).await, 404, "not found");
    assert_eq!(fixture.mirror(&format!("people/{}", ids[2]), &[]).await.status, 200);
}

fn sorted(ids: &[String]) -> Vec<String> {
    let mut ids = ids.to_vec();
    ids.sort();
    ids
}

#[tokio::test]
async fn depth_1_nests_each_many_to_one_record_from_the_mirror() {
    let fixture = Fixture::start().await;
    let acme = fixture.fake.create("company", json!({"name": "Acme"}));
    let gone = fixture.fake.create("company", json!({"name": "Gone"}));
    let acme_id = acme["id"].as_str().unwrap();
    let people: Vec<_> =
        [json!({"companyId": acme_id}), json!({"companyId": gone["id"]}), json!({"companyId": null})]
            .into_iter()
            .chain((0..5).map(|_| json!({"companyId": acme_id})))
            .map(|fields| fixture.fake.create("person", fields))
            .collect();
    fixture.reconcile().await;
    let destroyed = fixture.fake.destroy("company", gone["id"].as_str().unwrap());
    fixture.deliver("company.destroyed", &destroyed).await;

    let flat = fixture.mirror("people", &[]).await;
    assert!(flat.body["data"]["people"].as_array().unwrap().iter().all(|p| p.get("company").is_none()));
    let nested = fixture.mirror("people", &[("depth", "1")]).await;
    assert_eq!(nested.status, 200, "{}", nested.body);
    for record in nested.body["data"]["people"].as_array().unwrap() {
        let expected = if record["companyId"] == acme["id"] { acme.clone() } else { json!(null) };
        assert_eq!(record["company"], expected, "{record}");
        let original = people.iter().find(|p| p["id"] == record["id"]).unwrap();
        let mut without = record.clone();
        without.as_object_mut().unwrap().remove("company");
        assert_eq!(&without, original, "the record itself is unchanged");
    }
    let one =
        fixture.mirror(&format!("people/{}", people[0]["id"].as_str().unwrap()), &[("depth", "1")]).await;
    assert_eq!(one.body["data"]["person"]["company"], acme);
    assert_twenty_error(&fixture.mirror("people", &[("depth", "2")]).await, 400, "Allowed values are 0, 1");
}

/// Walks every page forward while other records are created, updated and destroyed between
/// pages: every record that was there throughout and did not change is seen exactly once.
#[tokio::test]
async fn a_cursor_walk_across_concurrent_writes_skips_and_repeats_nothing_that_stayed() {
    let fixture = Fixture::start().await;
    let ids: Vec<String> = (0..120)
        .map(|i| {
            fixture.fake.create("person", json!({"city": format!("c{:03}", i % 40)}))["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    fixture.reconcile().await;
    let (stable, changing) = ids.split_at(60);
    for order_by in ["", "city[DescNullsLast]", "updatedAt"] {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        let mut round = 0;
        loop {
            let mut pairs = vec![("limit", "7"), ("order_by", order_by)];
            if let Some(cursor) = &cursor {
                pairs.push(("starting_after", cursor));
            }
            let page = fixture.mirror("people", &pairs).await;
            assert_eq!(page.status, 200, "{}", page.body);
            seen.extend(page.ids("people"));
            // Writes between pages, by webhook as Twenty would send them.
            let target = &changing[round % changing.len()];
            match round % 3 {
                0 if fixture.fake.record("person", target).is_some() => {
                    let updated = fixture.fake.update("person", target, json!({"city": format!("m{round}")}));
                    fixture.deliver("person.updated", &updated).await;
                }
                1 if fixture.fake.record("person", target).is_some() => {
                    let destroyed = fixture.fake.destroy("person", target);
                    fixture.deliver("person.destroyed", &destroyed).await;
                }
                _ => {
                    let created = fixture.fake.create("person", json!({"city": format!("n{round}")}));
                    fixture.deliver("person.created", &created).await;
                }
            }
            round += 1;
            if !page.page_info("hasNextPage") {
                break;
            }
            cursor = page.cursor("endCursor");
        }
        for id in stable {
            let times = seen.iter().filter(|seen| *seen == id).count();
            assert_eq!(times, 1, "order {order_by:?}: {id} seen {times} times");
        }
    }
}

/// A request written on the socket as it is: HTTP clients refuse to build a URI past 64 KiB, and
/// the point is what the server does with one.
async fn raw_get(address: &str, path_and_query: &str) -> (u16, String) {
    let host = address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connecting");
    let request = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        super::TOKEN
    );
    // The server may answer, and close, before it has read the whole request.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read @ 1..) = stream.read(&mut buffer).await {
        answer.extend_from_slice(&buffer[..read]);
    }
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn filters_built_to_hurt_get_a_400_fast() {
    let fixture = Fixture::start().await;
    fixture.fake.create("person", json!({"city": "Paris"}));
    fixture.reconcile().await;
    // `[` and `]` percent-encoded, the rest as it is. A URI past 64 KiB is refused by the HTTP
    // layer (400, no body) before any handler runs; below that, the filter's own bounds (32 KiB,
    // 16 levels) answer in Twenty's shape.
    let cases = [
        ("100 KB", format!("city%5Beq%5D:{}", "P".repeat(100 * 1024)), false),
        ("60 KB", format!("city%5Beq%5D:{}", "P".repeat(60 * 1024)), true),
        (
            "10,000 nested and(",
            format!("{}city%5Beq%5D:Paris{}", "and(".repeat(10_000), ")".repeat(10_000)),
            true,
        ),
    ];
    for (what, filter, reaches_the_handler) in cases {
        let started = Instant::now();
        let (status, body) = raw_get(&fixture.app.address, &format!("/rest/people?filter={filter}")).await;
        let shown: String = body.chars().take(300).collect();
        assert_eq!(status, 400, "{what}: {shown}");
        assert_eq!(body.contains("INVALID_FILTER_QUERY_PARAM"), reaches_the_handler, "{what}: {shown}");
        assert!(started.elapsed() < Duration::from_secs(1), "{what}: {:?}", started.elapsed());
    }
}
