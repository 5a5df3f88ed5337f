//! The simulator driven over real loopback HTTP with raw reqwest requests (not the
//! wandash client: these tests pin the protocol the client is checked against).

use std::time::Duration;

use serde_json::{Value, json};
use wandash::dashscope::{Model, ModelLimits};
use wandash::simulator::{Faults, RunningSim, SimConfig, start};

const T2I: &str = "/services/aigc/text2image/image-synthesis";
const I2I: &str = "/services/aigc/image2image/image-synthesis";

/// Short latencies and room enough that tests not about limits never hit them.
fn fast() -> SimConfig {
    let roomy = ModelLimits {
        submit_per_second: 100.0,
        in_flight: 100,
    };
    SimConfig {
        latency: (Duration::from_millis(50), Duration::from_millis(150)),
        limits: Model::ALL.into_iter().map(|m| (m, roomy)).collect(),
        ..SimConfig::default()
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

fn origin(sim: &RunningSim) -> String {
    format!("http://{}", sim.addr())
}

async fn create(sim: &RunningSim, path: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{}{path}", sim.base_url()))
        .bearer_auth("sk-test")
        .header("X-DashScope-Async", "enable")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn created_id(sim: &RunningSim, path: &str, body: Value) -> String {
    let answer = create(sim, path, body).await;
    assert_eq!(answer.status(), 200);
    let json: Value = answer.json().await.unwrap();
    assert_eq!(json["output"]["task_status"], "PENDING");
    assert!(json["request_id"].is_string());
    json["output"]["task_id"].as_str().unwrap().to_string()
}

async fn poll(sim: &RunningSim, id: &str) -> Value {
    let answer = http()
        .get(format!("{}/tasks/{id}", sim.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    answer.json().await.unwrap()
}

async fn wait_final(sim: &RunningSim, id: &str) -> Value {
    for _ in 0..200 {
        let task = poll(sim, id).await;
        let status = task["output"]["task_status"].as_str().unwrap().to_string();
        if !matches!(status.as_str(), "PENDING" | "RUNNING") {
            return task;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {id} did not finish");
}

async fn stats(sim: &RunningSim) -> Value {
    http()
        .get(format!("{}/__sim/stats", origin(sim)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn download(url: &str) -> image::DynamicImage {
    let answer = http().get(url).send().await.unwrap();
    assert_eq!(answer.status(), 200, "{url}");
    assert_eq!(answer.headers()["content-type"], "image/png");
    let bytes = answer.bytes().await.unwrap();
    assert_eq!(
        image::guess_format(&bytes).unwrap(),
        image::ImageFormat::Png
    );
    image::load_from_memory(&bytes).unwrap()
}

fn error_code(json: &Value) -> &str {
    json["code"].as_str().unwrap_or("")
}

#[tokio::test]
async fn text_to_image_runs_to_succeeded_with_pngs_of_the_requested_size() {
    let sim = start(fast()).await.unwrap();
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "a red fox"},
        "parameters": {"size": "768*512", "n": 2, "seed": 42}});
    let id = created_id(&sim, T2I, body).await;
    let task = wait_final(&sim, &id).await;
    let out = &task["output"];
    assert_eq!(out["task_status"], "SUCCEEDED", "{task}");
    for field in ["submit_time", "scheduled_time", "end_time"] {
        let time = out[field].as_str().unwrap();
        assert_eq!(
            time.len(),
            "2025-02-21 17:56:31.786".len(),
            "{field}: {time}"
        );
        assert_eq!(&time[10..11], " ");
    }
    assert_eq!(
        out["task_metrics"],
        json!({"TOTAL": 2, "SUCCEEDED": 2, "FAILED": 0})
    );
    assert_eq!(task["usage"]["image_count"], 2);
    let results = out["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    let mut pictures = Vec::new();
    for item in results {
        assert_eq!(item["orig_prompt"], "a red fox");
        assert!(
            item["actual_prompt"]
                .as_str()
                .unwrap()
                .contains("a red fox")
        );
        let picture = download(item["url"].as_str().unwrap()).await;
        assert_eq!((picture.width(), picture.height()), (768, 512));
        pictures.push(picture.to_rgb8().into_raw());
    }
    assert_ne!(pictures[0], pictures[1], "seed+1 must give another picture");
    sim.shutdown().await;
}

#[tokio::test]
async fn same_prompt_and_seed_give_the_same_picture_and_other_prompts_differ() {
    let sim = start(fast()).await.unwrap();
    let mut pictures = Vec::new();
    for prompt in ["a lighthouse", "a lighthouse", "a cat"] {
        let body = json!({"model": "wanx2.0-t2i-turbo", "input": {"prompt": prompt},
            "parameters": {"size": "512*512", "n": 1, "seed": 7, "prompt_extend": false}});
        let id = created_id(&sim, T2I, body).await;
        let task = wait_final(&sim, &id).await;
        let item = &task["output"]["results"][0];
        assert!(
            item.get("actual_prompt").is_none(),
            "prompt_extend off: no actual_prompt"
        );
        pictures.push(
            download(item["url"].as_str().unwrap())
                .await
                .to_rgb8()
                .into_raw(),
        );
    }
    assert_eq!(pictures[0], pictures[1]);
    assert_ne!(pictures[0], pictures[2]);
    sim.shutdown().await;
}

#[tokio::test]
async fn default_n_is_four_and_default_size_1024() {
    let sim = start(fast()).await.unwrap();
    let id = created_id(
        &sim,
        T2I,
        json!({"model": "wanx2.1-t2i-plus", "input": {"prompt": "hills"}}),
    )
    .await;
    let task = wait_final(&sim, &id).await;
    let results = task["output"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let picture = download(results[3]["url"].as_str().unwrap()).await;
    assert_eq!((picture.width(), picture.height()), (1024, 1024));
    sim.shutdown().await;
}

#[tokio::test]
async fn wrong_or_missing_key_is_401_invalid_api_key() {
    let sim = start(SimConfig {
        key: Some("sk-right".into()),
        ..fast()
    })
    .await
    .unwrap();
    let url = format!("{}/tasks/some-id", sim.base_url());
    for auth in [
        None,
        Some("Bearer sk-wrong"),
        Some("Bearer "),
        Some("sk-right"),
    ] {
        let mut request = http().get(&url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{auth:?}");
        assert!(
            answer.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        let json: Value = answer.json().await.unwrap();
        assert_eq!(error_code(&json), "InvalidApiKey");
        assert_eq!(json["message"], "Invalid API-key provided.");
        assert!(json["request_id"].is_string());
    }
    let answer = http()
        .get(&url)
        .bearer_auth("sk-right")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    sim.shutdown().await;
}

#[tokio::test]
async fn create_without_async_header_is_refused() {
    let sim = start(fast()).await.unwrap();
    let answer = http()
        .post(format!("{}{T2I}", sim.base_url()))
        .bearer_auth("k")
        .json(&json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    let json: Value = answer.json().await.unwrap();
    assert_eq!(error_code(&json), "InvalidParameter");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("X-DashScope-Async")
    );
    assert_eq!(stats(&sim).await["creates"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn validation_failures_are_400_naming_the_field() {
    let sim = start(fast()).await.unwrap();
    let cases = [
        (
            T2I,
            json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 5}}),
            "n",
        ),
        (
            T2I,
            json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"size": "2000*512"}}),
            "size",
        ),
        (
            T2I,
            json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "p".repeat(801)}}),
            "prompt",
        ),
        (
            T2I,
            json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"seed": 2147483648u64}}),
            "seed",
        ),
        (
            I2I,
            json!({"model": "wanx2.1-imageedit", "input": {"prompt": "x", "function": "expand", "base_image_url": "http://127.0.0.1/a.png"}, "parameters": {"top_scale": 3.0}}),
            "expand.top_scale",
        ),
        (
            I2I,
            json!({"model": "wanx2.1-imageedit", "input": {"prompt": "x", "function": "fly", "base_image_url": "http://127.0.0.1/a.png"}}),
            "function",
        ),
        (
            I2I,
            json!({"model": "wanx-x-painting", "input": {"prompt": "x", "base_image_url": "http://127.0.0.1/a.png"}}),
            "mask_image",
        ),
        (
            I2I,
            json!({"model": "wan2.5-i2i-preview", "input": {"prompt": "x", "images": []}}),
            "images",
        ),
    ];
    for (path, body, field) in cases {
        let answer = create(&sim, path, body.clone()).await;
        assert_eq!(answer.status(), 400, "{body}");
        let json: Value = answer.json().await.unwrap();
        assert_eq!(error_code(&json), "InvalidParameter", "{body}");
        let message = json["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{field}: {message}");
    }
    assert_eq!(stats(&sim).await["creates"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_model_is_404_and_wrong_endpoint_is_400() {
    let sim = start(fast()).await.unwrap();
    let answer = create(
        &sim,
        T2I,
        json!({"model": "wanx9-dream", "input": {"prompt": "x"}}),
    )
    .await;
    assert_eq!(answer.status(), 404);
    assert_eq!(error_code(&answer.json().await.unwrap()), "ModelNotFound");
    let answer = create(
        &sim,
        I2I,
        json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}}),
    )
    .await;
    assert_eq!(answer.status(), 400);
    let json: Value = answer.json().await.unwrap();
    assert_eq!(error_code(&json), "InvalidParameter");
    assert!(json["message"].as_str().unwrap().contains("text2image"));
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_task_reads_unknown_with_200() {
    let sim = start(fast()).await.unwrap();
    let task = poll(&sim, "no-such-task").await;
    assert_eq!(
        task["output"],
        json!({"task_id": "no-such-task", "task_status": "UNKNOWN"})
    );
    assert!(task["request_id"].is_string());
    sim.shutdown().await;
}

#[tokio::test]
async fn a_reset_is_seen_as_a_connection_error_and_the_create_still_happened() {
    let faults = Faults {
        reset_rate: 1.0,
        ..Faults::default()
    };
    let sim = start(SimConfig { faults, ..fast() }).await.unwrap();
    let err = http()
        .post(format!("{}{T2I}", sim.base_url()))
        .bearer_auth("k")
        .header("X-DashScope-Async", "enable")
        .json(&json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 1}}))
        .send()
        .await
        .expect_err("a reset must fail the request itself, not its body");
    assert!(!err.is_status() && !err.is_decode(), "{err:?}");
    // The admin endpoints are never hit by faults; the lost answer's task exists.
    assert_eq!(stats(&sim).await["creates"], 1);
    sim.shutdown().await;
}

