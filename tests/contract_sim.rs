//! The client against the simulator over real loopback HTTP: every model and every
//! imageedit function round-trips (create, poll to SUCCEEDED, download, decode, check the
//! size), plus cancel, list, upload reuse and every error class.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use base64::Engine as _;
use image::{DynamicImage, GenericImageView, ImageBuffer, ImageFormat, Luma, Rgb};
use serde_json::{Value, json};
use wandash::dashscope::{
    ApiKey, Client, ClientError, DEFAULT_SYNC_CALL_TIMEOUT, EditFunction, ErrorAction,
    ExpandScales, ImageRef, JobSpec, ListQuery, Model, ModelLimits, Region, Size, TaskInfo,
    TaskResult, TaskStatus, classify,
};
use wandash::engine::{EngineConfig, LimitSource, LimitsInForce, limits_in_force};
use wandash::simulator::{RunningSim, SimConfig, start};

const KEY: &str = "sk-sim-contract-key";
const MAX_IMAGE_BYTES: u64 = 64 * 1024 * 1024;

/// Short latencies, and limits high enough that round trips never wait on the quota.
fn fast_config() -> SimConfig {
    SimConfig {
        latency: (Duration::from_millis(30), Duration::from_millis(100)),
        limits: Model::ALL
            .into_iter()
            .map(|m| {
                (
                    m,
                    ModelLimits {
                        submit_per_second: 1000.0,
                        in_flight: 100,
                    },
                )
            })
            .collect(),
        ..SimConfig::default()
    }
}

async fn sim(config: SimConfig) -> RunningSim {
    start(config).await.expect("the simulator starts")
}

fn client(sim: &RunningSim) -> Client {
    Client::new(&sim.base_url(), ApiKey::new(KEY.into())).unwrap()
}

async fn admin(sim: &RunningSim, path: &str, body: Option<Value>) -> Value {
    let url = format!("http://{}/__sim/{path}", sim.addr());
    let http = reqwest::Client::new();
    let request = match body {
        Some(body) => http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string()),
        None => http.get(url),
    };
    let response = request.send().await.unwrap();
    assert!(
        response.status().is_success(),
        "/__sim/{path}: {}",
        response.status()
    );
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn stats(sim: &RunningSim) -> Value {
    admin(sim, "stats", None).await
}

/// Polls until the task is final. The deadline only stops a hung test; it asserts nothing.
async fn wait_final(client: &Client, task_id: &str) -> TaskInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = client.fetch(task_id).await.unwrap();
        assert_eq!(info.task_id, task_id);
        if info.status.is_final() {
            return info;
        }
        assert!(
            Instant::now() < deadline,
            "task {task_id} still {:?}",
            info.status
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn succeeded(client: &Client, spec: &JobSpec) -> (TaskInfo, Vec<DynamicImage>) {
    let created = client.create(spec).await.unwrap();
    assert_eq!(created.task_status, TaskStatus::Pending);
    let info = wait_final(client, &created.task_id).await;
    assert_eq!(info.status, TaskStatus::Succeeded, "{info:?}");
    let images = download_all(client, &info).await;
    (info, images)
}

async fn download_all(client: &Client, info: &TaskInfo) -> Vec<DynamicImage> {
    let mut images = Vec::new();
    for result in &info.results {
        if let TaskResult::Image { url, .. } = result {
            let bytes = client.download(url, MAX_IMAGE_BYTES).await.unwrap();
            assert_eq!(image::guess_format(&bytes).unwrap(), ImageFormat::Png);
            images.push(image::load_from_memory(&bytes).unwrap());
        }
    }
    images
}

fn dims(images: &[DynamicImage]) -> Vec<(u32, u32)> {
    images.iter().map(GenericImageView::dimensions).collect()
}

/// A picture with some structure (so edits have something to act on).
fn write_png(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let path = dir.join(name);
    ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([
            (x % 256) as u8,
            (y % 256) as u8,
            ((x / 7 + y / 5) % 256) as u8,
        ])
    })
    .save_with_format(&path, ImageFormat::Png)
    .unwrap();
    path
}

/// White (edit) in the middle, black (keep) around it.
fn write_mask(dir: &Path, name: &str, w: u32, h: u32) -> PathBuf {
    let path = dir.join(name);
    ImageBuffer::from_fn(w, h, |x, y| {
        let inside = x > w / 4 && x < 3 * w / 4 && y > h / 4 && y < 3 * h / 4;
        Luma([if inside { 255u8 } else { 0 }])
    })
    .save_with_format(&path, ImageFormat::Png)
    .unwrap();
    path
}

fn is_service_time(text: &Option<String>) -> bool {
    // "2025-02-21 17:56:31.786"
    text.as_deref().is_some_and(|t| {
        t.len() == 23 && t.as_bytes()[10] == b' ' && t.as_bytes()[19] == b'.' && time_digits(t)
    })
}

fn time_digits(t: &str) -> bool {
    t.char_indices().all(|(i, c)| match i {
        4 | 7 => c == '-',
        10 => c == ' ',
        13 | 16 => c == ':',
        19 => c == '.',
        _ => c.is_ascii_digit(),
    })
}

// ---- round trips ----

