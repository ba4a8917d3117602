//! What the benchmarks share: their settings from the environment, the databases they run on, the
//! machine's load and a process's CPU and memory from `/proc`, deterministic records, and where
//! their reports go. Each bench includes it with `mod support;`; Cargo does not take this folder
//! for a bench of its own, as it has no `main.rs`.

pub mod database;
pub mod machine;
#[allow(dead_code, reason = "only the view and read benchmarks read these records")]
pub mod people;
pub mod random;

use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// An environment variable, when it is set to something other than blanks.
pub fn setting(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// A number from the environment, `default` when unset. A value that does not parse stops the
/// bench with a message that names the variable, rather than running a size nobody asked for.
pub fn number<T: FromStr>(name: &str, default: T) -> T {
    match setting(name) {
        None => default,
        Some(value) => value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number of the kind this bench expects")),
    }
}

/// `target/`, where Cargo puts `target/tmp` for benches.
fn target_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().unwrap_or(tmp).to_owned()
}

/// Prints the report and writes it to `target/<file_name>`.
pub fn publish(file_name: &str, text: &str) {
    println!("\n{text}");
    let path = target_dir().join(file_name);
    match fs::write(&path, text) {
        Ok(()) => println!("written to {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}
