//! The engine end to end: real SQLite files, the real simulator on 127.0.0.1, the real
//! client. Short simulator latencies keep each test to seconds.

mod engine_support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use engine_support::*;
use wandash::backend::{BackendKind, BackendSettings, connect};
use wandash::dashscope::{
    ApiKey, Client, JobSpec, ListQuery, Model, ModelLimits, Region, TaskStatus, Timestamp,
};
use wandash::engine::{Budget, Engine, EngineConfig, EngineError, EngineEvent};
use wandash::simulator::{Faults, RunningSim, SimConfig};
use wandash::store::{
    ErrorKind, JobDetail, JobId, JobState, PauseScope, QueueStep, Store, sha256_hex,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_40_job_batch_runs_at_the_quota_with_every_image_saved() {
    // API.md's real limits (2 creates/s, 2 in flight per model); two models in parallel.
    let s = setup(sim_config(Faults::default(), HashMap::new())).await;
    let store = Store::open(&s.db).unwrap();
    let models = [Model::Wanx21T2iTurbo, Model::Wanx20T2iTurbo];
    let specs: Vec<JobSpec> = (0..40)
        .map(|i| spec(models[i % 2], &format!("a lighthouse, study {i}")))
        .collect();
    let ids = store.enqueue_batch(&specs, Some("quota")).unwrap();

    let started = Instant::now();
    let engine = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    let mut events = engine.subscribe();
    wait_idle(&engine, Duration::from_secs(120)).await;
    let wall = started.elapsed();
    engine.shutdown().await;

    let jobs = all_jobs(&store);
    assert_eq!(jobs.len(), 40);
    for job in &jobs {
        assert_eq!(
            job.summary.state(),
            JobState::Succeeded,
            "job {}: {:?}",
            job.summary.id,
            job.summary.error()
        );
        assert_eq!(
            (
                job.summary.images_ok,
                job.summary.images_failed,
                job.summary.attempts
            ),
            (1, 0, 1)
        );
        assert_eq!(
            (job.images[0].width, job.images[0].height),
            (Some(512), Some(512))
        );
        assert!(job.summary.cost_cny.unwrap() > 0.0);
        check_saved_images(job);
    }
    let task_ids: HashSet<_> = jobs.iter().map(|j| j.task_id().unwrap()).collect();
    assert_eq!(task_ids.len(), 40);
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    let throttles: Vec<_> = jobs
        .iter()
        .flat_map(|j| {
            j.events
                .iter()
                .filter_map(|e| e.detail.clone().filter(|d| d.starts_with("Throttling")))
        })
        .collect();
    assert_eq!(stats["creates"], 40, "{stats}");
    assert_eq!(stats["throttled"], 0, "{stats} {throttles:?}");

    let mut saved = HashSet::new();
    while let Ok(event) = events.try_recv() {
        if let EngineEvent::ImageSaved { job, .. } = event {
            saved.insert(job);
        }
    }
    assert_eq!(saved, ids.into_iter().collect::<HashSet<JobId>>());
    // 20 jobs per model at 2 creates per second.
    let bound = 20.0 / 2.0;
    println!(
        "40 jobs in {:.2} s; quota bound {bound:.1} s; ratio {:.3}",
        wall.as_secs_f64(),
        wall.as_secs_f64() / bound
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_end_every_job_in_the_right_state_and_nothing_is_created_twice() {
    let faults = Faults {
        http_500_rate: 0.08,
        http_503_rate: 0.08,
        reset_rate: 0.08,
        slow_rate: 0.1,
        slow_delay: Duration::from_millis(300),
        partial_failure_rate: 0.4,
        task_failure_rate: 0.1,
        seed: 7,
    };
    let s = setup(sim_config(faults, raised_limits())).await;
    let store = Store::open(&s.db).unwrap();
    let specs: Vec<JobSpec> = (0..30)
        .map(|i| {
            let mut spec = spec(
                Model::Wanx21T2iTurbo,
                &format!("a harbour at night, take {i}"),
            );
            spec.n = Some(3);
            spec
        })
        .collect();
    store.enqueue_batch(&specs, None).unwrap();
    let mut config = engine_config(&s.data);
    config.limits = raised_limits();
    let engine = Engine::start(&s.db, client(&s.sim), config).unwrap();
    wait_idle(&engine, Duration::from_secs(120)).await;
    engine.shutdown().await;

    let jobs = all_jobs(&store);
    let mut partial = 0;
    for job in &jobs {
        let s = &job.summary;
        match s.state() {
            JobState::Succeeded => {
                assert!(s.images_ok >= 1, "job {}", s.id);
                assert_eq!(
                    s.images_ok + s.images_failed,
                    3,
                    "job {}: every image accounted for",
                    s.id
                );
                if s.images_failed > 0 {
                    partial += 1;
                    let failed = job.images.iter().find(|i| !i.is_saved()).unwrap();
                    assert_eq!(failed.error_code.as_deref(), Some("InternalError.Algo"));
                    assert!(!failed.error_message.as_deref().unwrap_or("").is_empty());
                }
                check_saved_images(job);
            }
            // A task the service ended FAILED; the job records why.
            JobState::Failed => assert_eq!(
                s.error().map(|e| e.kind.code()),
                Some("InternalError.Algo"),
                "job {}: {:?}",
                s.id,
                s.error()
            ),
            other => panic!("job {} ended {other}: {:?}", s.id, s.error()),
        }
        assert!(job.task_id().is_some(), "job {} has its task", s.id);
    }
    assert!(partial > 0, "some tasks partly failed");
    let adopted = jobs
        .iter()
        .filter(|j| {
            j.events.iter().any(|e| {
                e.detail
                    .as_deref()
                    .is_some_and(|d| d.starts_with("adopted"))
            })
        })
        .count();
    let retried = jobs.iter().filter(|j| j.summary.attempts > 1).count();
    println!("{partial} partial, {adopted} adopted after an unanswered create, {retried} retried");
    // Exactly once: every task the service created belongs to exactly one job.
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    let task_ids: HashSet<_> = jobs.iter().filter_map(JobDetail::task_id).collect();
    assert_eq!(
        stats["creates"].as_u64().unwrap(),
        task_ids.len() as u64,
        "{stats}"
    );
    assert_eq!(task_ids.len(), 30);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_expires_before_its_results_are_fetched_ends_expired() {
    let s = setup(sim_config(Faults::default(), HashMap::new())).await;
    let store = Store::open(&s.db).unwrap();
    let id = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "an old photograph"))
        .unwrap();
    let mut config = engine_config(&s.data);
    // Slow polling: the task finishes, and expires, before the engine looks again.
    config.poll_min = Duration::from_millis(1500);
    config.poll_max = Duration::from_millis(1500);
    let engine = Engine::start(&s.db, client(&s.sim), config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.job(id).unwrap().unwrap().task_id().is_none() {
        assert!(Instant::now() < deadline, "the job was submitted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    sim_post(
        &s.sim,
        "/__sim/advance",
        serde_json::json!({ "seconds": 25 * 3600 }),
    )
    .await;
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    let job = store.job(id).unwrap().unwrap();
    assert_eq!(job.summary.state(), JobState::Expired);
    assert_eq!(job.summary.error().map(|e| e.kind.code()), Some("Expired"));
    assert!(job.summary.status.ended_at().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_engine_on_the_same_store_is_refused() {
    let s = setup(sim_config(Faults::default(), HashMap::new())).await;
    let first = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    let Err(err) = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)) else {
        panic!("a second engine started")
    };
    assert!(matches!(err, EngineError::Locked { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("another wandash engine is already running"),
        "{err}"
    );
    first.shutdown().await;
    // The lock goes with the engine.
    let again = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn task_durations_learned_by_one_engine_are_where_the_next_one_starts() {
    let model = Model::Wanx21T2iTurbo;
    let latency = |ms| (Duration::from_millis(ms), Duration::from_millis(ms));
    let s = setup(SimConfig {
        latency: latency(200),
        ..sim_config(Faults::default(), HashMap::new())
    })
    .await;
    let store = Store::open(&s.db).unwrap();
    assert_eq!(store.learned_durations().unwrap(), Vec::new());
    store.enqueue(&spec(model, "a quick sketch")).unwrap();
    let engine = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    let learned = store.learned_durations().unwrap();
    assert_eq!(learned.len(), 1, "{learned:?}");
    let (learned_model, first) = learned[0];
    assert_eq!((learned_model, first.samples), (model, 1));
    // The run time the service reported: its latency, or more while it renders.
    assert!(first.seconds >= 0.2, "{first:?}");

    // A fresh process, against a service now three times slower: it goes on from the
    // average the first one kept (a plain mean of two samples), not from nothing.
    let slower = wandash::simulator::start(SimConfig {
        latency: latency(600),
        ..sim_config(Faults::default(), HashMap::new())
    })
    .await
    .unwrap();
    let id = store.enqueue(&spec(model, "a slower sketch")).unwrap();
    let engine = Engine::start(&s.db, client(&slower), engine_config(&s.data)).unwrap();
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    let job = store.job(id).unwrap().unwrap();
    assert_eq!(job.summary.state(), JobState::Succeeded);
    let task = client(&slower).fetch(job.task_id().unwrap()).await.unwrap();
    slower.shutdown().await;
    let at = |time: &Option<String>| Timestamp::parse_service(time.as_deref().unwrap()).unwrap();
    let took = at(&task.end_time)
        .since(at(&task.submit_time))
        .as_secs_f64();
    assert!(took >= 0.6, "{took}");
    let learned = store.learned_durations().unwrap();
    let (_, second) = learned[0];
    assert_eq!(second.samples, 2, "{learned:?}");
    assert!(
        (second.seconds - (first.seconds + took) / 2.0).abs() < 1e-9,
        "the mean of the kept {first:?} and the new {took} s: {second:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_keeps_to_the_limits_the_account_states_lower_or_higher_than_the_defaults() {
    // Tasks outlast the default create spacing (half a second), so an engine keeping to
    // the default two in flight would meet the service's 429 on the lowered model.
    let latency = (Duration::from_millis(700), Duration::from_millis(700));
    let (lowered, raised) = (Model::Wanx21T2iTurbo, Model::Wanx21T2iPlus);
    let account = HashMap::from([
        (
            lowered,
            ModelLimits {
                submit_per_second: 10.0,
                in_flight: 1,
            },
        ),
        (
            raised,
            ModelLimits {
                submit_per_second: 20.0,
                in_flight: 4,
            },
        ),
    ]);
    let s = setup(SimConfig {
        latency,
        ..sim_config(Faults::default(), account)
    })
    .await;
    let store = Store::open(&s.db).unwrap();
    let specs: Vec<JobSpec> = (0..3)
        .map(|i| spec(lowered, &format!("one at a time {i}")))
        .chain((0..4).map(|i| spec(raised, &format!("four at once {i}"))))
        .collect();
    store.enqueue_batch(&specs, None).unwrap();
    // No limits in the engine's config: the account's quotas decide.
    let engine = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    wait_idle(&engine, Duration::from_secs(30)).await;
    engine.shutdown().await;

    let jobs = all_jobs(&store);
    assert!(
        jobs.iter()
            .all(|j| j.summary.state() == JobState::Succeeded && j.summary.attempts == 1),
        "{:?}",
        jobs.iter().map(|j| j.summary.state()).collect::<Vec<_>>()
    );
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    let of = |model: Model| &stats["by_model"][model.id()];
    assert_eq!(of(lowered)["creates"], 3, "{stats}");
    assert_eq!(of(lowered)["throttled"], 0, "{stats}");
    assert_eq!(
        of(lowered)["peak_in_flight"],
        1,
        "never more than the quota: {stats}"
    );
    assert_eq!(of(raised)["throttled"], 0, "{stats}");
    assert!(
        of(raised)["peak_in_flight"].as_u64().unwrap() > 2,
        "more at once than the default allows: {stats}"
    );
}

/// Waits until a task made by hand has ended, so that it echoes its prompt to recovery: a
/// fixed sleep raced the simulator's latency on a loaded machine, and a still-running
/// task shows no prompt at all.
async fn wait_until_succeeded(sim: &RunningSim, task_id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while client(sim).fetch(task_id).await.unwrap().status != TaskStatus::Succeeded {
        assert!(
            tokio::time::Instant::now() < deadline,
            "task {task_id} never ended"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_made_just_before_a_crash_is_adopted_and_a_missing_one_resubmitted() {
    let s = setup(sim_config(Faults::default(), HashMap::new())).await;
    let store = Store::open(&s.db).unwrap();
    let made = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "made before the crash"))
        .unwrap();
    let lost = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "lost in the crash"))
        .unwrap();
    let unsent = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "claimed, never sent"))
        .unwrap();
    // The process died after two creates were marked as sending (only the first got
    // out) and a third job was claimed but still waited for its turn.
    leave_claimed(&s.db, made, true);
    leave_claimed(&s.db, lost, true);
    leave_claimed(&s.db, unsent, false);
    let job = store.job(made).unwrap().unwrap();
    let created = client(&s.sim).create(&job.spec).await.unwrap();
    wait_until_succeeded(&s.sim, &created.task_id).await;

    let engine = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    wait_idle(&engine, Duration::from_secs(30)).await;
    engine.shutdown().await;

    let made = store.job(made).unwrap().unwrap();
    assert_eq!(made.summary.state(), JobState::Succeeded);
    assert_eq!(
        made.task_id(),
        Some(created.task_id.as_str()),
        "the existing task was adopted"
    );
    assert!(made.events.iter().any(|e| {
        e.detail
            .as_deref()
            .is_some_and(|d| d.starts_with("adopted"))
    }));
    check_saved_images(&made);
    let lost = store.job(lost).unwrap().unwrap();
    assert_eq!(lost.summary.state(), JobState::Succeeded);
    assert_ne!(lost.task_id(), made.task_id());
    let unsent = store.job(unsent).unwrap().unwrap();
    assert_eq!(unsent.summary.state(), JobState::Succeeded);
    assert!(unsent.events.iter().any(|e| {
        e.detail
            .as_deref()
            .is_some_and(|d| d.contains("before this job's create was sent"))
    }));
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    assert_eq!(
        stats["creates"], 3,
        "one create by hand, one resubmission, one first submission: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_task_with_another_prompt_is_not_adopted() {
    let s = setup(sim_config(Faults::default(), HashMap::new())).await;
    let store = Store::open(&s.db).unwrap();
    let id = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "ours, lost in the crash"))
        .unwrap();
    leave_claimed(&s.db, id, true);
    // Meanwhile another program on the same account made a task of the same model.
    let foreign = client(&s.sim)
        .create(&spec(Model::Wanx21T2iTurbo, "someone else's"))
        .await
        .unwrap();
    wait_until_succeeded(&s.sim, &foreign.task_id).await;

    let engine = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    wait_idle(&engine, Duration::from_secs(30)).await;
    engine.shutdown().await;

    let job = store.job(id).unwrap().unwrap();
    assert_eq!(job.summary.state(), JobState::Succeeded);
    assert_ne!(job.task_id(), Some(foreign.task_id.as_str()));
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    assert_eq!(
        stats["creates"], 2,
        "the lost create was sent again: {stats}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_that_cannot_be_attributed_goes_to_needs_attention() {
    let s = setup(sim_config(Faults::default(), HashMap::new())).await;
    let store = Store::open(&s.db).unwrap();
    // Two jobs with the same prompt, both interrupted while submitting; one task exists.
    let a = store
        .enqueue(&spec(Model::Wanx21T2iPlus, "twin prompt"))
        .unwrap();
    let b = store
        .enqueue(&spec(Model::Wanx21T2iPlus, "twin prompt"))
        .unwrap();
    leave_claimed(&s.db, a, true);
    leave_claimed(&s.db, b, true);
    let job = store.job(a).unwrap().unwrap();
    client(&s.sim).create(&job.spec).await.unwrap();

    let engine = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    wait_idle(&engine, Duration::from_secs(30)).await;
    engine.shutdown().await;
    for id in [a, b] {
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.summary.state(), JobState::NeedsAttention, "job {id}");
        assert_eq!(
            job.summary.error().map(|e| e.kind.code()),
            Some("CreateUncertain")
        );
        assert!(
            job.summary
                .error()
                .unwrap()
                .message
                .contains("cannot be told apart")
        );
    }
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    assert_eq!(stats["creates"], 1, "never a silent second create: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_key_stops_the_engine_and_leaves_jobs_queued() {
    let s = setup(SimConfig {
        key: Some("the-right-key".into()),
        ..sim_config(Faults::default(), HashMap::new())
    })
    .await;
    let store = Store::open(&s.db).unwrap();
    let ids = store
        .enqueue_batch(
            &[
                spec(Model::Wanx21T2iTurbo, "one"),
                spec(Model::Wanx21T2iTurbo, "two"),
            ],
            None,
        )
        .unwrap();
    let wrong = Client::new(&s.sim.base_url(), ApiKey::new("a-wrong-key".into())).unwrap();
    let engine = Engine::start(&s.db, wrong, engine_config(&s.data)).unwrap();
    let mut events = engine.subscribe();
    wait_idle(&engine, Duration::from_secs(20)).await;
    assert!(engine.is_stopped());
    let reason = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            EngineEvent::Stopped { reason } => break reason,
            _ => continue,
        }
    };
    assert!(reason.contains("InvalidApiKey"), "{reason}");
    assert!(
        !reason.contains("a-wrong-key"),
        "the key never appears: {reason}"
    );
    engine.shutdown().await;
    for id in ids {
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.summary.state(), JobState::Queued);
        assert_eq!(job.summary.attempts, 0, "not the job's fault");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_runs_the_simulator_without_a_key_and_refuses_a_url_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let settings = BackendSettings {
        api_key: None,
        base_url: None,
        region: Region::Beijing,
        data_dir: dir.path().to_path_buf(),
        sim_latency: FAST,
    };
    let backend = connect(settings.clone()).await.unwrap();
    assert!(matches!(backend.kind, BackendKind::Simulator { .. }));
    assert_eq!(backend.kind.label(), "SIMULATOR");
    let db = dir.path().join("wandash.db");
    let store = Store::open(&db).unwrap();
    let id = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "a quick one"))
        .unwrap();
    let engine = Engine::start(
        &db,
        backend.client.clone(),
        engine_config(&dir.path().join("data")),
    )
    .unwrap();
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    assert_eq!(
        store.job(id).unwrap().unwrap().summary.state(),
        JobState::Succeeded
    );
    backend.shutdown().await;
    assert!(
        dir.path().join("simulator.db").exists(),
        "the simulator keeps its state in the data directory"
    );

    let Err(err) = connect(BackendSettings {
        base_url: Some("http://127.0.0.1:9/api/v1".into()),
        ..settings.clone()
    })
    .await
    else {
        panic!("connected without a key")
    };
    assert!(matches!(err, EngineError::MissingKey));
    assert!(err.to_string().contains("DASHSCOPE_API_KEY"));

    let live = connect(BackendSettings {
        api_key: Some(ApiKey::new("k".into())),
        region: Region::Singapore,
        ..settings
    })
    .await
    .unwrap();
    assert_eq!(
        live.kind,
        BackendKind::Live {
            base_url: Region::Singapore.base_url().into()
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_stops_a_pending_task_and_is_refused_for_a_running_one() {
    let slow = (Duration::from_secs(4), Duration::from_secs(4));
    let s = setup(SimConfig {
        latency: slow,
        ..sim_config(Faults::default(), raised_limits())
    })
    .await;
    let store = Store::open(&s.db).unwrap();
    let pending = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "cancel me early"))
        .unwrap();
    let running = store
        .enqueue(&spec(Model::Wanx21T2iTurbo, "cancel me late"))
        .unwrap();
    let mut config = engine_config(&s.data);
    config.limits = raised_limits();
    let engine = Engine::start(&s.db, client(&s.sim), config).unwrap();

    let deadline = Instant::now() + Duration::from_secs(10);
    while store.job(pending).unwrap().unwrap().task_id().is_none() {
        assert!(Instant::now() < deadline, "submitted in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The simulator keeps a 4 s task PENDING for its first 1.6 s.
    assert_eq!(
        store.request_cancel(pending).unwrap(),
        wandash::store::CancelOutcome::Requested
    );
    while store.job(running).unwrap().unwrap().summary.state() != JobState::Running {
        assert!(Instant::now() < deadline, "running in time");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        store.request_cancel(running).unwrap(),
        wandash::store::CancelOutcome::Requested
    );
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;

    assert_eq!(
        store.job(pending).unwrap().unwrap().summary.state(),
        JobState::Cancelled
    );
    let late = store.job(running).unwrap().unwrap();
    assert_eq!(late.summary.state(), JobState::Succeeded);
    assert!(
        late.events.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.starts_with("cancel refused"))),
        "{:?}",
        late.events
    );
    assert!(!late.summary.cancel_requested);
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    assert_eq!(stats["creates"], 2, "{stats}");
}

/// The jobs of `store` by state, oldest first.
fn in_state(store: &Store, state: JobState) -> Vec<JobDetail> {
    let mut jobs: Vec<JobDetail> = all_jobs(store)
        .into_iter()
        .filter(|j| j.summary.state() == state)
        .collect();
    jobs.sort_by_key(|j| j.summary.id);
    jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daily_budget_stops_creates_at_the_limit_and_a_raised_one_lets_them_go() {
    let s = setup(sim_config(Faults::default(), raised_limits())).await;
    let store = Store::open(&s.db).unwrap();
    // 0.14 CNY per image, one image a job: three fit under 0.50, the fourth would not.
    let specs: Vec<JobSpec> = (0..8)
        .map(|i| spec(Model::Wanx21T2iTurbo, &format!("a budgeted fox {i}")))
        .collect();
    store.enqueue_batch(&specs, None).unwrap();
    let with_daily = |limit: f64| EngineConfig {
        budget: Budget {
            daily_cny: Some(limit),
            ..Budget::default()
        },
        ..engine_config(&s.data)
    };

    let engine = Engine::start(&s.db, client(&s.sim), with_daily(0.5)).unwrap();
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    assert_eq!(stats["creates"], 3, "{stats}");
    assert_eq!(in_state(&store, JobState::Succeeded).len(), 3);
    let queued = in_state(&store, JobState::Queued);
    assert_eq!(queued.len(), 5);
    // The job next in line says why it waits; the ones behind it wait their turn.
    let reason = queued[0].summary.error().expect("the reason is noted");
    assert_eq!(reason.kind, ErrorKind::OverBudget);
    assert!(
        reason.message.contains("daily budget of 0.50 CNY")
            && reason.message.contains("0.42 CNY spent"),
        "{reason}"
    );
    assert_eq!(queued[0].summary.attempts, 0, "never claimed");
    let spent: f64 = all_jobs(&store)
        .iter()
        .filter_map(|j| j.summary.cost_cny)
        .sum();
    assert!(spent <= 0.5, "{spent}");

    // A raised limit, after a restart, sends the rest.
    let engine = Engine::start(&s.db, client(&s.sim), with_daily(10.0)).unwrap();
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    assert_eq!(stats["creates"], 8, "{stats}");
    let done = in_state(&store, JobState::Succeeded);
    assert_eq!(done.len(), 8);
    assert!(done.iter().all(|j| j.summary.error().is_none()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn free_quota_only_stops_at_the_free_images() {
    let s = setup(sim_config(Faults::default(), raised_limits())).await;
    let store = Store::open(&s.db).unwrap();
    // 497 of the model's 500 free images were made earlier (a job from before, written
    // as the engine ends one), so 3 are left.
    let earlier = store
        .enqueue_batch(&[spec(Model::Wanx21T2iTurbo, "what came before")], None)
        .unwrap()[0];
    let conn = rusqlite::Connection::open(&s.db).unwrap();
    conn.execute(
        "UPDATE jobs SET state = 'succeeded', task_id = 'earlier-task', task_status = 'SUCCEEDED',
             submitted_at = ?2, ended_at = ?2, images_expected = 497, images_ok = 497, cost_cny = 69.58
         WHERE id = ?1",
        rusqlite::params![earlier.0, Timestamp::now().as_millis()],
    )
    .unwrap();
    drop(conn);
    let specs: Vec<JobSpec> = (0..5)
        .map(|i| spec(Model::Wanx21T2iTurbo, &format!("a free fox {i}")))
        .collect();
    store.enqueue_batch(&specs, None).unwrap();
    let config = EngineConfig {
        budget: Budget {
            free_quota_only: true,
            ..Budget::default()
        },
        ..engine_config(&s.data)
    };
    let engine = Engine::start(&s.db, client(&s.sim), config).unwrap();
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    let stats = sim_get(&s.sim, "/__sim/stats").await;
    assert_eq!(stats["creates"], 3, "{stats}");
    let queued = in_state(&store, JobState::Queued);
    assert_eq!(queued.len(), 2);
    let reason = queued[0].summary.error().expect("the reason is noted");
    assert_eq!(reason.kind, ErrorKind::OverBudget);
    assert!(reason.message.contains("0 free image(s) left"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_and_moves_change_the_order_the_creates_reach_the_service() {
    // One in flight: the creates go one after another, in the order the engine claims.
    let s = setup(sim_config(Faults::default(), raised_limits())).await;
    let store = Store::open(&s.db).unwrap();
    let specs: Vec<JobSpec> = (0..5)
        .map(|i| spec(Model::Wanx21T2iTurbo, &format!("in order {i}")))
        .collect();
    let ids = store.enqueue_batch(&specs, None).unwrap();
    store.move_to_top(ids[4]).unwrap();
    assert!(store.move_in_queue(ids[0], QueueStep::Later).unwrap());
    let mut config = engine_config(&s.data);
    config.limits = limits(20.0, 1);
    let engine = Engine::start(&s.db, client(&s.sim), config).unwrap();
    wait_idle(&engine, Duration::from_secs(30)).await;
    engine.shutdown().await;

    let query = ListQuery {
        page_no: 1,
        page_size: 100,
        ..ListQuery::default()
    };
    let mut created: Vec<_> = client(&s.sim)
        .list(&query)
        .await
        .unwrap()
        .data
        .into_iter()
        .map(|task| (task.gmt_create.unwrap(), task.task_id))
        .collect();
    created.sort();
    let job_of_task: HashMap<String, JobId> = all_jobs(&store)
        .iter()
        .map(|j| (j.task_id().unwrap().to_string(), j.summary.id))
        .collect();
    let order: Vec<JobId> = created.iter().map(|(_, task)| job_of_task[task]).collect();
    assert_eq!(order, [ids[4], ids[1], ids[0], ids[2], ids[3]]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_holds_back_claimed_jobs_lets_tasks_at_the_service_finish_and_resume_sends_them() {
    let s = setup(SimConfig {
        latency: (Duration::from_millis(300), Duration::from_millis(300)),
        ..sim_config(Faults::default(), raised_limits())
    })
    .await;
    let store = Store::open(&s.db).unwrap();
    let specs: Vec<JobSpec> = (0..4)
        .map(|i| spec(Model::Wanx21T2iTurbo, &format!("held {i}")))
        .collect();
    let ids = store.enqueue_batch(&specs, None).unwrap();
    // Every job is claimed at once and waits for the create pace (2 a second).
    let mut config = engine_config(&s.data);
    config.limits = limits(2.0, 8);
    let engine = Engine::start(&s.db, client(&s.sim), config).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while all_jobs(&store).iter().all(|j| j.task_id().is_none()) {
        assert!(Instant::now() < deadline, "a first create in time");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // As `wandash pause` does it from another process.
    Store::open(&s.db).unwrap().pause(PauseScope::All).unwrap();

    // The task at the service finishes; the claimed jobs go back to the queue unsent.
    let settled = |jobs: &[JobDetail]| {
        jobs.iter()
            .all(|j| matches!(j.summary.state(), JobState::Succeeded | JobState::Queued))
    };
    let mut jobs = all_jobs(&store);
    while !settled(&jobs) {
        assert!(Instant::now() < deadline, "settled in time: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
        jobs = all_jobs(&store);
    }
    let done = jobs
        .iter()
        .filter(|j| j.summary.state() == JobState::Succeeded)
        .count();
    let held: Vec<&JobDetail> = jobs
        .iter()
        .filter(|j| j.summary.state() == JobState::Queued)
        .collect();
    assert!(done >= 1 && !held.is_empty(), "{jobs:?}");
    assert_eq!(sim_get(&s.sim, "/__sim/stats").await["creates"], done);
    for job in &held {
        assert!(job.task_id().is_none());
        assert!(
            job.events.iter().any(|e| e
                .detail
                .as_deref()
                .is_some_and(|d| d.contains("the queue was paused"))),
            "{:?}",
            job.events
        );
    }

    Store::open(&s.db).unwrap().resume(PauseScope::All).unwrap();
    wait_idle(&engine, Duration::from_secs(20)).await;
    engine.shutdown().await;
    for id in ids {
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.summary.state(), JobState::Succeeded);
        assert_eq!(job.summary.attempts, 1, "a held-back claim is no attempt");
    }
    assert_eq!(sim_get(&s.sim, "/__sim/stats").await["creates"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seed_chosen_at_intake_reaches_the_service_and_image_i_has_seed_plus_i() {
    use wandash::intake::{Draft, check, enqueue};
    let s = setup(sim_config(Faults::default(), raised_limits())).await;
    let store = Store::open(&s.db).unwrap();
    let mut free = spec(Model::Wanx21T2iTurbo, "a lighthouse, seed study");
    free.n = Some(2);
    let checked = check(Draft::new(free.clone(), s.data.as_path())).unwrap();
    let first = enqueue(&store, checked).unwrap();
    let seed = store.job(first).unwrap().unwrap().spec.seed;
    let seed = seed.expect("intake stored the seed it chose");
    // The same job with image 1's seed given: the service makes the same picture only if
    // it made the first job's images from the stored seed.
    let mut again = free;
    again.n = Some(1);
    again.seed = Some(seed + 1);
    let second = enqueue(&store, check(Draft::new(again, s.data.as_path())).unwrap()).unwrap();

    let engine = Engine::start(&s.db, client(&s.sim), engine_config(&s.data)).unwrap();
    wait_idle(&engine, Duration::from_secs(30)).await;
    engine.shutdown().await;

    let sha = |id: JobId, index: usize| {
        let job = store.job(id).unwrap().unwrap();
        assert_eq!(job.summary.state(), JobState::Succeeded, "job {id}");
        job.images[index].sha256.clone().expect("a saved image")
    };
    assert_eq!(sha(first, 1), sha(second, 0));
    assert_ne!(sha(first, 0), sha(second, 0));
}

#[path = "support/postgres.rs"]
mod test_postgres;

/// Issue #14: images saved before the store kept their bytes (schema 8) have none in it,
/// so other hosts cannot show them. An engine starting on a PostgreSQL store uploads the
/// bytes of those whose file is on its host, and never those of a file that does not
/// hash to the recorded sha256.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engine_on_postgresql_uploads_the_bytes_of_earlier_images_whose_files_are_here() {
    let Some(server) = test_postgres::server() else {
        return;
    };
    let s = setup(sim_config(Faults::default(), HashMap::new())).await;
    let url = server.fresh_database();
    let db = std::path::PathBuf::from(&url);
    let store = Store::open(&db).unwrap();
    let id = store
        .enqueue(&spec(
            Model::Wanx21T2iTurbo,
            "saved before the store kept bytes",
        ))
        .unwrap();
    store.request_cancel(id).unwrap();
    let old = s.data.join("old images");
    std::fs::create_dir_all(&old).unwrap();
    let here: &[u8] = b"an image saved on this host";
    std::fs::write(old.join("0.png"), here).unwrap();
    std::fs::write(old.join("1.png"), b"edited since it was saved").unwrap();
    let images = [
        (0i64, "0.png", sha256_hex(here)),
        (1, "1.png", sha256_hex(b"what was saved")),
        (2, "2.png", sha256_hex(b"saved on another host")),
    ];
    let rows: Vec<(i64, String, String)> = images
        .iter()
        .map(|(index, name, sha)| (*index, old.join(name).display().to_string(), sha.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut sql = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        for (index, path, sha) in rows {
            sql.execute(
                "INSERT INTO images (job_id, idx, path, sha256) VALUES ($1, $2, $3, $4)",
                &[&id.0, &index, &path, &sha],
            )
            .unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(store.image_bytes(&images[0].2).unwrap(), None);

    let engine = Engine::start(&db, client(&s.sim), engine_config(&s.data)).unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    while store.image_bytes(&images[0].2).unwrap().is_none() {
        assert!(
            Instant::now() < give_up,
            "the image's bytes were not uploaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    engine.shutdown().await;
    assert_eq!(
        store.image_bytes(&images[0].2).unwrap().as_deref(),
        Some(here)
    );
    assert_eq!(
        store.image_bytes(&images[1].2).unwrap(),
        None,
        "a file that is not the recorded image"
    );
    assert_eq!(store.image_bytes(&images[2].2).unwrap(), None);
}
