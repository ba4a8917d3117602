//! The binary as an operator runs it: help, settings errors, migrate, and SIGTERM.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::helpers::binary::{free_port, signal, twenty_mirror};
use crate::helpers::{TestDb, eventually};

#[test]
fn every_command_has_help() {
    for args in [&["--help"][..], &["serve", "--help"], &["migrate", "--help"], &["playground", "--help"]] {
        let output = twenty_mirror().args(args).output().expect("running the binary");
        assert!(output.status.success(), "{args:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("Usage"), "{args:?}");
    }
}

#[test]
fn a_malformed_setting_stops_start_up_with_a_message_naming_it() {
    for (variable, value) in
        [("PORT", "eighty"), ("WEBHOOK_TOLERANCE", "soon"), ("DATABASE_URL", "mysql://db")]
    {
        let output = twenty_mirror().env(variable, value).arg("serve").output().expect("running the binary");
        assert_eq!(output.status.code(), Some(2), "{variable}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[tokio::test]
async fn migrate_applies_migrations_and_exits() {
    let db = TestDb::new().await;
    let output =
        twenty_mirror().env("DATABASE_URL", &db.url).arg("migrate").output().expect("running migrate");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let store = twenty_mirror::mirror::Store::connect(&db.url).await.expect("store");
    store.check_ready().await.expect("every migration applied");
}

#[tokio::test]
async fn sigterm_stops_the_server_with_exit_code_zero() {
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = twenty_mirror()
        .env("DATABASE_URL", &db.url)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting serve");
    let client = reqwest::Client::new();
    let ready = eventually(Duration::from_secs(20), || async {
        client
            .get(format!("http://127.0.0.1:{port}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;
    assert!(ready, "the server became ready");

    signal(&child, "-TERM");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            break status;
        }
        assert!(started.elapsed() < twenty_mirror::app::DRAIN_TIMEOUT, "exited within the drain time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(status.code(), Some(0));
}
