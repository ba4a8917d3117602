//! What can be checked of the Fly.io deployment without a Docker engine: fly.toml parses and says
//! what the service needs; the Dockerfile builds and copies the binary `cargo build --release`
//! makes, and runs commands that binary has.

use crate::helpers::binary::twenty_mirror;

const FLY_TOML: &str = include_str!("../../fly.toml");
const DOCKERFILE: &str = include_str!("../../Dockerfile");
const CARGO_TOML: &str = include_str!("../../Cargo.toml");

fn fly() -> toml::Table {
    FLY_TOML.parse().expect("fly.toml parses")
}

fn seconds(value: &toml::Value) -> u64 {
    let text = value.as_str().expect("a duration string");
    twenty_mirror::config::parse_duration(text).expect("a duration").as_secs()
}

#[test]
fn fly_stops_the_service_gracefully_and_waits_for_the_drain() {
    let fly = fly();
    assert_eq!(fly["kill_signal"].as_str(), Some("SIGTERM"));
    assert!(seconds(&fly["kill_timeout"]) > twenty_mirror::app::DRAIN_TIMEOUT.as_secs());
}

#[test]
fn fly_serves_the_configured_port_checks_health_and_keeps_the_machine_running() {
    let fly = fly();
    let service = fly["http_service"].as_table().expect("[http_service]");
    let port = fly["env"]["PORT"].as_str().expect("PORT").parse::<i64>().unwrap();
    assert_eq!(service["internal_port"].as_integer(), Some(port));
    assert_eq!(service["auto_stop_machines"].as_str(), Some("off"), "the reconciler lives in the process");
    assert!(service["min_machines_running"].as_integer() >= Some(1));
    let check = &service["checks"].as_array().expect("checks")[0];
    assert_eq!(check["path"].as_str(), Some("/healthz"));
    assert!(DOCKERFILE.contains(&format!("EXPOSE {port}")));
}

#[test]
fn fly_migrates_on_release_and_mounts_the_sqlite_volume_where_the_image_keeps_it() {
    let fly = fly();
    let release = fly["deploy"]["release_command"].as_str().expect("a release command");
    assert_eq!(release, "twenty-mirror migrate");
    let mount = fly["mounts"]["destination"].as_str().expect("a mount");
    assert!(
        DOCKERFILE.contains(&format!("DATABASE_URL=sqlite://{mount}/")),
        "the image's SQLite file is on the volume"
    );
}

#[test]
fn the_dockerfile_copies_the_binary_cargo_builds_and_runs_as_a_user() {
    let manifest: toml::Table = CARGO_TOML.parse().expect("Cargo.toml parses");
    let bin =
        manifest["bin"].as_array().expect("[[bin]]")[0]["name"].as_str().expect("a binary name").to_owned();
    assert!(DOCKERFILE.contains(&format!("cargo build --release --locked --bin {bin}")));
    assert!(
        DOCKERFILE.contains(&format!("COPY --from=build /app/target/release/{bin} /usr/local/bin/{bin}"))
    );
    assert!(DOCKERFILE.contains(&format!("ENTRYPOINT [\"/usr/local/bin/{bin}\"]")));
    assert!(DOCKERFILE.lines().any(|l| l.starts_with("USER ") && !l.contains("root")), "a non-root user");
    assert!(DOCKERFILE.contains("ca-certificates"));
    // Every bench the manifest declares has a placeholder in the dependency layer, or that layer fails.
    for bench in manifest["bench"].as_array().expect("[[bench]]") {
        let name = bench["name"].as_str().unwrap();
        assert!(DOCKERFILE.contains(name), "the dependency layer lacks a placeholder for bench {name}");
    }
}

#[test]
fn the_commands_the_image_and_fly_run_exist() {
    let fly = fly();
    let release = fly["deploy"]["release_command"].as_str().unwrap();
    let cmd =
        DOCKERFILE.lines().find_map(|l| l.strip_prefix("CMD [\"")).expect("a CMD").trim_end_matches("\"]");
    for subcommand in [release.trim_start_matches("twenty-mirror "), cmd] {
        let output = twenty_mirror().args([subcommand, "--help"]).output().unwrap();
        assert!(output.status.success(), "twenty-mirror {subcommand} does not exist");
    }
}