fn png(width: u32, height: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let picture = image::RgbImage::from_fn(width, height, |x, y| image::Rgb(pixel(x, y)));
    let mut bytes = Vec::new();
    picture
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// The SDK's upload flow: getPolicy, then the multipart form to upload_host. Returns `oss://key`.
async fn upload(sim: &RunningSim, model: &str, name: &str, bytes: Vec<u8>) -> String {
    let answer = http()
        .get(format!(
            "{}/uploads?action=getPolicy&model={model}",
            sim.base_url()
        ))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let policy: Value = answer.json().await.unwrap();
    let data = &policy["data"];
    let text = |field: &str| {
        data[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {policy}"))
            .to_string()
    };
    let key = format!("{}/{name}", text("upload_dir"));
    let form = reqwest::multipart::Form::new()
        .text("OSSAccessKeyId", text("oss_access_key_id"))
        .text("Signature", text("signature"))
        .text("policy", text("policy"))
        .text("key", key.clone())
        .text("x-oss-object-acl", text("x_oss_object_acl"))
        .text("x-oss-forbid-overwrite", text("x_oss_forbid_overwrite"))
        .text("success_action_status", "200")
        .text("x-oss-content-type", "image/png")
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes)
                .file_name(name.to_string())
                .mime_str("image/png")
                .unwrap(),
        );
    let answer = http()
        .post(text("upload_host"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{}", answer.text().await.unwrap());
    format!("oss://{key}")
}

async fn create_with_oss(sim: &RunningSim, body: Value) -> reqwest::Response {
    http()
        .post(format!("{}{I2I}", sim.base_url()))
        .bearer_auth("k")
        .header("X-DashScope-Async", "enable")
        .header("X-DashScope-OssResourceResolve", "enable")
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Runs one editing task on uploaded inputs and returns its first picture.
async fn edit(sim: &RunningSim, body: Value) -> image::RgbImage {
    let answer = create_with_oss(sim, body.clone()).await;
    assert_eq!(answer.status(), 200, "{body}");
    let id = answer.json::<Value>().await.unwrap()["output"]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = wait_final(sim, &id).await;
    assert_eq!(task["output"]["task_status"], "SUCCEEDED", "{task}");
    download(task["output"]["results"][0]["url"].as_str().unwrap())
        .await
        .to_rgb8()
}

async fn set_faults(sim: &RunningSim, faults: Value) {
    let answer = http()
        .post(format!("{}/__sim/faults", origin(sim)))
        .json(&faults)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

async fn advance(sim: &RunningSim, seconds: f64) {
    let answer = http()
        .post(format!("{}/__sim/advance", origin(sim)))
        .json(&json!({ "seconds": seconds }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
}

async fn cancel(sim: &RunningSim, id: &str) -> reqwest::Response {
    // As the SDK sends it: a POST with no body and no Content-Type.
    http()
        .post(format!("{}/tasks/{id}/cancel", sim.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn cancel_works_on_pending_only() {
    // A task is pending for 40% of its time: 1.2 s here, so that the cancel right after
    // the create reaches it pending on a loaded machine too (0.4 s was not always enough).
    let sim = start(SimConfig {
        latency: (Duration::from_secs(3), Duration::from_secs(3)),
        ..fast()
    })
    .await
    .unwrap();
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 1, "size": "512*512"}});
    let id = created_id(&sim, T2I, body.clone()).await;
    let answer = cancel(&sim, &id).await;
    assert_eq!(answer.status(), 200);
    assert!(answer.json::<Value>().await.unwrap()["request_id"].is_string());
    let task = poll(&sim, &id).await;
    assert_eq!(task["output"]["task_status"], "CANCELED");
    assert!(task["output"]["end_time"].is_string());

    let id = created_id(&sim, T2I, body).await;
    loop {
        if poll(&sim, &id).await["output"]["task_status"] == "RUNNING" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = cancel(&sim, &id).await;
    assert_eq!(answer.status(), 400);
    let json: Value = answer.json().await.unwrap();
    assert_eq!(error_code(&json), "UnsupportedOperation");
    assert_eq!(
        json["message"],
        "Failed to cancel the task, please confirm if the task is in PENDING status."
    );
    assert_eq!(
        wait_final(&sim, &id).await["output"]["task_status"],
        "SUCCEEDED"
    );
    assert_eq!(stats(&sim).await["cancels"], 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_burst_over_the_submit_rate_is_429_rate_quota() {
    let sim = start(SimConfig {
        latency: (Duration::from_millis(50), Duration::from_millis(50)),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 1, "size": "512*512"}});
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let answer = create(&sim, T2I, body.clone()).await;
        statuses.push(answer.status().as_u16());
        if answer.status() == 429 {
            assert_eq!(
                error_code(&answer.json().await.unwrap()),
                "Throttling.RateQuota"
            );
        }
    }
    assert_eq!(statuses, [200, 200, 429], "a bucket of two, back to back");
    let counts = stats(&sim).await;
    assert_eq!(counts["creates"], 2);
    assert_eq!(counts["throttled"], 1);
    assert_eq!(counts["by_model"]["wanx2.1-t2i-turbo"]["creates"], 2);
    assert_eq!(counts["by_model"]["wanx2.1-t2i-turbo"]["throttled"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn creates_beyond_the_in_flight_limit_are_429_until_a_task_ends() {
    let limits = [(
        Model::Wanx21T2iTurbo,
        ModelLimits {
            submit_per_second: 100.0,
            in_flight: 2,
        },
    )]
    .into();
    let config = SimConfig {
        latency: (Duration::from_secs(5), Duration::from_secs(5)),
        limits,
        ..SimConfig::default()
    };
    let sim = start(config).await.unwrap();
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 1, "size": "512*512"}});
    created_id(&sim, T2I, body.clone()).await;
    let second = created_id(&sim, T2I, body.clone()).await;
    let answer = create(&sim, T2I, body.clone()).await;
    assert_eq!(answer.status(), 429);
    assert_eq!(error_code(&answer.json().await.unwrap()), "Throttling");
    // Once the clock passes their run time the slots are free again.
    advance(&sim, 6.0).await;
    assert_eq!(
        wait_final(&sim, &second).await["output"]["task_status"],
        "SUCCEEDED"
    );
    created_id(&sim, T2I, body).await;
    assert_eq!(stats(&sim).await["creates"], 3);
    sim.shutdown().await;
}

#[tokio::test]
async fn list_pages_and_filters() {
    let sim = start(fast()).await.unwrap();
    let t2i = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 1, "size": "512*512"}});
    let other = json!({"model": "wanx2.0-t2i-turbo", "input": {"prompt": "y"}, "parameters": {"n": 1, "size": "512*512"}});
    let mut ids = Vec::new();
    for body in [&t2i, &t2i, &other] {
        ids.push(created_id(&sim, T2I, body.clone()).await);
    }
    for id in &ids {
        wait_final(&sim, id).await;
    }
    let list = |query: Vec<(&'static str, String)>| {
        let pairs: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let url = format!("{}/tasks?{}", sim.base_url(), pairs.join("&"));
        async move {
            let answer = http().get(url).bearer_auth("k").send().await.unwrap();
            assert_eq!(answer.status(), 200);
            answer.json::<Value>().await.unwrap()
        }
    };
    let page = list(vec![("page_no", "1".into()), ("page_size", "2".into())]).await;
    assert_eq!(
        (page["total"].as_u64(), page["total_page"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(
        (page["page_no"].as_u64(), page["page_size"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let item = &page["data"][0];
    assert_eq!(item["status"], "SUCCEEDED");
    for field in ["gmt_create", "start_time", "end_time"] {
        assert!(
            item[field].as_i64().unwrap() > 1_600_000_000_000,
            "{field} in epoch ms: {item}"
        );
    }
    let second = list(vec![("page_no", "2".into()), ("page_size", "2".into())]).await;
    let mut seen: Vec<String> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|t| t["task_id"].as_str().unwrap().to_string())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids);
    let by_model = list(vec![("model_name", "wanx2.0-t2i-turbo".into())]).await;
    assert_eq!(by_model["total"], 1);
    assert_eq!(by_model["data"][0]["model_name"], "wanx2.0-t2i-turbo");
    assert_eq!(list(vec![("status", "FAILED".into())]).await["total"], 0);
    assert_eq!(
        list(vec![("start_time", "20990101000000".into())]).await["total"],
        0
    );
    assert_eq!(
        list(vec![
            ("start_time", "20200101000000".into()),
            ("end_time", "20990101000000".into())
        ])
        .await["total"],
        3
    );
    let bad = http()
        .get(format!("{}/tasks?start_time=yesterday", sim.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn uploaded_objects_resolve_as_oss_urls_and_serve_many_tasks() {
    let sim = start(fast()).await.unwrap();
    let base = upload(
        &sim,
        "wanx2.1-imageedit",
        "base.png",
        png(512, 512, |x, _| [x as u8, 90, 160]),
    )
    .await;
    let body = json!({"model": "wanx2.1-imageedit",
        "input": {"function": "stylization_all", "prompt": "picture book", "base_image_url": base}});
    let without_header = create(&sim, I2I, body.clone()).await;
    assert_eq!(without_header.status(), 400);
    let json: Value = without_header.json().await.unwrap();
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("X-DashScope-OssResourceResolve"),
        "{json}"
    );
    for _ in 0..2 {
        let picture = edit(&sim, body.clone()).await;
        assert_eq!(picture.dimensions(), (512, 512));
    }
    let missing = create_with_oss(&sim, json!({"model": "wanx2.1-imageedit",
        "input": {"function": "stylization_all", "prompt": "x", "base_image_url": "oss://dashscope-instant/nothing.png"}})).await;
    assert_eq!(missing.status(), 400);
    let counts = stats(&sim).await;
    assert_eq!(counts["uploads"], 1);
    assert_eq!(counts["by_model"]["wanx2.1-imageedit"]["uploads"], 1);
    sim.shutdown().await;
}

#[tokio::test]
async fn image_edit_functions_respect_their_parameters() {
    let sim = start(fast()).await.unwrap();
    let grey = upload(
        &sim,
        "wanx2.1-imageedit",
        "grey.png",
        png(512, 512, |x, y| {
            let v = ((x + y) / 4) as u8;
            [v, v, v]
        }),
    )
    .await;
    let mask = upload(
        &sim,
        "wanx2.1-imageedit",
        "mask.png",
        png(512, 512, |x, _| if x < 256 { [255; 3] } else { [0; 3] }),
    )
    .await;
    let small_mask = upload(
        &sim,
        "wanx2.1-imageedit",
        "small.png",
        png(600, 512, |_, _| [255; 3]),
    )
    .await;
    let job = |function: &str, parameters: Value| {
        json!({"model": "wanx2.1-imageedit",
        "input": {"function": function, "prompt": "edit", "base_image_url": grey}, "parameters": parameters})
    };

    let expanded = edit(
        &sim,
        job("expand", json!({"left_scale": 1.5, "top_scale": 2.0})),
    )
    .await;
    assert_eq!(expanded.dimensions(), (768, 1024));
    let upscaled = edit(&sim, job("super_resolution", json!({"upscale_factor": 3}))).await;
    assert_eq!(upscaled.dimensions(), (1536, 1536));
    let coloured = edit(&sim, job("colorization", json!({}))).await;
    assert!(
        coloured.pixels().any(|p| p[0] != p[1] || p[1] != p[2]),
        "colorization adds colour"
    );

    let mut masked = job("description_edit_with_mask", json!({}));
    masked["input"]["mask_image_url"] = json!(mask);
    let edited = edit(&sim, masked.clone()).await;
    let original = image::load_from_memory(&png(512, 512, |x, y| {
        let v = ((x + y) / 4) as u8;
        [v, v, v]
    }))
    .unwrap()
    .to_rgb8();
    assert!(
        (256..512).all(|x| (0..512)
            .step_by(7)
            .all(|y| edited.get_pixel(x, y) == original.get_pixel(x, y))),
        "black mask area is kept"
    );
    assert!(
        (0..256).any(|x| (0..512).any(|y| edited.get_pixel(x, y) != original.get_pixel(x, y))),
        "white area is edited"
    );

    masked["input"]["mask_image_url"] = json!(small_mask);
    let answer = create_with_oss(&sim, masked).await;
    let id = answer.json::<Value>().await.unwrap()["output"]["task_id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = wait_final(&sim, &id).await;
    assert_eq!(task["output"]["task_status"], "FAILED");
    assert_eq!(task["output"]["code"], "InvalidParameter");
    assert!(
        task["output"]["message"]
            .as_str()
            .unwrap()
            .starts_with("mask_image"),
        "{task}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn inpainting_and_multi_image_edit_make_their_sizes() {
    let sim = start(fast()).await.unwrap();
    let base = upload(
        &sim,
        "wanx-x-painting",
        "b.png",
        png(600, 400, |_, _| [10, 200, 30]),
    )
    .await;
    let mask = upload(
        &sim,
        "wanx-x-painting",
        "m.png",
        png(600, 400, |x, _| if x > 300 { [255; 3] } else { [0; 3] }),
    )
    .await;
    let painted = edit(
        &sim,
        json!({"model": "wanx-x-painting", "input": {"prompt": "a boat", "base_image_url": base,
        "mask_image_url": mask}, "parameters": {"size": "720*1280", "style": "<anime>"}}),
    )
    .await;
    assert_eq!(painted.dimensions(), (720, 1280));
    assert_eq!(
        painted.get_pixel(10, 10).0,
        [10, 200, 30],
        "unmasked area keeps the base"
    );

    let encode = |bytes: Vec<u8>| {
        format!(
            "data:image/png;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    };
    use base64::Engine as _;
    let images = [
        encode(png(400, 400, |_, _| [200, 0, 0])),
        encode(png(1000, 500, |_, _| [0, 0, 200])),
    ];
    let id = created_id(
        &sim,
        I2I,
        json!({"model": "wan2.5-i2i-preview", "input": {"prompt": "merge image 1 and 2",
        "images": images}, "parameters": {"n": 1}}),
    )
    .await;
    let task = wait_final(&sim, &id).await;
    assert_eq!(task["output"]["task_status"], "SUCCEEDED", "{task}");
    let merged = download(task["output"]["results"][0]["url"].as_str().unwrap()).await;
    let (w, h) = (merged.width(), merged.height());
    assert!(
        (w as f64 / h as f64 - 2.0).abs() < 0.01,
        "keeps the last input's aspect: {w}x{h}"
    );
    assert!(
        w as u64 * h as u64 <= 1280 * 1280 && w as u64 * h as u64 > 1200 * 1200,
        "{w}x{h}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn tasks_expire_after_the_ttl() {
    let sim = start(fast()).await.unwrap();
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 1, "size": "512*512"}});
    let id = created_id(&sim, T2I, body).await;
    let task = wait_final(&sim, &id).await;
    let url = task["output"]["results"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    download(&url).await;
    advance(&sim, 24.0 * 3600.0 + 1.0).await;
    assert_eq!(poll(&sim, &id).await["output"]["task_status"], "UNKNOWN");
    assert_eq!(http().get(&url).send().await.unwrap().status(), 404);
    let list: Value = http()
        .get(format!("{}/tasks", sim.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0);
    sim.shutdown().await;
}

#[tokio::test]
async fn state_file_keeps_tasks_images_and_uploads_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = Some(dir.path().join("sim.sqlite"));
    let sim = start(SimConfig {
        state: state.clone(),
        ..fast()
    })
    .await
    .unwrap();
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "kept"}, "parameters": {"n": 2, "size": "512*512"}});
    let id = created_id(&sim, T2I, body).await;
    let before = wait_final(&sim, &id).await;
    let picture = download(before["output"]["results"][1]["url"].as_str().unwrap())
        .await
        .to_rgb8();
    let base = upload(
        &sim,
        "wanx2.1-imageedit",
        "base.png",
        png(512, 512, |_, _| [1, 2, 3]),
    )
    .await;
    sim.shutdown().await;

    let sim = start(SimConfig { state, ..fast() }).await.unwrap();
    let after = poll(&sim, &id).await;
    assert_eq!(after["output"]["task_status"], "SUCCEEDED");
    assert_eq!(
        after["output"]["submit_time"],
        before["output"]["submit_time"]
    );
    assert_eq!(after["output"]["end_time"], before["output"]["end_time"]);
    let url = after["output"]["results"][1]["url"].as_str().unwrap();
    assert!(
        url.starts_with(&origin(&sim)),
        "URLs point at the running simulator: {url}"
    );
    assert_eq!(download(url).await.to_rgb8(), picture);
    edit(
        &sim,
        json!({"model": "wanx2.1-imageedit",
        "input": {"function": "colorization", "prompt": "x", "base_image_url": base}}),
    )
    .await;
    sim.shutdown().await;
}

#[tokio::test]
async fn faults_can_be_switched_at_runtime() {
    let sim = start(fast()).await.unwrap();
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "x"}, "parameters": {"n": 4, "size": "512*512"}});
    set_faults(&sim, json!({"http_500_rate": 1.0})).await;
    let answer = create(&sim, T2I, body.clone()).await;
    assert_eq!(answer.status(), 500);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_eq!(error_code(&answer.json().await.unwrap()), "InternalError");
    set_faults(&sim, json!({"http_503_rate": 1.0})).await;
    let answer = create(&sim, T2I, body.clone()).await;
    assert_eq!(answer.status(), 503);
    assert_eq!(
        error_code(&answer.json().await.unwrap()),
        "ModelUnavailable"
    );
    assert_eq!(
        stats(&sim).await["creates"],
        0,
        "a faulted create creates nothing"
    );

    set_faults(&sim, json!({"partial_failure_rate": 1.0})).await;
    let task = wait_final(&sim, &created_id(&sim, T2I, body.clone()).await).await;
    let out = &task["output"];
    assert_eq!(out["task_status"], "SUCCEEDED");
    let failed = out["task_metrics"]["FAILED"].as_u64().unwrap();
    assert!((1..4).contains(&failed), "{task}");
    assert_eq!(task["usage"]["image_count"].as_u64().unwrap(), 4 - failed);
    let results = out["results"].as_array().unwrap();
    assert_eq!(
        results
            .iter()
            .filter(|r| r["code"] == "InternalError.Algo" && r["message"].is_string())
            .count() as u64,
        failed
    );
    assert_eq!(
        results.iter().filter(|r| r["url"].is_string()).count() as u64,
        4 - failed
    );

    // Slow answers: a client with a short timeout sees a timeout.
    set_faults(&sim, json!({"slow_rate": 1.0, "slow_delay": 2000})).await;
    let short = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let err = short
        .get(format!("{}/tasks/x", sim.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");

    // Resets also hit result downloads.
    let url = results[out["results"]
        .as_array()
        .unwrap()
        .iter()
        .position(|r| r["url"].is_string())
        .unwrap()]["url"]
        .as_str()
        .unwrap()
        .to_string();
    set_faults(&sim, json!({"reset_rate": 1.0})).await;
    let err = http()
        .get(&url)
        .send()
        .await
        .expect_err("the download is reset");
    assert!(!err.is_status(), "{err:?}");

    set_faults(&sim, json!({"task_failure_rate": 1.0})).await;
    let task = wait_final(&sim, &created_id(&sim, T2I, body).await).await;
    assert_eq!(task["output"]["task_status"], "FAILED");
    assert_eq!(task["output"]["code"], "InternalError.Algo");
    assert!(task["output"].get("results").is_none());
    sim.shutdown().await;
}

#[tokio::test]
async fn every_image_edit_function_succeeds_on_an_http_input() {
    let sim = start(fast()).await.unwrap();
    // The base image is a result of an earlier task, fetched over loopback HTTP.
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "base"}, "parameters": {"n": 2, "size": "512*512"}});
    let task = wait_final(&sim, &created_id(&sim, T2I, body).await).await;
    let base = task["output"]["results"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let mask = task["output"]["results"][1]["url"]
        .as_str()
        .unwrap()
        .to_string();
    for function in wandash::dashscope::EditFunction::ALL {
        let mut input =
            json!({"function": function.as_str(), "prompt": "edit it", "base_image_url": base});
        if function.needs_mask() {
            input["mask_image_url"] = json!(mask);
        }
        let id = created_id(
            &sim,
            I2I,
            json!({"model": "wanx2.1-imageedit", "input": input}),
        )
        .await;
        let task = wait_final(&sim, &id).await;
        assert_eq!(
            task["output"]["task_status"], "SUCCEEDED",
            "{function}: {task}"
        );
        assert_eq!(
            task["output"]["results"].as_array().unwrap().len(),
            1,
            "imageedit's n defaults to 1"
        );
        let picture = download(task["output"]["results"][0]["url"].as_str().unwrap()).await;
        assert_eq!(
            (picture.width(), picture.height()),
            (512, 512),
            "{function}"
        );
        assert!(task["output"]["results"][0].get("orig_prompt").is_none());
    }
    // Inputs that cannot be fetched fail the task, naming the field.
    let id = created_id(
        &sim,
        I2I,
        json!({"model": "wanx2.1-imageedit", "input": {"function": "colorization",
        "prompt": "x", "base_image_url": format!("{}/results/nothing/0.png", origin(&sim))}}),
    )
    .await;
    let task = wait_final(&sim, &id).await;
    assert_eq!(task["output"]["task_status"], "FAILED");
    assert_eq!(task["output"]["code"], "InvalidParameter");
    assert!(
        task["output"]["message"]
            .as_str()
            .unwrap()
            .contains("base_image"),
        "{task}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn wandash_sim_prints_its_base_url_and_serves() {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_wandash"))
        .args(["sim", "--listen", "127.0.0.1:0", "--latency", "50ms..100ms"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = line
        .strip_prefix("wandash simulator listening on ")
        .unwrap_or_else(|| panic!("{line}"));
    assert!(
        base.starts_with("http://127.0.0.1:") && base.ends_with("/api/v1"),
        "{base}"
    );
    let answer = http()
        .get(format!("{base}/tasks/x"))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.json::<Value>().await.unwrap()["output"]["task_status"],
        "UNKNOWN"
    );
    child.kill().await.unwrap();
}

#[tokio::test]
async fn wrong_methods_and_paths_answer_json_errors() {
    let sim = start(fast()).await.unwrap();
    let answer = http()
        .get(format!("{}{T2I}", sim.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 405);
    assert!(answer.json::<Value>().await.unwrap()["request_id"].is_string());
    let answer = http()
        .get(format!("{}/nothing/here", sim.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    assert!(answer.json::<Value>().await.unwrap()["code"].is_string());
    let answer = create(&sim, T2I, json!("not an object")).await;
    assert_eq!(answer.status(), 400);
    assert_eq!(
        error_code(&answer.json().await.unwrap()),
        "InvalidParameter"
    );
    sim.shutdown().await;
}

// ---- the messages endpoints (issue #11) ----------------------------------------------

const GENERATION: &str = "/services/aigc/image-generation/generation";
const MULTIMODAL: &str = "/services/aigc/multimodal-generation/generation";

fn messages(model: &str, text: &str, parameters: Value) -> Value {
    json!({"model": model, "input": {"messages": [{"role": "user", "content": [{"text": text}]}]},
           "parameters": parameters})
}

/// A synchronous call: no async header.
async fn call(sim: &RunningSim, body: Value) -> reqwest::Response {
    http()
        .post(format!("{}{MULTIMODAL}", sim.base_url()))
        .bearer_auth("sk-test")
        .header("Content-Type", "application/json; charset=utf-8")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

/// The image URLs of `output.choices`, every part with an `image` key.
fn choice_images(output: &Value) -> Vec<String> {
    output["choices"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["message"]["content"].as_array().unwrap().iter())
        .filter_map(|part| part["image"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn image_generation_tasks_answer_choices_and_ignore_unknown_parameters() {
    let sim = start(fast()).await.unwrap();
    // The official SDK leaks `is_async` into parameters; the service ignores it.
    let body = messages(
        "wan2.6-t2i",
        "a flower shop",
        json!({"size": "1280*1280", "n": 2, "negative_prompt": "blur", "is_async": true}),
    );
    let id = created_id(&sim, GENERATION, body).await;
    let task = wait_final(&sim, &id).await;
    assert_eq!(task["output"]["task_status"], "SUCCEEDED", "{task}");
    assert!(task["output"].get("results").is_none(), "{task}");
    let urls = choice_images(&task["output"]);
    assert_eq!(urls.len(), 2, "{task}");
    assert_eq!(task["usage"]["image_count"], 2);
    assert_eq!(task["usage"]["size"], "1280*1280");
    for url in urls {
        let image = download(&url).await;
        assert_eq!((image.width(), image.height()), (1280, 1280));
    }
    // Without the async header the endpoint refuses, as text2image does.
    let answer = http()
        .post(format!("{}{GENERATION}", sim.base_url()))
        .bearer_auth("sk-test")
        .header("Content-Type", "application/json")
        .body(messages("wan2.6-t2i", "x", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_synchronous_call_answers_its_images_and_leaves_no_task() {
    let sim = start(fast()).await.unwrap();
    let answer = call(&sim, messages("qwen-image-max", "a lighthouse", json!({}))).await;
    assert_eq!(answer.status(), 200);
    let json: Value = answer.json().await.unwrap();
    // qwen-image's shape: usage with width and height.
    assert_eq!(json["usage"]["width"], 1664, "{json}");
    assert_eq!(json["usage"]["height"], 928);
    assert_eq!(json["usage"]["image_count"], 1);
    let urls = choice_images(&json["output"]);
    assert_eq!(urls.len(), 1);
    let image = download(&urls[0]).await;
    assert_eq!((image.width(), image.height()), (1664, 928));

    // wan2.6's shape on the same endpoint: `finished` and a size string.
    let answer = call(
        &sim,
        messages(
            "wan2.6-t2i",
            "a harbour",
            json!({"n": 1, "size": "1280*1280"}),
        ),
    )
    .await;
    assert_eq!(answer.status(), 200);
    let json: Value = answer.json().await.unwrap();
    assert_eq!(json["output"]["finished"], true, "{json}");
    assert_eq!(json["usage"]["size"], "1280*1280");
    assert_eq!(choice_images(&json["output"]).len(), 1);

    let stats = stats(&sim).await;
    assert_eq!(stats["sync_calls"], 2, "{stats}");
    assert_eq!(stats["creates"], 0, "{stats}");
    let list: Value = http()
        .get(format!("{}/tasks", sim.base_url()))
        .bearer_auth("sk-test")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 0, "calls are not tasks: {list}");
    sim.shutdown().await;
}

#[tokio::test]
async fn the_messages_endpoints_refuse_like_the_service() {
    let sim = start(fast()).await.unwrap();
    // The async header on the synchronous endpoint.
    let answer = http()
        .post(format!("{}{MULTIMODAL}", sim.base_url()))
        .bearer_auth("sk-test")
        .header("X-DashScope-Async", "enable")
        .header("Content-Type", "application/json")
        .body(messages("qwen-image-max", "x", json!({})).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let json: Value = answer.json().await.unwrap();
    assert_eq!(error_code(&json), "AccessDenied");
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("does not support asynchronous calls")
    );

    // A model sent to an endpoint that does not serve it: `url error`.
    for (path, body) in [
        (GENERATION, messages("qwen-image-max", "x", json!({}))),
        (
            T2I,
            json!({"model": "wan2.6-t2i", "input": {"prompt": "x"}}),
        ),
        (GENERATION, messages("wanx2.1-t2i-turbo", "x", json!({}))),
    ] {
        let answer = create(&sim, path, body.clone()).await;
        assert_eq!(answer.status(), 400, "{body}");
        let json: Value = answer.json().await.unwrap();
        assert_eq!(error_code(&json), "InvalidParameter");
        assert!(
            json["message"].as_str().unwrap().contains("url error"),
            "{json}"
        );
    }

    // The model's own rules, 400 InvalidParameter naming the field.
    for (body, field) in [
        (messages("qwen-image-max", "x", json!({"n": 2})), "n"),
        (
            messages("qwen-image-max", "x", json!({"size": "1024*1024"})),
            "size",
        ),
        (
            messages("qwen-image-max", &"長".repeat(801), json!({})),
            "prompt",
        ),
    ] {
        let answer = call(&sim, body).await;
        assert_eq!(answer.status(), 400);
        let json: Value = answer.json().await.unwrap();
        assert_eq!(error_code(&json), "InvalidParameter");
        assert!(
            json["message"].as_str().unwrap().starts_with(field),
            "{field}: {json}"
        );
    }
    let answer = create(
        &sim,
        GENERATION,
        messages("wan2.6-t2i", "x", json!({"size": "1024*1024"})),
    )
    .await;
    assert_eq!(answer.status(), 400);
    // A malformed message names the part.
    let answer = call(
        &sim,
        json!({"model": "qwen-image-max", "input": {"messages": [{"role": "user", "content": "x"}]}}),
    )
    .await;
    assert_eq!(answer.status(), 400);
    let json: Value = answer.json().await.unwrap();
    assert!(
        json["message"].as_str().unwrap().contains("input.messages"),
        "{json}"
    );
    assert_eq!(stats(&sim).await["sync_calls"], 0);
    sim.shutdown().await;
}

fn data_uri(bytes: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

/// Editing models transform their inputs, visibly: the answer follows each input (two
/// different inputs give two different images), up to wan2.7's nine.
#[tokio::test]
async fn editing_models_transform_their_one_to_nine_inputs() {
    let sim = start(fast()).await.unwrap();
    let edit = |model: &str, images: Vec<String>| {
        let mut content: Vec<Value> = images.into_iter().map(|i| json!({"image": i})).collect();
        content.push(json!({"text": "make it evening"}));
        json!({"model": model, "input": {"messages": [{"role": "user", "content": content}]},
               "parameters": {"n": 1, "size": "1024*1024"}})
    };
    let red = data_uri(&png(512, 512, |x, _| [200, (x % 256) as u8, 40]));
    let blue = data_uri(&png(512, 512, |_, y| [30, (y % 256) as u8, 220]));
    let mut made = Vec::new();
    for input in [&red, &blue] {
        let answer = call(&sim, edit("qwen-image-edit-plus", vec![input.clone()])).await;
        assert_eq!(answer.status(), 200);
        let json: Value = answer.json().await.unwrap();
        let url = choice_images(&json["output"]).remove(0);
        made.push(download(&url).await.to_rgb8());
    }
    assert_ne!(made[0], made[1], "the output follows the input");
    // The red input shows through the edit: red dominates its output.
    let mean = |img: &image::RgbImage, c: usize| {
        img.pixels().map(|p| p.0[c] as u64).sum::<u64>() / img.pixels().len() as u64
    };
    assert!(
        mean(&made[0], 0) > mean(&made[0], 2),
        "red input, red output"
    );
    assert!(
        mean(&made[1], 2) > mean(&made[1], 0),
        "blue input, blue output"
    );

    let nine = vec![red.clone(); 9];
    let id = created_id(&sim, GENERATION, edit("wan2.7-image", nine)).await;
    let task = wait_final(&sim, &id).await;
    assert_eq!(task["output"]["task_status"], "SUCCEEDED", "{task}");
    let ten = vec![red; 10];
    let answer = create(&sim, GENERATION, edit("wan2.7-image", ten)).await;
    assert_eq!(answer.status(), 400, "at most nine inputs");
    sim.shutdown().await;
}

/// wan2.7's `color_palette` and `bbox_list` in `parameters`, on both messages endpoints:
/// good ones accepted; a bad entry, a malformed list or boxes without images answered
/// 400 InvalidParameter naming the field, as the service would.
#[tokio::test]
async fn wan27_color_palette_and_bbox_list_are_checked_like_the_service() {
    let sim = start(fast()).await.unwrap();
    let body = |images: usize, extra: Value| {
        let mut content: Vec<Value> = (0..images)
            .map(|_| json!({"image": data_uri(&png(256, 256, |x, _| [200, (x % 256) as u8, 40]))}))
            .collect();
        content.push(json!({"text": "a harbour at dawn"}));
        let mut parameters = json!({"n": 1, "size": "1024*1024"});
        parameters
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"model": "wan2.7-image", "input": {"messages": [{"role": "user", "content": content}]},
               "parameters": parameters})
    };
    let palette = json!([{"hex": "#112233", "ratio": 0.5}, {"hex": "#445566", "ratio": 0.3}, {"hex": "#778899", "ratio": 0.2}]);
    let id = created_id(
        &sim,
        GENERATION,
        body(
            1,
            json!({"color_palette": palette, "bbox_list": [[[0, 0, 128, 128]]]}),
        ),
    )
    .await;
    assert_eq!(
        wait_final(&sim, &id).await["output"]["task_status"],
        "SUCCEEDED"
    );

    let refusals = [
        (
            body(
                0,
                json!({"color_palette": [{"hex": "#112233", "ratio": 0.5}, {"hex": "#445566", "ratio": 0.5}]}),
            ),
            "color_palette: 2 colours given",
        ),
        (
            body(
                0,
                json!({"color_palette": [{"hex": "#112233", "ratio": 0.5}, {"hex": "red", "ratio": 0.3}, {"hex": "#778899", "ratio": 0.2}]}),
            ),
            "color_palette: entry 2: hex `red`",
        ),
        (
            body(
                0,
                json!({"color_palette": [{"hex": "#112233", "ratio": 0.5}, {"hex": "#445566", "ratio": 0.3}, {"hex": "#778899", "ratio": 2}]}),
            ),
            "color_palette: entry 3: ratio 2",
        ),
        (
            body(0, json!({"color_palette": "#112233"})),
            "color_palette must be a list",
        ),
        (
            body(0, json!({"bbox_list": [[[0, 0, 10, 10]]]})),
            "bbox_list: applies only with input images",
        ),
        (
            body(1, json!({"bbox_list": [[0, 0, 10, 10]]})),
            "bbox_list must be a list",
        ),
    ];
    for (request, needle) in refusals {
        for answer in [
            create(&sim, GENERATION, request.clone()).await,
            call(&sim, request.clone()).await,
        ] {
            assert_eq!(answer.status(), 400, "{request}");
            let json: Value = answer.json().await.unwrap();
            assert_eq!(json["code"], "InvalidParameter", "{json}");
            let message = json["message"].as_str().unwrap();
            assert!(message.contains(needle), "`{message}` lacks `{needle}`");
        }
    }
    sim.shutdown().await;
}