#[tokio::test]
async fn every_text_to_image_model_round_trips() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    for model in [
        Model::Wanx21T2iTurbo,
        Model::Wanx21T2iPlus,
        Model::Wanx20T2iTurbo,
    ] {
        let mut spec = JobSpec::new(model, format!("a lighthouse at dusk, by {model}"));
        spec.size = Some(Size::new(512, 768).into());
        spec.n = Some(2);
        spec.seed = Some(7);
        let (info, images) = succeeded(&client, &spec).await;
        assert_eq!(dims(&images), vec![(512, 768); 2], "{model}");
        assert_ne!(
            images[0], images[1],
            "seed+i gives each image its own picture"
        );
        for result in &info.results {
            match result {
                TaskResult::Image {
                    orig_prompt,
                    actual_prompt,
                    ..
                } => {
                    assert_eq!(orig_prompt.as_deref(), Some(spec.prompt.as_str()));
                    assert!(actual_prompt.is_some(), "prompt_extend is on by default");
                }
                other => panic!("{other:?}"),
            }
        }
        let metrics = info.metrics.unwrap();
        assert_eq!(
            (metrics.total, metrics.succeeded, metrics.failed),
            (2, 2, 0)
        );
        assert_eq!(info.image_count, Some(2));
        assert!(is_service_time(&info.submit_time), "{:?}", info.submit_time);
        assert!(
            is_service_time(&info.scheduled_time),
            "{:?}",
            info.scheduled_time
        );
        assert!(is_service_time(&info.end_time), "{:?}", info.end_time);
    }

    // Defaults: 1024*1024; no rewritten prompt when prompt_extend is off.
    let mut spec = JobSpec::new(Model::Wanx20T2iTurbo, "a red bicycle");
    spec.n = Some(1);
    spec.prompt_extend = Some(false);
    let (info, images) = succeeded(&client, &spec).await;
    assert_eq!(dims(&images), vec![(1024, 1024)]);
    assert!(
        matches!(
            &info.results[0],
            TaskResult::Image {
                actual_prompt: None,
                ..
            }
        ),
        "{:?}",
        info.results
    );

    // Different prompts, different pictures.
    let mut other = spec.clone();
    other.prompt = "a blue submarine".into();
    let (_, other_images) = succeeded(&client, &other).await;
    assert_ne!(images[0], other_images[0]);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_catalogues_text2image_models_round_trip() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    for (model, size) in [
        (Model::Wan22T2iFlash, Size::new(768, 512)),
        (Model::Wan22T2iPlus, Size::new(512, 512)),
        (Model::Wan25T2iPreview, Size::new(1280, 1280)),
        (Model::QwenImage, Size::new(928, 1664)),
        (Model::QwenImagePlus, Size::new(1664, 928)),
    ] {
        let mut spec = JobSpec::new(model, format!("a harbour at night, by {model}"));
        spec.size = Some(size.into());
        spec.n = Some(1);
        spec.negative_prompt = Some("fog".into());
        let (_, images) = succeeded(&client, &spec).await;
        assert_eq!(dims(&images), vec![(size.width, size.height)], "{model}");
    }
    // qwen-image takes its negative prompt among the parameters (the QC example).
    let mut spec = JobSpec::new(Model::QwenImage, "a kite");
    spec.negative_prompt = Some("rain".into());
    let body = spec.to_wire().unwrap();
    assert_eq!(body["parameters"]["negative_prompt"], "rain");
    assert!(body["input"].get("negative_prompt").is_none(), "{body}");
    sim.shutdown().await;
}

