//! The MCP server's way onto the shared queue: every request is enqueued in the same
//! store the dashboard and the CLI use. If this process can take the engine lock it runs
//! the engine itself; otherwise (a `wandash worker` or the dashboard runs it) it only
//! enqueues and watches the store until the job ends.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::sync::broadcast::error::RecvError;

use crate::backend::{self, Backend, BackendSettings};
use crate::dashscope::Model;
use crate::engine::{Engine, EngineConfig, EngineError, EngineEvent, EngineHandle};
use crate::intake::{self, Checked};
use crate::store::{
    CancelOutcome, ImageCache, JobDetail, JobFilter, JobId, JobSummary, Store, StoreError,
};

/// How often a waiting tool reads the job back from the store.
const WAIT_POLL: Duration = Duration::from_millis(200);

/// What the server needs to reach the store and, when it can, run the engine.
#[derive(Debug, Clone)]
pub struct McpSetup {
    pub db_path: PathBuf,
    /// Where decoded `encoded_image` inputs are kept (under `mcp-inputs/`).
    pub data_dir: PathBuf,
    /// Where images another host saved are kept once read from the store.
    pub image_cache: ImageCache,
    pub engine: EngineConfig,
    pub backend: BackendSettings,
}

/// Who moves this store's jobs.
enum Runner {
    /// Nobody yet, or the last attempt to start the engine here failed.
    None,
    /// This process: the engine and the backend it talks to (which may own the embedded
    /// simulator, so it lives as long as the engine).
    Here {
        backend: Backend,
        handle: EngineHandle,
    },
    /// Another process holds the engine lock; it finds our jobs by polling the store.
    Elsewhere,
}

pub struct Jobs {
    store: Arc<Store>,
    setup: McpSetup,
    runner: Mutex<Runner>,
    /// Why the engine here stopped, for the whole service or one model: the reasons its
    /// events gave, so that a waiting tool can tell the assistant instead of timing out.
    stops: Arc<std::sync::Mutex<Stops>>,
}

#[derive(Default)]
struct Stops {
    all: Option<String>,
    models: HashMap<Model, String>,
}

/// How a wait ended.
pub enum Waited {
    Ended(JobDetail),
    /// Still going when the time ran out; the job keeps running.
    TimedOut(JobDetail),
    /// The engine of this process stopped (bad key, arrears...); the job stays queued.
    EngineStopped(JobDetail, String),
}

