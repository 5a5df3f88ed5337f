//! Batch throughput against the quota bound: the in-process simulator with API.md's real
//! limits (2 creates/s, 2 tasks in flight per text-to-image model) and a fixed task
//! latency, a fresh store, the real engine and client over loopback. Prints the wall
//! time, the bound the quota allows and their ratio; never asserts on time.
//!
//! `cargo bench --bench batch`
//! Environment:
//! - `WANDASH_BENCH_JOBS=50,500`: batch sizes (default 50,500).
//! - `WANDASH_BENCH_MODELS=1|2`: spread each batch over one model or two (t2i-turbo and
//!   t2i-plus, whose quotas are separate), which halves the bound (default 1).
//! - `WANDASH_BENCH_LATENCY_MS=1000` or `500-1500`: the simulator's task time (default 1000).
//!
//! Then the first polls of a new process: 40 one-second jobs with the engine's default
//! settings (polls 1 to 5 s apart), once on a fresh store (nothing learned: the model's
//! typical 90 s is all the engine knows) and once more on the same store with a new
//! engine (the durations the first run learned are in the store); the median of several
//! such pairs.
//! - `WANDASH_BENCH_STORE_RUNS=3`: how many pairs (0 skips this part).
//!
//! `WANDASH_BENCH_JOBS= WANDASH_BENCH_STORE_RUNS=5 cargo bench --bench batch` runs only it.

mod measure;

use measure::env_list;

use std::collections::HashMap;
use std::path::Path;
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde_json::Value;
use wandash::dashscope::{ApiKey, Client, JobSpec, Model, Size};
use wandash::engine::{Engine, EngineConfig};
use wandash::simulator::{self, SimConfig};
use wandash::store::{JobFilter, JobState, Store};

const MODELS: [Model; 2] = [Model::Wanx21T2iTurbo, Model::Wanx21T2iPlus];

fn main() {
    let sizes = env_list("WANDASH_BENCH_JOBS", "50,500");
    let models = match std::env::var("WANDASH_BENCH_MODELS").as_deref() {
        Ok("2") => 2,
        Ok("1") | Err(_) => 1,
        Ok(other) => panic!("WANDASH_BENCH_MODELS must be 1 or 2, not {other:?}"),
    };
    let latency = env_latency();
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    println!(
        "batch: simulator latency {:?}..{:?}, limits per model from API.md, {} model(s)",
        latency.0, latency.1, models
    );
    for n in sizes {
        runtime.block_on(run(n, &MODELS[..models], latency));
    }
    let store_runs = env_list("WANDASH_BENCH_STORE_RUNS", "3")
        .first()
        .copied()
        .unwrap_or(0);
    if store_runs > 0 {
        runtime.block_on(first_polls(store_runs));
    }
}

async fn run(n: usize, models: &[Model], latency: (Duration, Duration)) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let db = dir.path().join("jobs.db");
    let specs = bench_specs(n, models);
    // The engine's defaults (polls 1-5 s) are made for tasks of 10-90 s; scaled to a 1 s
    // task they are 100-1000 ms. The query rate stays at its default (15/s, under the
    // account's 20/s).
    let config = EngineConfig {
        data_dir: dir.path().join("data"),
        poll_min: Duration::from_millis(100),
        poll_max: Duration::from_millis(1000),
        store_poll: Duration::from_millis(100),
        ..EngineConfig::default()
    };
    let poll = (config.poll_min, config.poll_max, config.queries_per_second);
    let batch = run_batch(&db, &specs, config, latency).await;
    let bound = quota_bound(&specs, latency);

    let store = Store::open(&db).expect("the store opens");
    let jobs = store
        .list(&JobFilter::default(), 0, n as u64)
        .expect("the jobs list");
    let succeeded = jobs
        .iter()
        .filter(|j| j.state() == JobState::Succeeded)
        .count();
    let observed: Vec<f64> = jobs
        .iter()
        .filter_map(|j| {
            let status = &j.status;
            Some(
                status
                    .ended_at()?
                    .since(status.submitted_at()?)
                    .as_secs_f64(),
            )
        })
        .collect();
    let observed_mean = observed.iter().sum::<f64>() / observed.len().max(1) as f64;
    let mean_task = (latency.0 + latency.1).as_secs_f64() / 2.0;
    let wall = batch.wall.as_secs_f64();
    let stats = &batch.stats;

    println!("--- N = {n} jobs over {} model(s)", models.len());
    println!(
        "  engine polls {:?}..{:?}, queries {}/s",
        poll.0, poll.1, poll.2
    );
    println!("  wall time (engine start to idle): {wall:.2} s");
    println!(
        "  quota bound max(N/rate, ceil(N/in_flight) x mean task {mean_task:.3} s): {bound:.2} s"
    );
    println!("  ratio wall / bound: {:.3}", wall / bound);
    println!(
        "  succeeded {succeeded} of {n}; engine-observed task time (submit to end, mean) {observed_mean:.3} s"
    );
    println!(
        "  simulator: creates {} throttled {} polls {}",
        stats["creates"], stats["throttled"], stats["polls"]
    );
}