#[tokio::test]
async fn a_region_sends_its_own_model_ids_and_refuses_what_it_does_not_offer() {
    let sim = sim(fast_config()).await;
    let singapore = client(&sim).in_region(Region::Singapore);
    let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse");
    spec.n = Some(1);
    spec.size = Some(Size::new(512, 512).into());
    let (info, _) = succeeded(&singapore, &spec).await;
    let listed = singapore
        .list(&ListQuery {
            page_no: 1,
            page_size: 10,
            model_name: Some("wan2.1-t2i-turbo".into()),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    let names: Vec<(&str, Option<&str>)> = listed
        .data
        .iter()
        .map(|t| (t.task_id.as_str(), t.model_name.as_deref()))
        .collect();
    assert_eq!(
        names,
        [(info.task_id.as_str(), Some("wan2.1-t2i-turbo"))],
        "what arrived is Singapore's id"
    );

    let creates = stats(&sim).await["creates"].clone();
    let mut painting = JobSpec::new(Model::WanxXPainting, "a cat");
    painting.base_image = Some(ImageRef::Url("https://example.com/b.png".into()));
    painting.mask_image = Some(ImageRef::Url("https://example.com/m.png".into()));
    match singapore.create(&painting).await {
        Err(ClientError::Invalid(err)) => {
            assert_eq!(err.field, "model");
            assert!(err.message.contains("offered in cn-beijing"), "{err}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(stats(&sim).await["creates"], creates, "nothing was sent");
    sim.shutdown().await;
}

#[tokio::test]
async fn every_imageedit_function_round_trips_with_uploaded_files() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (600u32, 520u32);
    let base = write_png(dir.path(), "base.png", w, h);
    let mask = write_mask(dir.path(), "mask.png", w, h);
    let scales = ExpandScales {
        top: 1.5,
        bottom: 1.25,
        left: 1.2,
        right: 2.0,
    };

    let mut tasks = Vec::new();
    for function in EditFunction::ALL {
        let mut spec = JobSpec::new(
            Model::Wanx21ImageEdit,
            format!("{function}: make it look like winter"),
        );
        spec.function = Some(function);
        spec.base_image = Some(ImageRef::File(base.clone()));
        let expected = match function {
            EditFunction::DescriptionEditWithMask => {
                spec.mask_image = Some(ImageRef::File(mask.clone()));
                (w, h)
            }
            EditFunction::Expand => {
                spec.expand = Some(scales);
                expanded(w, h, scales)
            }
            EditFunction::SuperResolution => {
                spec.upscale_factor = Some(2);
                (2 * w, 2 * h)
            }
            _ => (w, h),
        };
        let created = client.create(&spec).await.unwrap();
        tasks.push((function, created.task_id, expected));
    }
    let original = image::open(&base).unwrap();
    for (function, task_id, expected) in tasks {
        let info = wait_final(&client, &task_id).await;
        assert_eq!(info.status, TaskStatus::Succeeded, "{function}: {info:?}");
        let images = download_all(&client, &info).await;
        assert_eq!(dims(&images), vec![expected], "{function}");
        if expected == (w, h) {
            assert_ne!(
                images[0].to_rgb8(),
                original.to_rgb8(),
                "{function} changes the picture"
            );
        }
    }

    let counts = stats(&sim).await;
    assert_eq!(counts["creates"], 10);
    assert_eq!(
        counts["uploads"], 11,
        "one upload per local file per task: {counts}"
    );
    sim.shutdown().await;
}

/// Each scale grows its side of the canvas by (scale - 1) times the image's size that way.
fn expanded(w: u32, h: u32, s: ExpandScales) -> (u32, u32) {
    let grow = |side: u32, scale: f64| (side as f64 * (scale - 1.0)).round() as u32;
    (
        w + grow(w, s.left) + grow(w, s.right),
        h + grow(h, s.top) + grow(h, s.bottom),
    )
}

#[tokio::test]
async fn the_mask_limits_where_description_edit_with_mask_lands() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let base = write_png(dir.path(), "base.png", 600, 600);
    let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "a golden sun");
    spec.function = Some(EditFunction::DescriptionEditWithMask);
    spec.base_image = Some(ImageRef::File(base.clone()));
    spec.mask_image = Some(ImageRef::File(write_mask(dir.path(), "mask.png", 600, 600)));
    let (_, images) = succeeded(&client, &spec).await;
    let (edited, original) = (images[0].to_rgb8(), image::open(&base).unwrap().to_rgb8());
    assert_eq!(
        edited.get_pixel(10, 10),
        original.get_pixel(10, 10),
        "black keeps"
    );
    assert_eq!(
        edited.get_pixel(590, 590),
        original.get_pixel(590, 590),
        "black keeps"
    );
    let changed_inside = (200..400)
        .filter(|&i| edited.get_pixel(i, i) != original.get_pixel(i, i))
        .count();
    assert!(
        changed_inside > 100,
        "white is edited ({changed_inside} of 200 changed)"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn x_painting_round_trips_at_each_of_its_sizes() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let base = write_png(dir.path(), "room.png", 640, 480);
    let mask = write_mask(dir.path(), "room-mask.png", 640, 480);
    for (size, style) in [
        (None, None),
        (Some(Size::new(720, 1280)), Some("<anime>")),
        (Some(Size::new(1280, 720)), Some("<sketch>")),
    ] {
        let mut spec = JobSpec::new(Model::WanxXPainting, "a cat on the sofa");
        spec.base_image = Some(ImageRef::File(base.clone()));
        spec.mask_image = Some(ImageRef::File(mask.clone()));
        spec.size = size.map(Into::into);
        spec.style = style.map(String::from);
        let (info, images) = succeeded(&client, &spec).await;
        let expected = size.unwrap_or(Size::new(1024, 1024));
        assert_eq!(
            dims(&images),
            vec![(expected.width, expected.height)],
            "{size:?}"
        );
        assert_eq!(info.metrics.map(|m| m.total), Some(1), "n defaults to 1");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn wan25_round_trips_with_a_local_file_a_data_uri_and_a_url() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();

    // Image 3 is an http URL: a picture the simulator made itself.
    let mut t2i = JobSpec::new(Model::Wanx21T2iTurbo, "a mountain lake");
    t2i.size = Some(Size::new(512, 768).into());
    t2i.n = Some(1);
    let (info, _) = succeeded(&client, &t2i).await;
    let TaskResult::Image { url, .. } = &info.results[0] else {
        panic!("{info:?}")
    };

    let file = write_png(dir.path(), "person.png", 500, 400);
    let data = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(write_png(dir.path(), "hat.png", 450, 450)).unwrap());
    let mut spec = JobSpec::new(
        Model::Wan25I2iPreview,
        "image 1 wears the hat of image 2 by the lake of image 3",
    );
    spec.images = vec![
        ImageRef::File(file),
        ImageRef::DataUri(format!("data:image/png;base64,{data}")),
        ImageRef::Url(url.clone()),
    ];
    spec.n = Some(2);
    spec.size = Some(Size::new(1280, 720).into());
    let (info, images) = succeeded(&client, &spec).await;
    assert_eq!(dims(&images), vec![(1280, 720); 2]);
    assert_eq!(info.image_count, Some(2));

    // Without a size: about 1280*1280 pixels at the last input's aspect (2:3).
    spec.size = None;
    spec.n = Some(1);
    let (_, images) = succeeded(&client, &spec).await;
    let (w, h) = images[0].dimensions();
    let pixels = w as u64 * h as u64;
    assert!((768 * 768..=1280 * 1280).contains(&pixels), "{w}x{h}");
    assert!(
        (w as f64 / h as f64 - 512.0 / 768.0).abs() < 0.01,
        "{w}x{h}"
    );

    assert_eq!(
        stats(&sim).await["uploads"],
        0,
        "wan2.5 takes data URIs: nothing to upload"
    );
    sim.shutdown().await;
}

// ---- upload, cancel, list ----

#[tokio::test]
async fn one_upload_serves_two_tasks_and_a_prepared_spec_is_not_uploaded_again() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let dir = tempfile::tempdir().unwrap();
    let path = write_png(dir.path(), "shared.png", 512, 512);
    let key = client.upload(Model::Wanx21ImageEdit, &path).await.unwrap();
    assert!(key.starts_with("oss://"), "{key}");

    for function in [EditFunction::Colorization, EditFunction::StylizationAll] {
        let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "in spring colours");
        spec.function = Some(function);
        spec.base_image = Some(ImageRef::Url(key.clone()));
        let (_, images) = succeeded(&client, &spec).await;
        assert_eq!(dims(&images), vec![(512, 512)]);
    }
    assert_eq!(stats(&sim).await["uploads"], 1);

    // What the engine does: prepare once, store, create (and retry) from the stored spec.
    let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "remove the logo");
    spec.function = Some(EditFunction::RemoveWatermark);
    spec.base_image = Some(ImageRef::File(path));
    let prepared = client.prepare(&spec).await.unwrap();
    assert!(prepared.base_image.as_ref().unwrap().is_oss());
    assert_eq!(stats(&sim).await["uploads"], 2);
    for _ in 0..2 {
        succeeded(&client, &prepared).await;
    }
    assert_eq!(
        stats(&sim).await["uploads"],
        2,
        "a prepared spec is not uploaded again"
    );
    assert_eq!(stats(&sim).await["creates"], 4);
    sim.shutdown().await;
}

