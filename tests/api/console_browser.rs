//! The console in a real browser: headless Chromium from Debian's packages, driven through
//! `chromedriver` (WebDriver). Signs in, sees every object's row and badge, starts a reconcile,
//! watches its page until it ends, and opens the run's page from the console.
//!
//! Without Chromium the test fails and says how to install it; `TWENTY_MIRROR_SKIP_BROWSER=1`
//! skips it instead. `CONSOLE_SCREENSHOT=docs/console.png` also saves the console as it shows at
//! the end (how the README's picture is made).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use super::console::{ADMIN_TOKEN, with_twenty};
use crate::helpers::binary::free_port;
use crate::helpers::fake_twenty::{FakeTwenty, webhook_body};
use crate::helpers::{TestApp, eventually};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the browser may take to show what the test waits for: a run of a few pages, and the
/// page's own one-second reloads.
const PATIENCE: Duration = Duration::from_secs(30);

/// `chromedriver` as a child, stopped with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The browser, or `None` when it is missing and the environment says to skip.
async fn browser() -> Option<(Driver, Client)> {
    if !(Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists()) {
        if std::env::var("TWENTY_MIRROR_SKIP_BROWSER").as_deref() == Ok("1") {
            eprintln!("skipped the console's browser test: TWENTY_MIRROR_SKIP_BROWSER=1 and no Chromium");
            return None;
        }
        panic!(
            "the console's browser test needs {CHROMIUM} and {CHROMEDRIVER}: install them with \
             `apt-get install -y --no-install-recommends chromium chromium-driver`, or set \
             TWENTY_MIRROR_SKIP_BROWSER=1 to skip this test"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver { child, url: format!("http://127.0.0.1:{port}") };
    // Headless and without the sandbox, which needs privileges a test container lacks; the
    // window's size is the README picture's.
    let capabilities = json!({
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900"],
        }
    });
    let Value::Object(capabilities) = capabilities else { unreachable!("an object literal") };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector).capabilities(capabilities.clone()).connect(&driver.url).await {
            Ok(client) => break client,
            Err(error) if tokio::time::Instant::now() > deadline => {
                panic!("chromedriver did not answer: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    Some((driver, client))
}

/// Waits until the page (which may be reloading itself) shows `css`.
async fn wait_for(client: &Client, css: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while client.find(Locator::Css(css)).await.is_err() {
        assert!(tokio::time::Instant::now() < deadline, "the browser never showed {css}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(client: &Client, css: &str) -> String {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .expect("its text")
}

/// A workspace with people, companies and opportunities, some of whose webhooks arrived, and a
/// first full pass done: badges to see, deliveries and repairs to chart.
async fn a_mirror_with_history(fake: &FakeTwenty, app: &TestApp) {
    for (object, count) in [("person", 12), ("company", 5), ("opportunity", 4)] {
        for n in 0..count {
            let record = fake.create(object, json!({"name": format!("{object} {n}")}));
            if n % 3 != 0 {
                let event = format!("{object}.created");
                let body = webhook_body(&event, &record, record["updatedAt"].as_str().unwrap());
                app.deliver_json(&body).await;
                if n % 4 == 0 {
                    app.deliver_json(&body).await; // a duplicate delivery
                }
            }
        }
    }
    let response = app
        .client
        .post(format!("{}/admin/reconcile", app.address))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"mode": "full"}))
        .send()
        .await
        .expect("starting a full pass");
    assert_eq!(response.status(), 202);
    assert!(
        eventually(PATIENCE, || async { app.store.running_run().await.unwrap().is_none() }).await,
        "the first full pass did not end"
    );
    // Changes whose webhooks never came: the reconcile the browser starts repairs them.
    for n in 0..3 {
        fake.create("person", json!({"name": format!("missed {n}")}));
    }
}

#[tokio::test]
async fn an_operator_signs_in_reconciles_and_follows_the_run() {
    let Some((_driver, client)) = browser().await else { return };
    let fake = FakeTwenty::start().await;
    let app = TestApp::spawn_with(with_twenty(&fake)).await;
    a_mirror_with_history(&fake, &app).await;

    client.goto(&app.address).await.expect("opening the console");
    client.find(Locator::Css("#token")).await.unwrap().send_keys("not-the-token").await.unwrap();
    client.find(Locator::Css(r#"button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    wait_for(&client, r#"[role="alert"]"#).await;
    assert_eq!(text(&client, r#"[role="alert"]"#).await, "That is not the admin token.");

    client.find(Locator::Css("#token")).await.unwrap().send_keys(ADMIN_TOKEN).await.unwrap();
    client.find(Locator::Css(r#"button[type="submit"]"#)).await.unwrap().click().await.unwrap();
    wait_for(&client, "#objects").await;
    for object in ["person", "company", "opportunity"] {
        let row = format!(r#"#objects tr[data-object="{object}"]"#);
        assert_eq!(text(&client, &format!("{row} .staleness")).await, "fresh", "{object}");
        let health = text(&client, &format!("{row} td[data-label=\"Webhooks\"] .badge")).await;
        assert!(["ok", "lossy", "silent", "unknown"].contains(&health.as_str()), "{object}: {health}");
    }

    // A system object, which the reconciler does not read, has no freshness to speak of.
    assert_eq!(text(&client, r#"#objects tr[data-object="workspaceMember"] .staleness"#).await, "n/a");

    client.find(Locator::Css("#reconcile-now")).await.unwrap().click().await.unwrap();
    wait_for(&client, "#run").await;
    let url = client.current_url().await.unwrap();
    let id = url.path().strip_prefix("/runs/").expect("the run's page").to_owned();
    // The page reloads itself until the run has ended.
    wait_for(&client, r#"#run[data-status="succeeded"]"#).await;
    assert_eq!(
        text(&client, r#"#run-objects tr[data-object="person"] td[data-label="repaired"]"#).await,
        "3"
    );

    client.goto(&app.address).await.unwrap();
    client
        .find(Locator::Css(&format!(r#"#runs tr[data-run="{id}"] a"#)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&client, r#"#run[data-status="succeeded"]"#).await;
    assert_eq!(client.current_url().await.unwrap().path(), format!("/runs/{id}"));
    assert!(text(&client, "#run h2").await.starts_with(&format!("Run {id}")));

    // On a phone's width each object is a card: no header row, each cell labelled.
    client.goto(&app.address).await.unwrap();
    client.set_window_size(390, 844).await.expect("a phone's window");
    wait_for(&client, "#objects").await;
    let header = client.find(Locator::Css("#objects thead")).await.unwrap();
    assert!(!header.is_displayed().await.unwrap(), "the objects' header row shows on a phone");
    let cell = client
        .find(Locator::Css(r#"#objects tr[data-object="person"] td[data-label="Live"]"#))
        .await
        .unwrap();
    assert_eq!(cell.css_value("display").await.unwrap(), "flex");
    client.set_window_size(1280, 900).await.expect("a laptop's window");

    if let Ok(path) = std::env::var("CONSOLE_SCREENSHOT") {
        client.goto(&app.address).await.unwrap();
        wait_for(&client, "#objects").await;
        std::fs::write(&path, client.screenshot().await.expect("a screenshot"))
            .expect("saving the screenshot");
    }
    client.close().await.expect("closing the browser");
}
