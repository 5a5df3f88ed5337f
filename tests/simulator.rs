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