#[tokio::test]
async fn cancel_works_on_pending_only() {
    // Ten seconds per task: 4 s PENDING, then RUNNING; the clock is moved by hand.
    let sim = sim(SimConfig {
        latency: (Duration::from_secs(10), Duration::from_secs(10)),
        ..fast_config()
    })
    .await;
    let client = client(&sim);
    let spec = JobSpec::new(Model::Wanx21T2iTurbo, "a quiet harbour");

    let pending = client.create(&spec).await.unwrap();
    assert_eq!(
        client.fetch(&pending.task_id).await.unwrap().status,
        TaskStatus::Pending
    );
    client.cancel(&pending.task_id).await.unwrap();
    assert_eq!(
        client.fetch(&pending.task_id).await.unwrap().status,
        TaskStatus::Canceled
    );

    let running = client.create(&spec).await.unwrap();
    admin(&sim, "advance", Some(json!({"seconds": 6}))).await;
    assert_eq!(
        client.fetch(&running.task_id).await.unwrap().status,
        TaskStatus::Running
    );
    let err = client.cancel(&running.task_id).await.unwrap_err();
    match &err {
        ClientError::Api {
            status: 400,
            code,
            message,
            request_id,
        } => {
            assert_eq!(code, "UnsupportedOperation");
            assert!(message.contains("PENDING"), "{message}");
            assert!(request_id.is_some());
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.action(), ErrorAction::FixInput);
    assert_eq!(stats(&sim).await["cancels"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_pages_and_filters() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let mut ids = HashMap::new();
    for (model, count) in [(Model::Wanx21T2iTurbo, 3), (Model::Wanx21T2iPlus, 2)] {
        for i in 0..count {
            let mut spec = JobSpec::new(model, format!("list test {i}"));
            spec.size = Some(Size::new(512, 512).into());
            spec.n = Some(1);
            let created = client.create(&spec).await.unwrap();
            ids.insert(created.task_id, model);
        }
    }
    for id in ids.keys() {
        wait_final(&client, id).await;
    }

    let mut seen = Vec::new();
    for page_no in 1..=3 {
        let page = client
            .list(&ListQuery {
                page_no,
                page_size: 2,
                ..ListQuery::default()
            })
            .await
            .unwrap();
        assert_eq!(
            (page.total, page.total_page, page.page_no, page.page_size),
            (5, 3, page_no, 2)
        );
        assert_eq!(page.data.len(), if page_no == 3 { 1 } else { 2 });
        for task in page.data {
            assert_eq!(task.status, TaskStatus::Succeeded);
            assert_eq!(task.model_name.as_deref(), Some(ids[&task.task_id].id()));
            assert!(
                task.gmt_create
                    .is_some_and(|at| at.as_millis() > 1_600_000_000_000),
                "epoch ms: {:?}",
                task.gmt_create
            );
            seen.push(task.task_id);
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "every task on exactly one page");

    let plus = client
        .list(&ListQuery {
            model_name: Some("wanx2.1-t2i-plus".into()),
            page_size: 10,
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(plus.total, 2);
    assert!(
        plus.data
            .iter()
            .all(|t| ids[&t.task_id] == Model::Wanx21T2iPlus)
    );

    let failed = client
        .list(&ListQuery {
            status: Some(TaskStatus::Failed),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(failed.total, 0);
    let succeeded = client
        .list(&ListQuery {
            status: Some(TaskStatus::Succeeded),
            ..ListQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(succeeded.total, 5);

    let window = |start: &str, end: &str| ListQuery {
        start_time: Some(start.into()),
        end_time: Some(end.into()),
        ..ListQuery::default()
    };
    assert_eq!(
        client
            .list(&window("20000101000000", "20991231235959"))
            .await
            .unwrap()
            .total,
        5
    );
    assert_eq!(
        client
            .list(&window("20000101000000", "20010101000000"))
            .await
            .unwrap()
            .total,
        0
    );
    sim.shutdown().await;
}

// ---- error classes ----

#[tokio::test]
async fn a_wrong_key_is_401_invalid_api_key_and_stops_everything() {
    let sim = sim(SimConfig {
        key: Some("sk-the-right-one".into()),
        ..fast_config()
    })
    .await;
    let wrong = Client::new(&sim.base_url(), ApiKey::new("sk-a-wrong-one".into())).unwrap();
    let spec = JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse");
    let err = wrong.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 401, code, .. } if code == "InvalidApiKey"),
        "{err:?}"
    );
    assert_eq!(err.action(), ErrorAction::StopAll);
    assert!(!format!("{err} {err:?}").contains("sk-a-wrong-one"));
    let err = wrong.fetch("some-task").await.unwrap_err();
    assert_eq!(err.action(), ErrorAction::StopAll);

    let right = Client::new(&sim.base_url(), ApiKey::new("sk-the-right-one".into())).unwrap();
    right.create(&spec).await.unwrap();
    assert_eq!(stats(&sim).await["creates"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_model_is_404_model_not_found_and_stops_the_model() {
    let sim = sim(fast_config()).await;
    // The client refuses unknown models before sending, so this request is built by hand.
    let response = reqwest::Client::new()
        .post(format!("{}/services/aigc/text2image/image-synthesis", sim.base_url()))
        .header("Authorization", format!("Bearer {KEY}"))
        .header("X-DashScope-Async", "enable")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(json!({"model": "wanx9.9-t2i-imaginary", "input": {"prompt": "a cat"}, "parameters": {}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "ModelNotFound");
    assert_eq!(
        classify(404, body["code"].as_str().unwrap()),
        ErrorAction::StopModel
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn going_over_the_quota_is_429_and_retried_later() {
    // The documented limits: a bucket of 2 creates, 2 tasks in flight; tasks that last.
    let sim = sim(SimConfig {
        latency: (Duration::from_secs(30), Duration::from_secs(30)),
        ..SimConfig::default()
    })
    .await;
    let client = client(&sim);
    let spec = JobSpec::new(Model::Wanx21T2iTurbo, "a busy market");
    client.create(&spec).await.unwrap();
    client.create(&spec).await.unwrap();
    let err = client.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 429, code, .. } if code.starts_with("Throttling") && code != "Throttling.AllocationQuota"),
        "{err:?}"
    );
    assert_eq!(err.action(), ErrorAction::RetryLater);

    // Another model has its own quota.
    client
        .create(&JobSpec::new(Model::Wanx21T2iPlus, "a busy market"))
        .await
        .unwrap();

    let counts = stats(&sim).await;
    assert_eq!(counts["creates"], 3);
    assert_eq!(counts["throttled"], 1);
    assert_eq!(counts["by_model"]["wanx2.1-t2i-turbo"]["creates"], 2);
    assert_eq!(counts["by_model"]["wanx2.1-t2i-turbo"]["throttled"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn service_faults_and_dropped_connections_are_retried_later() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let spec = JobSpec::new(Model::Wanx21T2iTurbo, "a storm at sea");

    admin(&sim, "faults", Some(json!({"http_500_rate": 1.0}))).await;
    let err = client.create(&spec).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(err.action(), ErrorAction::RetryLater);
    let err = client.fetch("any-task").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 500, .. }),
        "{err:?}"
    );

    admin(&sim, "faults", Some(json!({"http_503_rate": 1.0}))).await;
    let err = client.list(&ListQuery::default()).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 503, .. }),
        "{err:?}"
    );
    assert_eq!(err.action(), ErrorAction::RetryLater);

    admin(&sim, "faults", Some(json!({"reset_rate": 1.0}))).await;
    let err = client.fetch("any-task").await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert_eq!(err.action(), ErrorAction::RetryLater);
    assert!(!format!("{err} {err:?}").contains(KEY));

    admin(
        &sim,
        "faults",
        Some(json!({"slow_rate": 1.0, "slow_delay": 3000})),
    )
    .await;
    let impatient = Client::with_timeouts(
        &sim.base_url(),
        ApiKey::new(KEY.into()),
        Duration::from_secs(2),
        Duration::from_millis(300),
    )
    .unwrap();
    let err = impatient.fetch("any-task").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport(m) if m.starts_with("timed out")),
        "{err:?}"
    );
    assert_eq!(err.action(), ErrorAction::RetryLater);

    admin(&sim, "faults", Some(json!({}))).await;
    let (_, images) = succeeded(
        &client,
        &JobSpec {
            n: Some(1),
            size: Some(Size::new(512, 512).into()),
            ..spec
        },
    )
    .await;
    assert_eq!(images.len(), 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn partial_and_total_task_failures_read_as_the_protocol_says() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, "a forest");
    spec.size = Some(Size::new(512, 512).into());
    spec.n = Some(4);

    admin(&sim, "faults", Some(json!({"partial_failure_rate": 1.0}))).await;
    let created = client.create(&spec).await.unwrap();
    let info = wait_final(&client, &created.task_id).await;
    assert_eq!(
        info.status,
        TaskStatus::Succeeded,
        "one image is enough to succeed: {info:?}"
    );
    let failed = info
        .results
        .iter()
        .filter(|r| matches!(r, TaskResult::Failed { code, .. } if !code.is_empty()))
        .count() as u32;
    let metrics = info.metrics.unwrap();
    assert!(failed > 0 && failed < 4, "{:?}", info.results);
    assert_eq!(
        (metrics.total, metrics.succeeded, metrics.failed),
        (4, 4 - failed, failed)
    );
    assert_eq!(info.image_count, Some(4 - failed));
    assert_eq!(download_all(&client, &info).await.len() as u32, 4 - failed);

    admin(&sim, "faults", Some(json!({"task_failure_rate": 1.0}))).await;
    let created = client.create(&spec).await.unwrap();
    let info = wait_final(&client, &created.task_id).await;
    assert_eq!(info.status, TaskStatus::Failed);
    assert!(
        info.code.as_deref().is_some_and(|c| !c.is_empty()),
        "{info:?}"
    );
    assert!(info.message.is_some(), "{info:?}");
    assert!(
        !info
            .results
            .iter()
            .any(|r| matches!(r, TaskResult::Image { .. }))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_and_expired_tasks_read_unknown_and_their_images_are_gone() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let never = client.fetch("no-such-task-0000").await.unwrap();
    assert_eq!(never.status, TaskStatus::Unknown);

    let mut spec = JobSpec::new(Model::Wanx20T2iTurbo, "an old photograph");
    spec.size = Some(Size::new(512, 512).into());
    spec.n = Some(1);
    let (info, _) = succeeded(&client, &spec).await;
    let TaskResult::Image { url, .. } = &info.results[0] else {
        panic!("{info:?}")
    };

    admin(&sim, "advance", Some(json!({"seconds": 25 * 3600}))).await;
    assert_eq!(
        client.fetch(&info.task_id).await.unwrap().status,
        TaskStatus::Unknown
    );
    let err = client.download(url, MAX_IMAGE_BYTES).await.unwrap_err();
    assert!(
        matches!(err, ClientError::Api { status: 404, .. }),
        "{err:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_simulator_refuses_what_the_client_would_refuse() {
    // The same rule on both sides: a raw request that breaks one is a 400 naming the field.
    let sim = sim(fast_config()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/services/aigc/text2image/image-synthesis", sim.base_url()))
        .header("Authorization", format!("Bearer {KEY}"))
        .header("X-DashScope-Async", "enable")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "a cat"}, "parameters": {"n": 9}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "InvalidParameter");
    assert!(body["message"].as_str().unwrap().contains("n"), "{body}");
    assert_eq!(stats(&sim).await["creates"], 0);
    sim.shutdown().await;
}

// ---- the messages endpoints (issue #11) ----------------------------------------------

/// wan2.6-t2i on image-generation: create (with the async header), poll, images from
/// `output.choices`, download, the asked size.
#[tokio::test]
async fn image_generation_round_trips_through_the_client() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let mut spec = JobSpec::new(Model::Wan26T2i, "a flower shop at dawn");
    spec.size = Some(Size::new(1440, 1152).into());
    spec.n = Some(1);
    spec.negative_prompt = Some("people".into());
    let (info, images) = succeeded(&client, &spec).await;
    assert_eq!(info.results.len(), 1, "{info:?}");
    assert_eq!(dims(&images), vec![(1440, 1152)]);
    assert_eq!(info.image_count, Some(1));
    assert_eq!(stats(&sim).await["creates"], 1);
    sim.shutdown().await;
}

/// qwen-image-max (multimodal-generation only) and wan2.6-t2i, each in one synchronous
/// call: the answer's images, downloaded, of the asked (or default) size.
#[tokio::test]
async fn synchronous_calls_round_trip_through_the_client() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let mut cases = vec![
        (
            JobSpec::new(Model::QwenImageMax, "a lighthouse"),
            (1664, 928),
        ),
        (
            JobSpec {
                size: Some(Size::new(928, 1664).into()),
                ..JobSpec::new(Model::QwenImageMax, "a tall lighthouse")
            },
            (928, 1664),
        ),
    ];
    let mut wan = JobSpec::new(Model::Wan26T2i, "a harbour");
    wan.n = Some(1);
    cases.push((wan, (1280, 1280)));
    for (spec, size) in cases {
        let answer = client
            .call_sync(&spec, DEFAULT_SYNC_CALL_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(answer.results.len(), 1, "{answer:?}");
        assert_eq!(answer.image_count, Some(1));
        assert_eq!(answer.size, Some(Size::new(size.0, size.1)));
        let info = TaskInfo {
            task_id: "sync".into(),
            status: TaskStatus::Succeeded,
            submit_time: None,
            scheduled_time: None,
            end_time: None,
            results: answer.results,
            texts: answer.texts,
            metrics: None,
            code: None,
            message: None,
            image_count: None,
            request_id: None,
        };
        assert_eq!(dims(&download_all(&client, &info).await), vec![size]);
    }
    let stats = stats(&sim).await;
    assert_eq!(stats["sync_calls"], 3, "{stats}");
    assert_eq!(stats["creates"], 0, "{stats}");
    // A sync-only model has no task to create.
    let err = client
        .create(&JobSpec::new(Model::QwenImageMax, "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Invalid(v) if v.field == "model"),
        "{err}"
    );
    sim.shutdown().await;
}

/// A rule the client and the simulator share, refused by the client before sending.
#[tokio::test]
async fn qwen_image_max_refuses_more_than_one_image_before_sending() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let mut spec = JobSpec::new(Model::QwenImageMax, "x");
    spec.n = Some(2);
    let err = client
        .call_sync(&spec, DEFAULT_SYNC_CALL_TIMEOUT)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Invalid(v) if v.field == "n"),
        "{err}"
    );
    assert_eq!(err.action(), ErrorAction::FixInput);
    assert_eq!(stats(&sim).await["sync_calls"], 0);
    sim.shutdown().await;
}

/// The cheapest size `model` makes (small renders keep the tests fast), where it takes one.
fn smallest_size(model: Model) -> Option<Size> {
    use wandash::dashscope::catalogue::PixelRule;
    let rule = model.entry().size?;
    Some(match rule.pixels {
        PixelRule::Sides { min, .. } => Size::new(min, min),
        PixelRule::Area { min_pixels, .. } => {
            let side = (min_pixels as f64).sqrt().ceil() as u32;
            Size::new(side, side)
        }
        PixelRule::Fixed(sizes) => *sizes.iter().min_by_key(|s| s.pixels())?,
    })
}

/// A job every messages model takes: one image, its least number of inputs (as data
/// URIs, 512*512 with structure), its smallest size.
fn messages_job(model: Model) -> JobSpec {
    use wandash::dashscope::catalogue::ImageSlots;
    let mut spec = JobSpec::new(model, "a lighthouse on a cliff");
    spec.n = Some(1);
    spec.size = smallest_size(model).map(Into::into);
    if let ImageSlots::List { min, .. } = model.entry().images {
        let mut png = Vec::new();
        ImageBuffer::from_fn(512, 512, |x, y| Rgb([(x % 256) as u8, (y % 256) as u8, 90]))
            .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        let uri = format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&png)
        );
        spec.images = vec![ImageRef::DataUri(uri); min];
    }
    spec
}

fn messages_models(endpoint: wandash::dashscope::Endpoint) -> Vec<Model> {
    Model::ALL
        .into_iter()
        .filter(|m| m.entry().endpoints.contains(&endpoint))
        .collect()
}

/// Every model image-generation serves: create, poll, images from `choices`, download,
/// the size asked.
#[tokio::test]
async fn every_image_generation_model_round_trips() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let models = messages_models(wandash::dashscope::Endpoint::ImageGeneration);
    assert!(models.contains(&Model::Wan26T2i), "{models:?}");
    for model in models {
        let spec = messages_job(model);
        let created = client.create_generation(&spec).await.unwrap();
        let info = wait_final(&client, &created.task_id).await;
        assert_eq!(info.status, TaskStatus::Succeeded, "{model}: {info:?}");
        let images = download_all(&client, &info).await;
        let asked = spec.size.unwrap().nominal();
        assert_eq!(dims(&images), vec![(asked.width, asked.height)], "{model}");
    }
    sim.shutdown().await;
}

