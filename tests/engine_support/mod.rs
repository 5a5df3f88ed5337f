//! The engine on real parts, for the `engine_*` and `faults` tests: a real SQLite file in a
//! temp dir, the real simulator on 127.0.0.1 with short latencies, the real client.

#![allow(dead_code)] // each test file uses a different part of this module

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wandash::dashscope::{ApiKey, Client, JobSpec, Model, ModelLimits, Size, Timestamp};
use wandash::engine::{EngineConfig, EngineHandle};
use wandash::simulator::{self, Faults, RunningSim, SimConfig};
use wandash::store::{JobDetail, JobFilter, JobId, Store};

pub const FAST: (Duration, Duration) = (Duration::from_millis(50), Duration::from_millis(150));

pub struct Setup {
    pub _dir: tempfile::TempDir,
    pub db: PathBuf,
    pub data: PathBuf,
    pub sim: RunningSim,
}

pub async fn setup(sim: SimConfig) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("wandash.db");
    let data = dir.path().join("data");
    let sim = simulator::start(sim).await.unwrap();
    Setup {
        _dir: dir,
        db,
        data,
        sim,
    }
}

pub fn sim_config(faults: Faults, limits: HashMap<Model, ModelLimits>) -> SimConfig {
    SimConfig {
        latency: FAST,
        faults,
        limits,
        ..SimConfig::default()
    }
}

pub fn raised_limits() -> HashMap<Model, ModelLimits> {
    limits(20.0, 8)
}

/// The same limits for every model.
pub fn limits(submit_per_second: f64, in_flight: u32) -> HashMap<Model, ModelLimits> {
    Model::ALL
        .into_iter()
        .map(|m| {
            (
                m,
                ModelLimits {
                    submit_per_second,
                    in_flight,
                },
            )
        })
        .collect()
}

pub fn engine_config(data: &Path) -> EngineConfig {
    EngineConfig {
        data_dir: data.to_path_buf(),
        poll_min: Duration::from_millis(20),
        poll_max: Duration::from_millis(200),
        backoff_base: Duration::from_millis(20),
        backoff_cap: Duration::from_millis(300),
        max_attempts: 8,
        store_poll: Duration::from_millis(100),
        ..EngineConfig::default()
    }
}

pub fn client(sim: &RunningSim) -> Client {
    Client::new(&sim.base_url(), ApiKey::new("test-key".into())).unwrap()
}

pub fn spec(model: Model, prompt: &str) -> JobSpec {
    let mut spec = JobSpec::new(model, prompt);
    spec.n = Some(1);
    spec.size = Some(Size::from_str("512*512").unwrap().into());
    spec.prompt_extend = Some(false);
    spec
}

pub async fn sim_get(sim: &RunningSim, path: &str) -> Value {
    reqwest::get(format!("http://{}{path}", sim.addr()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn sim_post(sim: &RunningSim, path: &str, body: Value) {
    let answer = reqwest::Client::new()
        .post(format!("http://{}{path}", sim.addr()))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{path}: {}", answer.status());
}

pub async fn wait_idle(engine: &EngineHandle, limit: Duration) {
    tokio::time::timeout(limit, engine.wait_idle())
        .await
        .expect("the engine went idle in time");
}

/// What an engine that died while submitting leaves in the store for `id`: the job
/// claimed (submitting, its attempt counted, the claim's event written) and, if `sent`,
/// stamped as its create went on the wire, the answer never recorded. The engine's writes
/// are not public, so the rows are written as its claim and `mark_sending` write them.
pub fn leave_claimed(db: &Path, id: JobId, sent: bool) {
    let conn = rusqlite::Connection::open(db).unwrap();
    let now = Timestamp::now().as_millis();
    conn.execute(
        "UPDATE jobs SET state = 'submitting', attempts = attempts + 1, submitted_at = ?2,
             next_attempt_at = NULL
         WHERE id = ?1 AND state = 'queued'",
        rusqlite::params![id.0, sent.then_some(now)],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO events (job_id, at, from_state, to_state, detail)
         SELECT id, ?2, 'queued', 'submitting', 'attempt ' || attempts FROM jobs WHERE id = ?1",
        rusqlite::params![id.0, now],
    )
    .unwrap();
}

pub fn all_jobs(store: &Store) -> Vec<JobDetail> {
    let rows = store.list(&JobFilter::default(), 0, 10_000).unwrap();
    rows.iter()
        .map(|r| store.job(r.id).unwrap().unwrap())
        .collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Every saved image is on disk, decodes to its recorded size and matches its sha256.
pub fn check_saved_images(job: &JobDetail) {
    for image in job.images.iter().filter(|i| i.is_saved()) {
        let path = image.path.as_ref().unwrap();
        let bytes = std::fs::read(path)
            .unwrap_or_else(|e| panic!("job {}: {}: {e}", job.summary.id, path.display()));
        let digest = sha256_hex(&bytes);
        assert_eq!(
            image.sha256.as_deref(),
            Some(digest.as_str()),
            "sha256 of {}",
            path.display()
        );
        assert_eq!(image.bytes, Some(bytes.len() as u64));
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (Some(decoded.width()), Some(decoded.height())),
            (image.width, image.height)
        );
    }
}