/// Fresh store against a store that has seen the model: what a new process (`submit
/// --wait`, an MCP call, a fresh dashboard) loses on its first tasks.
async fn first_polls(runs: usize) {
    const JOBS: usize = 40;
    let latency = (Duration::from_secs(1), Duration::from_secs(1));
    let models = &MODELS[..1];
    let specs = bench_specs(JOBS, models);
    let bound = quota_bound(&specs, latency);
    println!(
        "--- first polls: {JOBS} jobs of 1 s on one model, the engine's default settings, bound {bound:.2} s"
    );
    let (mut fresh, mut seen) = (Vec::new(), Vec::new());
    for run in 1..=runs {
        let dir = tempfile::tempdir().expect("a temp dir");
        let db = dir.path().join("jobs.db");
        let config = EngineConfig {
            data_dir: dir.path().join("data"),
            ..EngineConfig::default()
        };
        let first = run_batch(&db, &specs, config.clone(), latency).await;
        let again = run_batch(&db, &specs, config, latency).await;
        let (first_wall, again_wall) = (first.wall.as_secs_f64(), again.wall.as_secs_f64());
        println!(
            "  run {run}: fresh store {first_wall:.2} s (ratio {:.3}, throttled {}), seen store {again_wall:.2} s (ratio {:.3}, throttled {})",
            first_wall / bound,
            first.stats["throttled"],
            again_wall / bound,
            again.stats["throttled"]
        );
        fresh.push(first_wall);
        seen.push(again_wall);
    }
    let median = |walls: &mut Vec<f64>| {
        walls.sort_by(f64::total_cmp);
        walls[walls.len() / 2]
    };
    let (fresh, seen) = (median(&mut fresh), median(&mut seen));
    println!(
        "  median of {runs}: fresh store {fresh:.2} s, ratio {:.3}; seen store {seen:.2} s, ratio {:.3}",
        fresh / bound,
        seen / bound
    );
}

fn bench_specs(n: usize, models: &[Model]) -> Vec<JobSpec> {
    (0..n)
        .map(|i| {
            let mut spec = JobSpec::new(
                models[i % models.len()],
                format!("bench image {i}: a lighthouse on a cliff at dusk"),
            );
            spec.n = Some(1);
            spec.size = Some(Size::from_str("1024*1024").expect("a valid size").into());
            spec.prompt_extend = Some(false);
            spec
        })
        .collect()
}

/// One batch through a new engine and a new simulator, on the store at `db` (which may
/// hold what earlier engines learned).
struct Batch {
    wall: Duration,
    stats: Value,
}

async fn run_batch(
    db: &Path,
    specs: &[JobSpec],
    config: EngineConfig,
    latency: (Duration, Duration),
) -> Batch {
    let sim = simulator::start(SimConfig {
        latency,
        ..SimConfig::default()
    })
    .await
    .expect("the simulator starts");
    Store::open(db)
        .expect("the store opens")
        .enqueue_batch(specs, Some("bench"))
        .expect("the batch enqueues");
    let client = Client::new(&sim.base_url(), ApiKey::new("bench".into())).expect("a client");
    let started = Instant::now();
    let engine = Engine::start(db, client, config).expect("the engine starts");
    engine.wait_idle().await;
    let wall = started.elapsed();
    engine.shutdown().await;
    let stats = sim_stats(&sim.addr()).await;
    sim.shutdown().await;
    Batch { wall, stats }
}

/// The bound per model: its share of the jobs at its submit rate, or in waves of
/// `in_flight` tasks each taking the mean task time, whichever is longer. Models have
/// separate quotas, so the batch's bound is the slowest model's.
fn quota_bound(specs: &[JobSpec], latency: (Duration, Duration)) -> f64 {
    let mean_task = (latency.0 + latency.1).as_secs_f64() / 2.0;
    let mut per_model: HashMap<Model, usize> = HashMap::new();
    for spec in specs {
        *per_model.entry(spec.model).or_default() += 1;
    }
    per_model
        .iter()
        .map(|(model, &jobs)| {
            let limits = model.default_limits();
            let by_rate = jobs as f64 / limits.submit_per_second;
            let by_slots = jobs.div_ceil(limits.in_flight as usize) as f64 * mean_task;
            by_rate.max(by_slots)
        })
        .fold(0.0, f64::max)
}

async fn sim_stats(addr: &std::net::SocketAddr) -> Value {
    reqwest::get(format!("http://{addr}/__sim/stats"))
        .await
        .expect("the stats answer")
        .json()
        .await
        .expect("the stats are JSON")
}

fn env_latency() -> (Duration, Duration) {
    let text = std::env::var("WANDASH_BENCH_LATENCY_MS").unwrap_or_else(|_| "1000".into());
    let ms =
        |part: &str| {
            Duration::from_millis(part.trim().parse().unwrap_or_else(|_| {
                panic!("WANDASH_BENCH_LATENCY_MS: {part:?} is not milliseconds")
            }))
        };
    match text.split_once('-') {
        Some((lo, hi)) => (ms(lo), ms(hi)),
        None => (ms(&text), ms(&text)),
    }
}