/// Every model multimodal-generation serves, in one synchronous call each: the answer's
/// image, downloaded, of the size asked (or, for editing models without a size, the size
/// the answer reports).
#[tokio::test]
async fn every_multimodal_generation_model_answers_a_synchronous_call() {
    let sim = sim(fast_config()).await;
    let client = client(&sim);
    let models = messages_models(wandash::dashscope::Endpoint::MultimodalGeneration);
    assert!(models.contains(&Model::QwenImageMax), "{models:?}");
    let calls = models.len();
    for model in models {
        let spec = messages_job(model);
        let answer = client
            .call_sync(&spec, DEFAULT_SYNC_CALL_TIMEOUT)
            .await
            .unwrap();
        assert_eq!(answer.results.len(), 1, "{model}: {answer:?}");
        let reported = answer.size.expect("usage reports the size");
        if let Some(asked) = spec.size {
            assert_eq!(reported, asked.nominal(), "{model}");
        }
        let info = TaskInfo {
            task_id: "sync".into(),
            status: TaskStatus::Succeeded,
            submit_time: None,
            scheduled_time: None,
            end_time: None,
            results: answer.results,
            texts: answer.texts,
            metrics: None,
            code: None,
            message: None,
            image_count: answer.image_count,
            request_id: answer.request_id,
        };
        let images = download_all(&client, &info).await;
        assert_eq!(
            dims(&images),
            vec![(reported.width, reported.height)],
            "{model}"
        );
    }
    assert_eq!(stats(&sim).await["sync_calls"], calls as u64);
    sim.shutdown().await;
}

