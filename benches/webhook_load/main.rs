//! Load test of `POST /webhooks/twenty`: the real server binary on SQLite and on PostgreSQL, against
//! the naive design at the same concurrency. Run with `cargo bench --bench webhook_load`.
//!
//! For each backend, on a fresh database each time:
//! - for each concurrency in [`CONCURRENCIES`], a closed loop: that many keep-alive connections, each
//!   sending its next signed delivery as soon as the previous one is answered, for [`MEASURED`] after
//!   a [`WARM_UP`]; then the naive design in this process: one transaction per record through
//!   `Store::apply` (the same guarded upsert, no event log) from as many tasks, for as long;
//! - an open loop at [`PACED_RATE`] deliveries a second, latency measured from each delivery's
//!   scheduled time, so a stall counts against every delivery it delays.
//!
//! The results go to the terminal and to `target/webhook_load.md`; the server's logs of each run to
//! `target/tmp/webhook_load/`.
//!
//! Settings, from the environment (the defaults are the full size, which the figures of record use):
//! - `BENCH_BACKENDS=sqlite` or `=postgres`: one backend only (default both);
//! - `BENCH_POSTGRES_URL`: the PostgreSQL server (default
//!   [`DEFAULT_POSTGRES_URL`](support::database::DEFAULT_POSTGRES_URL)); a database is created and
//!   dropped per run, and PostgreSQL is skipped with a note when the server does not answer;
//! - `BENCH_DELIVERIES`: how many deliveries are generated (default [`DELIVERIES`]);
//! - `BENCH_MEASURED_SECS`: the measured time of each closed-loop run (default [`MEASURED`]);
//! - `BENCH_PACED_SECS`: the measured time of each open-loop run (default [`PACED_MEASURED`]).
//!
//! A reduced run, to check that the bench works rather than to measure:
//! `BENCH_DELIVERIES=20000 BENCH_MEASURED_SECS=2 BENCH_PACED_SECS=2 cargo bench --bench webhook_load`.
//!
//! The machine this targets has two cores shared by the server, PostgreSQL and this client, so the
//! client is kept cheap: every body is generated and signed before the clock starts, and requests go
//! out over a minimal HTTP/1.1 keep-alive client on one thread. The CPU columns show who used what.

#[path = "../support/mod.rs"]
mod support;

mod cpu;
mod http;
mod load;
mod report;
mod server;
mod window;
mod workload;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Runtime;

use cpu::{DISTURBING_LOAD, cpu_use_over};
use load::{closed_loop, naive_closed_loop, open_loop, open_naive_store};
use report::{NaiveResult, Report, Row, ServiceResult};
use server::Server;
use support::database::{Backend, Database, selected_backends};
use support::machine::wait_for_quiet;
use window::Window;
use workload::{MAX_BODY_BYTES, MIN_BODY_BYTES, Workload, signed_requests};

/// The webhook secret the server is started with and the deliveries are signed with.
const SECRET: &str = "whsec-bench-6b1f0c9e2d7a4e3b8c5d1f0a9e8b7c6d";

const CONCURRENCIES: [usize; 2] = [16, 64];
/// Long enough for connections to open, pools to fill and SQLite's WAL to reach its working size.
const WARM_UP: Duration = Duration::from_secs(1);
const MEASURED: Duration = Duration::from_secs(8);

/// The open-loop run checks the latency target (p99 < 20 ms) at this rate.
const PACED_RATE: u32 = 1_000;
const PACED_MEASURED: Duration = Duration::from_secs(5);
/// Twenty sends a batch's deliveries 20 at a time; with a few more connections than that, a slow
/// answer delays later deliveries only once the server, not this client, is the bottleneck.
const PACED_CONNECTIONS: usize = 32;

/// Deliveries generated before any run. Each run sends them in order, from the first, to a fresh
/// database, so every run sees the same workload. 150,000 covers 16,000 deliveries a second over a
/// run's warm-up and measured time; a faster run ends early and says so ("ran out").
const DELIVERIES: usize = 150_000;

const MIB: f64 = 1024.0 * 1024.0;

/// The size of a bench run: the constants above unless the environment says otherwise.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    deliveries: usize,
    measured: Duration,
    paced_measured: Duration,
}

impl Sizes {
    fn from_env() -> Self {
        Sizes {
            deliveries: support::number("BENCH_DELIVERIES", DELIVERIES),
            measured: Duration::from_secs(support::number("BENCH_MEASURED_SECS", MEASURED.as_secs())),
            paced_measured: Duration::from_secs(support::number(
                "BENCH_PACED_SECS",
                PACED_MEASURED.as_secs(),
            )),
        }
    }
}

