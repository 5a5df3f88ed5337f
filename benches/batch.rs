//! Batch wall time against the quota bound, on the simulator with API.md's real limits
//! (2 creates/s and 2 in flight per model) and short tasks, so the submit rate is the bound.
//! `cargo bench --bench batch`; `BATCH_JOBS` (default 40) and `BATCH_RUNS` (default 3).
//! Prints the ratio; nothing here fails on time.

use std::str::FromStr;
use std::time::{Duration, Instant};

use wandash::dashscope::{ApiKey, Client, JobSpec, Model, Size};
use wandash::engine::{Engine, EngineConfig};
use wandash::simulator::{self, SimConfig};
use wandash::store::{JobFilter, JobState, StateFilter, Store};

const LATENCY: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(150));

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn one_run(jobs: usize) -> (f64, f64, u64) {
    let dir = tempfile::tempdir().unwrap();
    let sim = simulator::start(SimConfig {
        latency: LATENCY,
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let db = dir.path().join("bench.db");
    let store = Store::open(&db).unwrap();
    let models = [Model::Wanx21T2iTurbo, Model::Wanx20T2iTurbo];
    let specs: Vec<JobSpec> = (0..jobs)
        .map(|i| {
            let mut spec = JobSpec::new(models[i % 2], format!("a lighthouse, study {i}"));
            spec.n = Some(1);
            spec.size = Some(Size::from_str("512*512").unwrap());
            spec
        })
        .collect();
    store.enqueue_batch(&specs, None).unwrap();
    let config = EngineConfig {
        data_dir: dir.path().join("data"),
        poll_min: Duration::from_millis(50),
        poll_max: Duration::from_millis(500),
        store_poll: Duration::from_millis(100),
        ..EngineConfig::default()
    };
    let client = Client::new(&sim.base_url(), ApiKey::new("bench".into())).unwrap();
    let started = Instant::now();
    let engine = Engine::start(&db, client, config).unwrap();
    engine.wait_idle().await;
    let wall = started.elapsed().as_secs_f64();
    engine.shutdown().await;
    let done = JobFilter {
        state: Some(StateFilter::Only(JobState::Succeeded)),
        search: None,
    };
    assert_eq!(
        store.count(&done).unwrap(),
        jobs as u64,
        "every job succeeded"
    );
    let stats: serde_json::Value = reqwest::get(format!("http://{}/__sim/stats", sim.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    sim.shutdown().await;

    // max(N / rate, ceil(N / in-flight) x task time) per model (the bound); the
    // models run side by side. The service's burst of 2 lets a run beat N / rate by 1 s.
    let per_model = jobs.div_ceil(models.len()) as f64;
    let limits = Model::Wanx21T2iTurbo.default_limits();
    let mean_task = (LATENCY.0 + LATENCY.1).as_secs_f64() / 2.0;
    let bound = (per_model / limits.submit_per_second)
        .max((per_model / limits.in_flight as f64).ceil() * mean_task);
    (wall, bound, stats["throttled"].as_u64().unwrap_or(u64::MAX))
}

fn main() {
    let jobs = env_or("BATCH_JOBS", 40);
    let runs = env_or("BATCH_RUNS", 3);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut ratios = Vec::new();
    for run in 1..=runs {
        let (wall, bound, throttled) = runtime.block_on(one_run(jobs));
        println!(
            "run {run}: {jobs} jobs in {wall:.2} s, quota bound {bound:.2} s, ratio {:.3}, 429s {throttled}",
            wall / bound
        );
        ratios.push(wall / bound);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "median ratio of batch wall time to the quota bound: {:.3}",
        ratios[ratios.len() / 2]
    );
}