/// API.md's limits, with the turbo model's lowered to half a create per second (stated
/// per minute) and one task in flight, and the plus model's raised.
fn account_limits() -> HashMap<Model, ModelLimits> {
    HashMap::from([
        (
            Model::Wanx21T2iTurbo,
            ModelLimits {
                submit_per_second: 0.5,
                in_flight: 1,
            },
        ),
        (
            Model::Wanx21T2iPlus,
            ModelLimits {
                submit_per_second: 10.0,
                in_flight: 6,
            },
        ),
    ])
}

#[tokio::test]
async fn the_quotas_endpoint_pages_the_limits_the_simulator_enforces() {
    let sim = sim(SimConfig {
        limits: account_limits(),
        ..SimConfig::default()
    })
    .await;
    // Every page, as the engine reads them (the catalogue has more models than one page).
    let mut stated: HashMap<String, (Option<f64>, Option<u32>)> = HashMap::new();
    for page_no in 1.. {
        let page = client(&sim).quotas_page("/quotas", page_no).await.unwrap();
        assert_eq!(page.total, Model::ALL.len() as u64);
        if page.limits.is_empty() {
            break;
        }
        stated.extend(
            page.limits
                .iter()
                .map(|l| (l.model.clone(), (l.submit_per_second, l.in_flight))),
        );
    }
    assert_eq!(stated.len(), Model::ALL.len());
    assert_eq!(stated["wanx2.1-t2i-turbo"], (Some(0.5), Some(1)));
    assert_eq!(stated["wanx2.1-t2i-plus"], (Some(10.0), Some(6)));
    for model in Model::ALL {
        let limits = account_limits()
            .get(&model)
            .copied()
            .unwrap_or_else(|| model.default_limits());
        assert_eq!(
            stated[model.id()],
            (Some(limits.submit_per_second), Some(limits.in_flight)),
            "{model}"
        );
    }
    // The wire, as the docs show it: paged, filtered by model, behind the key.
    let get = |query: &str, key: Option<&str>| {
        let mut request = reqwest::Client::new().get(format!("{}/quotas?{query}", sim.base_url()));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let second: Value = get("name=&model=&page_no=2&page_size=4", Some(KEY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["output"]["total"], Model::ALL.len());
    assert_eq!(second["output"]["page_no"], 2);
    assert_eq!(second["output"]["quotas"].as_array().unwrap().len(), 4);
    let turbo: Value = get("model=wanx2.1-t2i-turbo", Some(KEY))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        turbo["output"]["quotas"][0]["model_limit"],
        json!({"request_limit": 30, "request_limit_period": 60, "usage_limit": null,
               "usage_limit_field": null, "usage_limit_period": null,
               "async_user_queue_limit": 0, "async_user_concurrency_limit": 1})
    );
    assert_eq!(turbo["output"]["quotas"][0]["workspace_limit"], Value::Null);
    let bad = get("page_size=0", Some(KEY)).await.unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("page_size"),
        "{body}"
    );
    assert_eq!(get("", None).await.unwrap().status(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn limits_in_force_come_from_the_config_the_account_or_the_defaults_saying_why() {
    let sim = sim(SimConfig {
        limits: account_limits(),
        ..SimConfig::default()
    })
    .await;
    let edit = ModelLimits {
        submit_per_second: 1.0,
        in_flight: 1,
    };
    let config = EngineConfig {
        limits: HashMap::from([(Model::Wanx21ImageEdit, edit)]),
        ..EngineConfig::default()
    };
    let in_force: HashMap<Model, LimitsInForce> = limits_in_force(&client(&sim), &config)
        .await
        .into_iter()
        .map(|l| (l.model, l))
        .collect();
    assert_eq!(in_force.len(), Model::ALL.len());
    let turbo = &in_force[&Model::Wanx21T2iTurbo];
    assert_eq!(
        (turbo.limits, &turbo.source),
        (
            account_limits()[&Model::Wanx21T2iTurbo],
            &LimitSource::Account
        )
    );
    let plus = &in_force[&Model::Wanx21T2iPlus];
    assert_eq!(plus.limits.in_flight, 6, "higher than the default too");
    let edit_in_force = &in_force[&Model::Wanx21ImageEdit];
    assert_eq!(
        (edit_in_force.limits, &edit_in_force.source),
        (edit, &LimitSource::Config)
    );

    // The other path the docs name is not served here: the defaults, and why.
    let elsewhere = EngineConfig {
        quotas_path: "/models/limits".into(),
        ..EngineConfig::default()
    };
    for limits in limits_in_force(&client(&sim), &elsewhere).await {
        assert_eq!(limits.limits, limits.model.default_limits());
        let LimitSource::Default { why } = &limits.source else {
            panic!("{limits:?}");
        };
        assert!(
            why.contains("/models/limits") && why.contains("404"),
            "{why}"
        );
    }
    sim.shutdown().await;
}