fn main() {
    let sizes = Sizes::from_env();
    let mut bench = Bench::new(sizes);
    let (backends, notes) = bench.control.block_on(selected_backends());
    let mut report = Report { sizes, rows: Vec::new(), paced: Vec::new(), notes };

    for backend in &backends {
        for concurrency in CONCURRENCIES {
            let service = bench.service_run(backend, Drive::Closed { concurrency });
            let naive = bench.naive_run(backend, concurrency);
            report.rows.push(Row { backend: backend.name(), concurrency, service, naive });
        }
        let paced = bench.service_run(backend, Drive::Paced { rate: PACED_RATE });
        report.paced.push((backend.name(), paced));
    }

    support::publish("webhook_load.md", &report.render());
}

/// What the runs share: the workload, and one runtime for the client and one for everything else.
struct Bench {
    sizes: Sizes,
    workload: Workload,
    /// The load generator: one thread, so that the client never takes more than a core from the
    /// server it measures.
    client: Runtime,
    /// Database administration and the naive design, which in production would be a
    /// multi-threaded server of its own.
    control: Runtime,
    logs: PathBuf,
    runs: usize,
}

impl Bench {
    fn new(sizes: Sizes) -> Self {
        let client = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("building the client runtime");
        let control = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("building the control runtime");
        let logs = Path::new(env!("CARGO_TARGET_TMPDIR")).join("webhook_load");
        fs::create_dir_all(&logs).unwrap_or_else(|e| panic!("creating {}: {e}", logs.display()));

        let started = std::time::Instant::now();
        let workload = Workload::generate(sizes.deliveries);
        let bytes: usize = workload.bodies.iter().map(Vec::len).sum();
        println!(
            "generated {} deliveries ({:.0} MiB of bodies, {} to {} bytes each) in {:.1} s",
            workload.bodies.len(),
            bytes as f64 / MIB,
            MIN_BODY_BYTES,
            MAX_BODY_BYTES,
            started.elapsed().as_secs_f64()
        );
        Bench { sizes, workload, client, control, logs, runs: 0 }
    }

    /// The real server, under a closed or an open loop.
    fn service_run(&mut self, backend: &Backend, drive: Drive) -> ServiceResult {
        let label = match drive {
            Drive::Closed { concurrency } => format!("{}-c{concurrency}", backend.name()),
            Drive::Paced { .. } => format!("{}-paced", backend.name()),
        };
        let database = self.fresh_database(backend);
        let mut server = Server::start(&database.url, self.logs.join(format!("{label}.log")));
        self.client.block_on(server.wait_until_ready());
        let requests = Arc::new(signed_requests(&self.workload.bodies, server.address));

        let background = wait_for_quiet(DISTURBING_LOAD);
        let measured = match drive {
            Drive::Closed { .. } => self.sizes.measured,
            Drive::Paced { .. } => self.sizes.paced_measured,
        };
        let window = Window::after(WARM_UP, measured);
        let database_name = database.postgres_name().map(str::to_owned);
        let (tally, cpu) = self.client.block_on(async {
            let cpu = tokio::spawn(cpu_use_over(window, Some(server.pid()), database_name, background));
            let tally = match drive {
                Drive::Closed { concurrency } => {
                    closed_loop(server.address, requests, concurrency, window).await
                }
                Drive::Paced { rate } => open_loop(server.address, requests, rate, window).await,
            };
            (tally, cpu.await.expect("sampling CPU use"))
        });
        let result = ServiceResult {
            load: tally.summarize(window),
            peak_rss_mib: server.peak_rss_mib(),
            cpu,
            log: server.stop(),
        };
        drop(database);
        println!("{label:<14} service  {}", result.describe());
        result
    }

    /// The naive design at the same concurrency, in this process.
    fn naive_run(&mut self, backend: &Backend, concurrency: usize) -> NaiveResult {
        let label = format!("{}-c{concurrency}", backend.name());
        let database = self.fresh_database(backend);
        let store = self.control.block_on(open_naive_store(backend, &database.url, concurrency));
        let changes = self.workload.changes.clone();

        let background = wait_for_quiet(DISTURBING_LOAD);
        let window = Window::after(WARM_UP, self.sizes.measured);
        let database_name = database.postgres_name().map(str::to_owned);
        let (tally, cpu) = self.control.block_on(async {
            let cpu = tokio::spawn(cpu_use_over(window, None, database_name, background));
            let tally = naive_closed_loop(store.clone(), changes, concurrency, window).await;
            store.close().await;
            (tally, cpu.await.expect("sampling CPU use"))
        });
        drop(database);
        let result = NaiveResult { load: tally.summarize(window), cpu };
        println!("{label:<14} naive    {}", result.describe());
        result
    }

    fn fresh_database(&mut self, backend: &Backend) -> Database {
        self.runs += 1;
        self.control.block_on(Database::create(backend, &format!("run{}", self.runs)))
    }
}

/// How the load generator drives the server.
#[derive(Debug, Clone, Copy)]
enum Drive {
    /// `concurrency` connections, each sending as soon as its previous request is answered.
    Closed { concurrency: usize },
    /// `rate` requests a second, each sent when due.
    Paced { rate: u32 },
}
