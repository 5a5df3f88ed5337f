//! Everything the simulator knows: tasks, result images, uploads, quotas, counters and
//! its clock. One `std::sync::Mutex`, never held across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::store::Store;
use super::tasks::{Failure, Outcome, Task};
use super::{Faults, SimConfig, SimError, render};
use crate::dashscope::validate::{check_image_bytes, decode_data_uri};
use crate::dashscope::{ImageRef, JobSpec, Model, ModelLimits};

/// An uploaded object lives this long (API.md: 48 hours).
const UPLOAD_TTL_MS: i64 = 48 * 3600 * 1000;

/// Real time plus an offset that `/__sim/advance` moves forward.
pub struct Clock {
    offset_ms: AtomicI64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        real + self.offset_ms.load(Ordering::Relaxed)
    }

    pub fn advance(&self, ms: i64) {
        self.offset_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

/// Submit-rate quota: a bucket of `rate` tokens (at least one) refilled at `rate` per second.
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    pub creates: u64,
    pub throttled: u64,
    pub polls: u64,
    pub cancels: u64,
    pub uploads: u64,
    /// Synchronous multimodal-generation calls accepted (each makes images and bills).
    pub sync_calls: u64,
    /// The most tasks PENDING or RUNNING at once (of one model, in the totals: of any).
    pub peak_in_flight: u32,
}