impl Jobs {
    pub async fn open(setup: McpSetup) -> Result<Jobs, String> {
        let path = setup.db_path.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&path))
            .await
            .map_err(|e| format!("opening the store stopped: {e}"))?
            .map_err(|e| e.to_string())?;
        Ok(Jobs {
            store: Arc::new(store),
            setup,
            runner: Mutex::new(Runner::None),
            stops: Arc::default(),
        })
    }

    /// Who this server queues jobs as, `user@host`: what `list_jobs`' `mine` selects.
    pub fn submitter(&self) -> &str {
        self.store.submitter()
    }

    /// Makes sure someone runs the engine: starts it here unless another process holds the
    /// lock. Tried again on every request, so a worker that exits does not strand our jobs.
    /// An engine that cannot start (no key for a base URL...) is an error a person can fix.
    pub async fn ensure_engine(&self) -> Result<(), String> {
        let mut runner = self.runner.lock().await;
        if let Runner::Here { handle, .. } = &*runner
            && !handle.is_stopped()
        {
            handle.wake();
            return Ok(());
        }
        if let Runner::Here { backend, handle } = std::mem::replace(&mut *runner, Runner::None) {
            handle.shutdown().await;
            backend.shutdown().await;
        }
        let backend = backend::connect(self.setup.backend.clone())
            .await
            .map_err(|e| format!("cannot reach the image service: {e}"))?;
        match Engine::start(
            &self.setup.db_path,
            backend.client.clone(),
            self.setup.engine.clone(),
        ) {
            Ok(handle) => {
                *self.stops.lock().expect("stops lock") = Stops::default();
                tokio::spawn(record_stops(handle.subscribe(), Arc::clone(&self.stops)));
                tracing::info!(
                    backend = backend.kind.label(),
                    url = backend.kind.base_url(),
                    "MCP: engine runs in this process"
                );
                *runner = Runner::Here { backend, handle };
                Ok(())
            }
            Err(EngineError::Locked { .. }) => {
                backend.shutdown().await;
                if !matches!(*runner, Runner::Elsewhere) {
                    tracing::info!("MCP: another wandash runs the engine; only enqueueing");
                }
                *runner = Runner::Elsewhere;
                Ok(())
            }
            Err(e) => {
                backend.shutdown().await;
                Err(format!("cannot start the engine: {e}"))
            }
        }
    }

    /// Enqueues checked jobs (several in one transaction).
    pub async fn enqueue(
        &self,
        jobs: Vec<Checked>,
        tag: Option<String>,
    ) -> Result<Vec<JobId>, String> {
        self.blocking(move |store| intake::enqueue_all(store, jobs, tag.as_deref()))
            .await
    }

    /// Waits until the job ends, `timeout` runs out, or the engine here stops.
    pub async fn wait(&self, id: JobId, timeout: Duration) -> Result<Waited, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let detail = self
                .job(id)
                .await?
                .ok_or_else(|| format!("job {id} vanished from the store"))?;
            if detail.summary.state().is_final() {
                return Ok(Waited::Ended(detail));
            }
            if let Some(reason) = self.stop_reason(detail.summary.model).await {
                return Ok(Waited::EngineStopped(detail, reason));
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Waited::TimedOut(detail));
            }
            tokio::time::sleep(WAIT_POLL.min(deadline - tokio::time::Instant::now())).await;
        }
    }

    /// Why the engine of this process cannot run a job of `model`, if it stopped.
    async fn stop_reason(&self, model: Model) -> Option<String> {
        if !matches!(&*self.runner.lock().await, Runner::Here { .. }) {
            return None;
        }
        let stops = self.stops.lock().expect("stops lock");
        match (&stops.all, stops.models.get(&model)) {
            (Some(reason), _) => Some(format!("the engine stopped: {reason}")),
            (None, Some(reason)) => Some(format!("{model} stopped: {reason}")),
            (None, None) => None,
        }
    }

    /// The job, its image paths files on this host: on a store shared by hosts, images
    /// another host saved are read from the store into this host's cache. An image that
    /// cannot be had here is answered as such (its error naming job, image and sha256)
    /// rather than with a path the assistant cannot open.
    pub async fn job(&self, id: JobId) -> Result<Option<JobDetail>, String> {
        let cache = self.setup.image_cache.clone();
        self.blocking(move |store| {
            let Some(mut detail) = store.job(id)? else {
                return Ok(None);
            };
            for why in store.images_here(&mut detail, &cache) {
                tracing::warn!("MCP: {why}");
                if let StoreError::ImageUnavailable { index, .. } = &why
                    && let Some(image) = detail.images.iter_mut().find(|i| i.index == *index)
                {
                    image.path = None;
                    image.error_code = Some("ImageUnavailable".into());
                    image.error_message = Some(why.to_string());
                }
            }
            Ok(Some(detail))
        })
        .await
    }

    pub async fn list(&self, filter: JobFilter, limit: u64) -> Result<Vec<JobSummary>, String> {
        self.blocking(move |store| store.list(&filter, 0, limit))
            .await
    }

    /// What cancelling did; `None` if there is no such job.
    pub async fn cancel(&self, id: JobId) -> Result<Option<CancelOutcome>, String> {
        let outcome = self
            .blocking(move |store| match store.request_cancel(id) {
                Ok(outcome) => Ok(Some(outcome)),
                Err(StoreError::NoSuchJob(_)) => Ok(None),
                Err(e) => Err(e),
            })
            .await?;
        if let Runner::Here { handle, .. } = &*self.runner.lock().await {
            handle.wake();
        }
        Ok(outcome)
    }

    /// Where decoded inputs are written.
    pub fn inputs_dir(&self) -> PathBuf {
        self.setup.data_dir.join("mcp-inputs")
    }

    /// Stops the engine if it runs here; jobs in flight resume on the next start.
    pub async fn shutdown(&self) {
        if let Runner::Here { backend, handle } =
            std::mem::replace(&mut *self.runner.lock().await, Runner::None)
        {
            handle.shutdown().await;
            backend.shutdown().await;
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Store) -> Result<T, crate::store::StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || work(&store))
            .await
            .map_err(|e| format!("the store reader stopped: {e}"))?
            .map_err(|e| e.to_string())
    }
}

/// Keeps the reasons of the engine's stop events until the engine goes away.
async fn record_stops(
    mut events: tokio::sync::broadcast::Receiver<EngineEvent>,
    stops: Arc<std::sync::Mutex<Stops>>,
) {
    loop {
        match events.recv().await {
            Ok(EngineEvent::Stopped { reason }) => {
                tracing::warn!("MCP: the engine stopped: {reason}");
                stops.lock().expect("stops lock").all = Some(reason);
            }
            Ok(EngineEvent::ModelStopped { model, reason }) => {
                tracing::warn!("MCP: {model} stopped: {reason}");
                stops
                    .lock()
                    .expect("stops lock")
                    .models
                    .insert(model, reason);
            }
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}