impl Counts {
    fn json(&self) -> Value {
        json!({
            "creates": self.creates, "throttled": self.throttled, "polls": self.polls,
            "cancels": self.cancels, "uploads": self.uploads, "sync_calls": self.sync_calls,
            "peak_in_flight": self.peak_in_flight,
        })
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Counter {
    Create,
    Throttled,
    Poll,
    Cancel,
    Upload,
    SyncCall,
}

/// A getPolicy grant: the upload form must carry these back.
#[derive(Debug, Clone)]
pub struct Policy {
    pub model: Model,
    pub policy: String,
    pub signature: String,
    pub access_key_id: String,
    pub expires_ms: i64,
}

#[derive(Debug, Clone)]
pub struct Upload {
    pub model: Model,
    pub bytes: Arc<Vec<u8>>,
    pub created_ms: i64,
}

#[derive(Default)]
pub struct Inner {
    pub tasks: HashMap<String, Task>,
    pub images: HashMap<(String, u32), Arc<Vec<u8>>>,
    pub uploads: HashMap<String, Upload>,
    pub policies: HashMap<String, Policy>,
    buckets: HashMap<Model, Bucket>,
    totals: Counts,
    by_model: BTreeMap<Model, Counts>,
}

impl Inner {
    pub fn count(&mut self, counter: Counter, model: Option<Model>) {
        let bump = |c: &mut Counts| match counter {
            Counter::Create => c.creates += 1,
            Counter::Throttled => c.throttled += 1,
            Counter::Poll => c.polls += 1,
            Counter::Cancel => c.cancels += 1,
            Counter::Upload => c.uploads += 1,
            Counter::SyncCall => c.sync_calls += 1,
        };
        bump(&mut self.totals);
        if let Some(model) = model {
            bump(self.by_model.entry(model).or_default());
        }
    }

    pub fn stats_json(&self) -> Value {
        let mut json = self.totals.json();
        let by_model: serde_json::Map<String, Value> = self
            .by_model
            .iter()
            .map(|(m, c)| (m.id().to_string(), c.json()))
            .collect();
        json["by_model"] = Value::Object(by_model);
        json
    }

    /// Takes one create token for `model`; false when the bucket is empty.
    pub fn take_token(&mut self, model: Model, limits: ModelLimits, now: i64) -> bool {
        let capacity = limits.submit_per_second.max(1.0);
        let bucket = self.buckets.entry(model).or_insert(Bucket {
            tokens: capacity,
            at_ms: now,
        });
        let elapsed = (now - bucket.at_ms).max(0) as f64 / 1000.0;
        bucket.tokens = (bucket.tokens + elapsed * limits.submit_per_second).min(capacity);
        bucket.at_ms = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// `model` has `in_flight` tasks PENDING or RUNNING now.
    pub fn note_in_flight(&mut self, model: Model, in_flight: u32) {
        for counts in [&mut self.totals, self.by_model.entry(model).or_default()] {
            counts.peak_in_flight = counts.peak_in_flight.max(in_flight);
        }
    }

    pub fn in_flight(&self, model: Model, now: i64, ttl_ms: i64) -> u32 {
        self.tasks
            .values()
            .filter(|t| {
                t.model == model && !t.expired(now, ttl_ms) && t.phase(now).status.in_flight()
            })
            .count() as u32
    }

    /// Drops expired tasks and their images from memory (they read UNKNOWN anyway), so a
    /// long load test does not keep every PNG it ever made.
    pub fn forget_expired(&mut self, now: i64, ttl_ms: i64) {
        let before = self.tasks.len();
        self.tasks.retain(|_, t| !t.expired(now, ttl_ms));
        if self.tasks.len() != before {
            let tasks = &self.tasks;
            self.images.retain(|(id, _), _| tasks.contains_key(id));
        }
        self.uploads
            .retain(|_, u| now < u.created_ms + UPLOAD_TTL_MS);
        self.policies.retain(|_, p| now <= p.expires_ms);
    }

    /// A live task by id (expired ones are gone, as on the service).
    pub fn task(&self, id: &str, now: i64, ttl_ms: i64) -> Option<&Task> {
        self.tasks.get(id).filter(|t| !t.expired(now, ttl_ms))
    }
}

pub struct Sim {
    pub config: SimConfig,
    /// `http://127.0.0.1:PORT`, the root of result and upload URLs.
    pub origin: String,
    pub clock: Clock,
    inner: Mutex<Inner>,
    faults: Mutex<(Faults, fastrand::Rng)>,
    store: Option<Store>,
    http: reqwest::Client,
}

impl Sim {
    pub async fn open(config: SimConfig, addr: SocketAddr) -> Result<Sim, SimError> {
        let mut inner = Inner::default();
        let store = match &config.state {
            Some(path) => {
                let (store, loaded) = Store::open(path.clone()).await?;
                inner.tasks = loaded
                    .tasks
                    .into_iter()
                    .map(|t| (t.id.clone(), t))
                    .collect();
                inner.images = loaded.images;
                inner.uploads = loaded.uploads;
                Some(store)
            }
            None => None,
        };
        let rng = fastrand::Rng::with_seed(config.faults.seed);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| SimError::Config(format!("cannot build the input downloader: {e}")))?;
        Ok(Sim {
            origin: format!("http://{addr}"),
            clock: Clock {
                offset_ms: AtomicI64::new(0),
            },
            inner: Mutex::new(inner),
            faults: Mutex::new((config.faults.clone(), rng)),
            store,
            http,
            config,
        })
    }

    /// Tasks whose work was cut short by a restart are worked again.
    pub fn resume(self: &Arc<Self>) {
        let unfinished: Vec<String> = self
            .lock()
            .tasks
            .values()
            .filter(|t| t.outcome.is_none() && t.canceled_ms.is_none())
            .map(|t| t.id.clone())
            .collect();
        for id in unfinished {
            tokio::spawn(Arc::clone(self).work(id));
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn ttl_ms(&self) -> i64 {
        self.config.ttl.as_millis() as i64
    }

    pub fn latency_ms(&self) -> (u64, u64) {
        (
            self.config.latency.0.as_millis() as u64,
            self.config.latency.1.as_millis() as u64,
        )
    }

    pub fn limits(&self, model: Model) -> ModelLimits {
        self.config
            .limits
            .get(&model)
            .copied()
            .unwrap_or_else(|| model.default_limits())
    }

    pub fn set_faults(&self, faults: Faults) {
        let mut guard = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        *guard = (faults.clone(), fastrand::Rng::with_seed(faults.seed));
    }

    /// Rolls the dice for one call: which faults hit it.
    pub fn roll(&self) -> Roll {
        let mut guard = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let (faults, rng) = &mut *guard;
        let mut hit = |rate: f64| rate > 0.0 && rng.f64() < rate;
        Roll {
            slow: hit(faults.slow_rate).then_some(faults.slow_delay),
            http_500: hit(faults.http_500_rate),
            http_503: hit(faults.http_503_rate),
            reset: hit(faults.reset_rate),
        }
    }

    /// Decides a new task's faults: a failure, or which images fail.
    pub fn plan(&self, n: u32) -> super::tasks::Plan {
        let mut guard = self.faults.lock().unwrap_or_else(PoisonError::into_inner);
        let (faults, rng) = &mut *guard;
        let mut plan = super::tasks::Plan::default();
        if faults.task_failure_rate > 0.0 && rng.f64() < faults.task_failure_rate {
            plan.fail_task = true;
        } else if n >= 2
            && faults.partial_failure_rate > 0.0
            && rng.f64() < faults.partial_failure_rate
        {
            let failing = rng.u32(1..n);
            let mut indexes: Vec<u32> = (0..n).collect();
            rng.shuffle(&mut indexes);
            indexes.truncate(failing as usize);
            indexes.sort_unstable();
            plan.failed_images = indexes;
        }
        plan
    }

    /// Saves a task to the state file, if there is one.
    pub async fn persist_task(&self, task: Task) {
        if let Some(store) = &self.store {
            store.save_task(task).await;
        }
    }

    pub async fn persist_upload(&self, key: String, upload: Upload) {
        if let Some(store) = &self.store {
            store.save_upload(key, upload).await;
        }
    }

    /// Does a task's work: fetches its inputs, renders its images, records the outcome.
    pub async fn work(self: Arc<Self>, id: String) {
        let Some(task) = self.lock().tasks.get(&id).cloned() else {
            return;
        };
        let spec = task.spec();
        let outcome = if task.plan.fail_task {
            Outcome::Failed(Failure::new(
                "InternalError.Algo",
                "Algorithm process error: the model failed on this task.",
            ))
        } else {
            match self.fetch_inputs(&spec).await {
                Err(failure) => Outcome::Failed(failure),
                Ok(inputs) => {
                    let (seed, plan) = (task.seed, task.plan.clone());
                    let rendered = tokio::task::spawn_blocking(move || {
                        render_all(&spec, &inputs, seed, &plan)
                    })
                    .await;
                    match rendered {
                        Ok(Ok(images)) => {
                            let mut slots = Vec::new();
                            let mut lock = self.lock();
                            for (i, image) in images.into_iter().enumerate() {
                                match image {
                                    Ok(png) => {
                                        lock.images.insert((id.clone(), i as u32), Arc::new(png));
                                        slots.push(None);
                                    }
                                    Err(failure) => slots.push(Some(failure)),
                                }
                            }
                            Outcome::Images(slots)
                        }
                        Ok(Err(failure)) => Outcome::Failed(failure),
                        Err(join) => Outcome::Failed(Failure::new(
                            "InternalError",
                            format!("render crashed: {join}"),
                        )),
                    }
                }
            }
        };
        let (saved, pngs) = {
            let mut lock = self.lock();
            let now = self.clock.now_ms();
            let Some(task) = lock.tasks.get_mut(&id) else {
                return;
            };
            task.outcome = Some(outcome);
            task.ready_ms = Some(now);
            let saved = task.clone();
            let pngs: Vec<(u32, Arc<Vec<u8>>)> = lock
                .images
                .iter()
                .filter(|((t, _), _)| *t == id)
                .map(|((_, i), png)| (*i, png.clone()))
                .collect();
            (saved, pngs)
        };
        if let Some(store) = &self.store {
            store.save_images(id.clone(), pngs).await;
            store.save_task(saved).await;
        }
    }

    /// Downloads or decodes every input image and checks it against the model's rules.
    /// A bad input fails the task (the create was already accepted, as on the service).
    async fn fetch_inputs(&self, spec: &JobSpec) -> Result<render::Inputs, Failure> {
        let mut inputs = render::Inputs::default();
        for (field, image) in spec.image_refs() {
            let bytes = self.fetch(field, image).await?;
            let model = spec.model;
            let field_name = field.to_string();
            let decoded =
                tokio::task::spawn_blocking(move || -> Result<image::RgbImage, Failure> {
                    check_image_bytes(model, &field_name, &bytes)
                        .map_err(|e| Failure::new("InvalidParameter", e.to_string()))?;
                    let img = image::load_from_memory(&bytes).map_err(|e| {
                        Failure::new(
                            "InvalidParameter",
                            format!("{field_name}: cannot decode: {e}"),
                        )
                    })?;
                    Ok(img.to_rgb8())
                })
                .await
                .map_err(|e| Failure::new("InternalError", format!("decode crashed: {e}")))??;
            match field {
                "base_image" => inputs.base = Some(decoded),
                "mask_image" => inputs.mask = Some(decoded),
                _ => inputs.images.push(decoded),
            }
        }
        if let (Some(base), Some(mask)) = (&inputs.base, &inputs.mask)
            && base.dimensions() != mask.dimensions()
        {
            return Err(Failure::new(
                "InvalidParameter",
                format!(
                    "mask_image: is {}x{} but the base image is {}x{}; a mask must have its base image's resolution",
                    mask.width(),
                    mask.height(),
                    base.width(),
                    base.height()
                ),
            ));
        }
        Ok(inputs)
    }

    async fn fetch(&self, field: &str, image: &ImageRef) -> Result<Vec<u8>, Failure> {
        let bad = |message: String| Failure::new("InvalidParameter", format!("{field}: {message}"));
        match image {
            ImageRef::DataUri(uri) => decode_data_uri(uri).map(|(_, bytes)| bytes).map_err(bad),
            ImageRef::Url(url) if url.starts_with("oss://") => {
                let key = &url["oss://".len()..];
                let now = self.clock.now_ms();
                let lock = self.lock();
                match lock.uploads.get(key) {
                    Some(upload) if now < upload.created_ms + UPLOAD_TTL_MS => {
                        Ok(upload.bytes.to_vec())
                    }
                    _ => Err(bad(format!(
                        "the uploaded object {url} does not exist or has expired"
                    ))),
                }
            }
            ImageRef::Url(url) => {
                let parsed = reqwest::Url::parse(url)
                    .map_err(|e| bad(format!("`{url}` is not a URL: {e}")))?;
                // The simulator only ever talks to loopback, whatever it is asked to fetch.
                let host = parsed
                    .host_str()
                    .unwrap_or("")
                    .trim_start_matches('[')
                    .trim_end_matches(']');
                let loopback = host == "localhost"
                    || host
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                if !loopback {
                    return Err(bad(format!(
                        "download of {url} failed: the simulator fetches loopback URLs only"
                    )));
                }
                let answer = self
                    .http
                    .get(parsed)
                    .send()
                    .await
                    .map_err(|e| bad(format!("download of {url} failed: {e}")))?;
                if !answer.status().is_success() {
                    return Err(bad(format!(
                        "download of {url} failed: HTTP {}",
                        answer.status().as_u16()
                    )));
                }
                answer
                    .bytes()
                    .await
                    .map(|b| b.to_vec())
                    .map_err(|e| bad(format!("download of {url} failed: {e}")))
            }
            ImageRef::File(path) => Err(bad(format!(
                "a local path ({}) cannot be sent to the service",
                path.display()
            ))),
        }
    }
}

/// What the dice decided for one call.
pub struct Roll {
    pub slow: Option<std::time::Duration>,
    pub http_500: bool,
    pub http_503: bool,
    pub reset: bool,
}

/// Renders every image of a task; `Err` for the whole task when the inputs cannot be used.
fn render_all(
    spec: &JobSpec,
    inputs: &render::Inputs,
    seed: u64,
    plan: &super::tasks::Plan,
) -> Result<Vec<Result<Vec<u8>, Failure>>, Failure> {
    let n = spec.image_count();
    let mut images = Vec::with_capacity(n as usize);
    for i in 0..n {
        if plan.failed_images.contains(&i) {
            images.push(Err(Failure::new(
                "InternalError.Algo",
                "Algorithm process error: this image could not be generated.",
            )));
            continue;
        }
        let png = render::render(spec, inputs, seed + i as u64)
            .map_err(|message| Failure::new("InvalidParameter", message))?;
        images.push(Ok(png));
    }
    Ok(images)
}
