//! `wandash mcp` as a child process, spoken to over stdio with rmcp's client, against a
//! simulator on loopback; the jobs are checked in the SQLite store afterwards.

mod mcp_support;

use std::collections::BTreeSet;
use std::time::Duration;

use mcp_support::*;
use serde_json::{Value, json};
use wandash::dashscope::{ApiKey, Client, ImageRef, Model};
use wandash::engine::{Engine, EngineConfig};
use wandash::simulator::SimConfig;
use wandash::store::{JobFilter, JobState};

const TOOLS: [&str; 8] = [
    "generate_image_from_text",
    "transform_image_from_file",
    "transform_image_from_url",
    "transform_image_from_encoded",
    "list_jobs",
    "get_job",
    "cancel_job",
    "submit_batch",
];

fn properties(tool: &rmcp::model::Tool) -> BTreeSet<String> {
    tool.input_schema["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_tools_with_the_universal_image_generator_argument_names() {
    let setup = Setup::new().await;
    let client = setup.client().await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let names: BTreeSet<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    assert_eq!(names, TOOLS.into_iter().collect::<BTreeSet<_>>());

    let tool = |name: &str| tools.iter().find(|t| t.name == name).unwrap();
    let required = |name: &str| -> BTreeSet<String> {
        tool(name).input_schema["required"]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    // The names assistants configured for the Universal Image Generator already use.
    let generate = properties(tool("generate_image_from_text"));
    for arg in [
        "prompt",
        "model",
        "size",
        "n",
        "seed",
        "negative_prompt",
        "timeout_seconds",
    ] {
        assert!(
            generate.contains(arg),
            "generate_image_from_text lacks {arg}: {generate:?}"
        );
    }
    assert_eq!(
        required("generate_image_from_text"),
        BTreeSet::from(["prompt".to_string()])
    );
    let url = properties(tool("transform_image_from_url"));
    for arg in ["image_url", "prompt", "function", "mask_image_url", "model"] {
        assert!(
            url.contains(arg),
            "transform_image_from_url lacks {arg}: {url:?}"
        );
    }
    assert!(
        properties(tool("transform_image_from_file")).is_superset(&BTreeSet::from([
            "image_file_path".to_string(),
            "mask_file_path".to_string(),
            "prompt".to_string()
        ]))
    );
    assert!(properties(tool("transform_image_from_encoded")).contains("encoded_image"));
    // Beijing (the default region) offers wanx-x-painting: its mask_color is an argument.
    assert!(model_enum(tool("transform_image_from_url")).contains(&"wanx-x-painting".to_string()));
    assert!(url.contains("mask_color"), "{url:?}");
    assert_eq!(required("get_job"), BTreeSet::from(["id".to_string()]));
    assert_eq!(
        required("submit_batch"),
        BTreeSet::from(["jobs".to_string()])
    );
    client.cancel().await.ok();
}

/// The `model` enum of a tool's input schema.
fn model_enum(tool: &rmcp::model::Tool) -> Vec<String> {
    tool.input_schema["properties"]["model"]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no model enum", tool.name))
        .iter()
        .map(|v| v.as_str().expect("a model id").to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tools_offer_the_regions_models_from_the_catalogue_and_refuse_others_like_the_cli() {
    let setup = Setup::new().await;
    let client = setup
        .client_with(&["--region", "ap-southeast-1", "mcp"])
        .await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let tool = |name: &str| tools.iter().find(|t| t.name == name).unwrap();
    let text_models = model_enum(tool("generate_image_from_text"));
    for id in [
        "wan2.1-t2i-turbo",
        "qwen-image",
        "z-image-turbo",
        "wan2.7-image",
    ] {
        assert!(
            text_models.contains(&id.to_string()),
            "{id}: {text_models:?}"
        );
    }
    // Beijing's ids and Beijing-only models are not Singapore's.
    for id in ["wanx2.1-t2i-turbo", "wanx2.0-t2i-turbo", "qwen-image-edit"] {
        assert!(
            !text_models.contains(&id.to_string()),
            "{id}: {text_models:?}"
        );
    }
    let edit_models = model_enum(tool("transform_image_from_file"));
    assert!(edit_models.contains(&"qwen-image-edit".to_string()));
    assert!(!edit_models.contains(&"wanx-x-painting".to_string()));
    let file_args = properties(tool("transform_image_from_file"));
    assert!(!file_args.contains("mask_color") && !file_args.contains("function"));
    let description =
        tool("generate_image_from_text").input_schema["properties"]["model"]["description"]
            .as_str()
            .unwrap()
            .to_string();
    assert!(
        description.contains("z-image-turbo: 0.110089 CNY/image"),
        "{description}"
    );

    // Models of the enum work: the synchronous z-image-turbo, and the default, called by
    // its Singapore id and stored by wandash's.
    let z = call(
        &client,
        "generate_image_from_text",
        json!({"prompt": "a kite over the dunes", "model": "z-image-turbo", "size": "1024*1024", "return_image": false}),
    )
    .await;
    assert!(!is_error(&z), "{}", text(&z));
    assert_eq!(structured(&z)["state"], "succeeded", "{}", structured(&z));
    let first = image::open(&saved_images(structured(&z))[0]).unwrap();
    assert_eq!((first.width(), first.height()), (1024, 1024));
    let default = call(
        &client,
        "generate_image_from_text",
        json!({"prompt": "a lighthouse", "return_image": false}),
    )
    .await;
    assert!(!is_error(&default), "{}", text(&default));
    assert_eq!(
        setup.job(job_id(structured(&default))).spec.model,
        Model::Wanx21T2iTurbo
    );
    // wan2.7's palette, an argument where wan2.7 is offered, reaches the service.
    let palette = json!([{"hex": "#112233", "ratio": 0.5}, {"hex": "#445566", "ratio": 0.3}, {"hex": "#778899", "ratio": 0.2}]);
    let wan27 = call(
        &client,
        "generate_image_from_text",
        json!({"prompt": "a harbour at dawn", "model": "wan2.7-image", "n": 1, "size": "1024*1024",
               "color_palette": palette, "return_image": false}),
    )
    .await;
    assert!(!is_error(&wan27), "{}", text(&wan27));
    assert_eq!(
        structured(&wan27)["state"],
        "succeeded",
        "{}",
        structured(&wan27)
    );
    assert_eq!(
        setup
            .job(job_id(structured(&wan27)))
            .spec
            .color_palette
            .len(),
        3
    );

    // A model the region does not offer, and a size the model does not make: refused by
    // intake with the field-named line `wandash submit` prints.
    let refusals: [(Value, &[&str]); 3] = [
        (
            json!({"prompt": "x", "model": "wanx2.0-t2i-turbo"}),
            &["--model", "wanx2.0-t2i-turbo"],
        ),
        (
            json!({"prompt": "x", "model": "z-image-turbo", "size": "100*100"}),
            &["--model", "z-image-turbo", "--size", "100*100"],
        ),
        (
            json!({"prompt": "x", "model": "wan2.7-image", "color_palette": [
                {"hex": "#112233", "ratio": 0.5}, {"hex": "#44", "ratio": 0.3}, {"hex": "#778899", "ratio": 0.2}]}),
            &[
                "--model",
                "wan2.7-image",
                "--color-palette",
                "#112233:0.5,#44:0.3,#778899:0.2",
            ],
        ),
    ];
    for (args, flags) in refusals {
        let result = call(&client, "generate_image_from_text", args.clone()).await;
        assert!(is_error(&result), "{args} was accepted");
        let cli_args = [
            &["--region", "ap-southeast-1", "submit", "--prompt", "x"],
            flags,
        ]
        .concat();
        let cli = tokio::process::Command::from(setup.wandash(&cli_args))
            .output()
            .await
            .expect("run wandash submit");
        assert!(!cli.status.success());
        let stderr = String::from_utf8_lossy(&cli.stderr);
        let line = stderr
            .lines()
            .find_map(|l| l.strip_prefix("error: "))
            .unwrap_or_else(|| panic!("no error line: {stderr}"));
        assert!(
            ["model: ", "size: ", "color_palette: "]
                .iter()
                .any(|field| line.starts_with(field)),
            "{line}"
        );
        assert!(
            text(&result).contains(line),
            "MCP `{}` differs from the CLI's `{line}`",
            text(&result)
        );
    }
    assert_eq!(setup.store().count(&JobFilter::default()).unwrap(), 3);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generate_image_from_text_waits_and_answers_with_paths_prompt_and_image() {
    let setup = Setup::new().await;
    let client = setup.client().await;
    let result = call(
        &client,
        "generate_image_from_text",
        json!({"prompt": "a red fox in fresh snow", "n": 2, "seed": 42, "size": "1024*768", "negative_prompt": "blur"}),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));
    let answer = structured(&result);
    assert_eq!(answer["state"], "succeeded", "{answer}");
    assert_eq!(answer["model"], "wanx2.1-t2i-turbo");
    assert_eq!(answer["parameters"]["seed"], 42);
    assert_eq!(answer["parameters"]["size"], "1024*768");
    assert!(
        answer["actual_prompt"]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{answer}"
    );
    let paths = saved_images(answer);
    assert_eq!(paths.len(), 2);
    let first = image::open(&paths[0]).unwrap();
    assert_eq!((first.width(), first.height()), (1024, 768));
    // The preview is the first image, downscaled to at most 512 px.
    let preview = image_content(&result).expect("image content");
    assert_eq!((preview.width(), preview.height()), (512, 384));

    // The same job, as the store (and so the dashboard) sees it.
    let id = job_id(answer);
    let job = setup.job(id);
    assert_eq!(job.summary.state(), JobState::Succeeded);
    assert_eq!(job.spec.prompt, "a red fox in fresh snow");
    assert_eq!(job.spec.negative_prompt.as_deref(), Some("blur"));
    assert_eq!(job.images.iter().filter(|i| i.is_saved()).count(), 2);
    assert_eq!(setup.stats().await["creates"], 1);

    // get_job answers the same, without the image when asked.
    let again = call(&client, "get_job", json!({"id": id, "return_image": false})).await;
    assert!(!is_error(&again));
    assert_eq!(structured(&again)["images"], answer["images"]);
    assert!(image_content(&again).is_none());
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transform_tools_reach_every_editing_model() {
    let setup = Setup::new().await;
    let base = setup.path("base.png");
    let mask = setup.path("mask.png");
    write_png(&base, 640, 640, false);
    write_png(&mask, 640, 640, true);
    let client = setup.client().await;

    // A local file and its mask: uploaded, then edited.
    let from_file = call(
        &client,
        "transform_image_from_file",
        json!({"image_file_path": base, "mask_file_path": mask, "prompt": "a paper boat on the water",
               "function": "description_edit_with_mask", "return_image": false}),
    )
    .await;
    assert!(!is_error(&from_file), "{}", text(&from_file));
    let answer = structured(&from_file);
    assert_eq!(answer["state"], "succeeded", "{answer}");
    assert_eq!(saved_images(answer).len(), 1);
    let job = setup.job(job_id(answer));
    assert_eq!(job.spec.base_image, Some(ImageRef::File(base.clone())));
    let prepared = job.prepared_spec.expect("a prepared spec");
    assert!(
        matches!(&prepared.base_image, Some(ImageRef::Url(u)) if u.starts_with("oss://")),
        "{prepared:?}"
    );

    // Inpainting with wanx-x-painting, from files too.
    let painting = call(
        &client,
        "transform_image_from_file",
        json!({"image_file_path": base, "mask_file_path": mask, "prompt": "a lantern",
               "model": "wanx-x-painting", "style": "<watercolor>", "return_image": false}),
    )
    .await;
    assert!(!is_error(&painting), "{}", text(&painting));
    assert_eq!(structured(&painting)["state"], "succeeded");
    assert_eq!(
        setup.job(job_id(structured(&painting))).spec.model,
        Model::WanxXPainting
    );

    // A public URL: the image the first job made, as the simulator serves it.
    let url = job.images[0].url.clone().expect("the result URL");
    let from_url = call(
        &client,
        "transform_image_from_url",
        json!({"image_url": url, "prompt": "make it a watercolour", "function": "stylization_all", "n": 2}),
    )
    .await;
    assert!(!is_error(&from_url), "{}", text(&from_url));
    let answer = structured(&from_url);
    assert_eq!(answer["state"], "succeeded", "{answer}");
    assert_eq!(saved_images(answer).len(), 2);
    assert_eq!(answer["parameters"]["function"], "stylization_all");
    assert_eq!(answer["parameters"]["base_image"], json!(url));

    // A data URI, to the multi-image model with a second image.
    let from_encoded = call(
        &client,
        "transform_image_from_encoded",
        json!({"encoded_image": data_uri(&base), "extra_encoded_images": [data_uri(&mask)],
               "prompt": "put image 2 on image 1", "model": "wan2.5-i2i-preview", "return_image": false}),
    )
    .await;
    assert!(!is_error(&from_encoded), "{}", text(&from_encoded));
    let answer = structured(&from_encoded);
    assert_eq!(answer["state"], "succeeded", "{answer}");
    let job = setup.job(job_id(answer));
    assert_eq!(job.spec.images.len(), 2);
    assert_eq!(setup.stats().await["creates"], 4);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_tool_error_naming_the_field_and_nothing_is_queued() {
    let setup = Setup::new().await;
    let small = setup.path("small.png");
    write_png(&small, 100, 100, false);
    let client = setup.client().await;
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "generate_image_from_text",
            json!({"prompt": "x", "n": 9}),
            "n",
        ),
        (
            "generate_image_from_text",
            json!({"prompt": "x", "size": "4000*4000"}),
            "size",
        ),
        (
            "generate_image_from_text",
            json!({"prompt": "x", "model": "dall-e"}),
            "dall-e",
        ),
        (
            "generate_image_from_text",
            json!({"prompt": "x", "n": "four"}),
            "invalid arguments",
        ),
        ("generate_image_from_text", json!({"n": 1}), "prompt"),
        (
            "generate_image_from_text",
            json!({"prompt": "x", "seed": 3_000_000_000u64}),
            "seed",
        ),
        (
            "transform_image_from_file",
            json!({"image_file_path": "/no/such/file.png", "prompt": "x"}),
            "/no/such/file.png",
        ),
        (
            "transform_image_from_file",
            json!({"image_file_path": small, "prompt": "x"}),
            "image_file_path (base_image): width 100",
        ),
        (
            "transform_image_from_file",
            json!({"image_file_path": small, "prompt": "x", "function": "sharpen"}),
            "sharpen",
        ),
        (
            "transform_image_from_url",
            json!({"image_url": "/tmp/a.png", "prompt": "x"}),
            "image_url",
        ),
        (
            "transform_image_from_url",
            json!({"image_url": "https://example.com/a.png", "prompt": "x", "function": "description_edit_with_mask"}),
            "mask_image_url",
        ),
        (
            "transform_image_from_encoded",
            json!({"encoded_image": "aGVsbG8=", "prompt": "x"}),
            "encoded_image",
        ),
        (
            "transform_image_from_encoded",
            json!({"encoded_image": "data:image/png;base64,aGVsbG8=", "prompt": "x"}),
            "encoded_image",
        ),
        ("get_job", json!({"id": 9999}), "9999"),
        ("cancel_job", json!({"id": 9999}), "9999"),
        ("list_jobs", json!({"status": "sleeping"}), "sleeping"),
        ("submit_batch", json!({"jobs": []}), "jobs"),
        (
            "submit_batch",
            json!({"jobs": [{"model": "wanx2.1-t2i-turbo", "prompt": "fine"}, {"model": "wanx2.1-t2i-turbo", "prompt": "x", "n": 7}]}),
            "job 1: n",
        ),
        (
            "submit_batch",
            json!({"jobs": [{"model": "wanx2.1-t2i-turbo", "prompt": "x", "colour": "red"}]}),
            "colour",
        ),
    ];
    for (tool, args, needle) in cases {
        let result = call(&client, tool, args.clone()).await;
        assert!(
            is_error(&result),
            "{tool} {args} was accepted: {}",
            text(&result)
        );
        let message = text(&result);
        assert!(
            message.contains(needle),
            "{tool} {args}: `{message}` does not name `{needle}`"
        );
    }
    // Still serving, and nothing reached the queue or the service.
    assert_eq!(
        client.list_all_tools().await.expect("tools/list").len(),
        TOOLS.len()
    );
    assert_eq!(setup.store().count(&JobFilter::default()).unwrap(), 0);
    assert_eq!(setup.stats().await["creates"], 0);
    client.cancel().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_batch_returns_at_once_and_list_and_get_follow_the_jobs() {
    let setup = Setup::new().await;
    let client = setup.client().await;
    let jobs: Vec<Value> = (0..3)
        .map(|i| json!({"model": "wanx2.0-t2i-turbo", "prompt": format!("lighthouse {i}"), "n": 1, "seed": i}))
        .collect();
    let result = call(
        &client,
        "submit_batch",
        json!({"jobs": jobs, "tag": "assistant-batch"}),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));
    let ids: Vec<i64> = structured(&result)["job_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 3);

    // Follow them with get_job until each has ended.
    for id in &ids {
        let mut answer = Value::Null;
        for _ in 0..150 {
            let got = call(&client, "get_job", json!({"id": id, "return_image": false})).await;
            assert!(!is_error(&got), "{}", text(&got));
            answer = structured(&got).clone();
            if answer["state"] == "succeeded" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answer["state"], "succeeded", "{answer}");
        assert_eq!(saved_images(&answer).len(), 1);
    }
    let listed = call(
        &client,
        "list_jobs",
        json!({"status": "succeeded", "limit": 10}),
    )
    .await;
    let listed: BTreeSet<i64> = structured(&listed)["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, ids.iter().copied().collect());
    let searched = call(&client, "list_jobs", json!({"search": "lighthouse 1"})).await;
    assert_eq!(structured(&searched)["count"], 1);
    for id in &ids {
        assert_eq!(
            setup.job(*id).summary.batch_tag.as_deref(),
            Some("assistant-batch")
        );
    }
    assert_eq!(setup.stats().await["creates"], 3);
    client.cancel().await.ok();
}

/// A team shares the store: `mine` keeps the jobs queued as the server's `user@host`,
/// whichever program queued them; without it everyone's are listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_jobs_mine_keeps_the_jobs_queued_as_this_user_on_this_host() {
    let setup = Setup::new().await;
    let submit = ["submit", "--model", "wanx2.0-t2i-turbo", "--prompt"];
    setup.run_as("alice", &[&submit[..], &["a red fox"]].concat());
    setup.run_as("bob", &[&submit[..], &["a grey owl"]].concat());
    let client = setup.client_as("alice").await;
    let tools = client.list_all_tools().await.expect("tools/list");
    let list_jobs = tools.iter().find(|t| t.name == "list_jobs").unwrap();
    assert!(properties(list_jobs).contains("mine"));

    let listed = |answer: &rmcp::model::CallToolResult| -> Vec<(String, String)> {
        assert!(!is_error(answer), "{}", text(answer));
        structured(answer)["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| {
                let who = job["submitted_by"].as_str().unwrap();
                let user = who.split_once('@').unwrap().0.to_string();
                (user, job["prompt"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let mine = call(&client, "list_jobs", json!({"mine": true})).await;
    assert_eq!(listed(&mine), [("alice".into(), "a red fox".into())]);
    let everyones = call(&client, "list_jobs", json!({"mine": false})).await;
    assert_eq!(
        listed(&everyones),
        [
            ("bob".into(), "a grey owl".into()),
            ("alice".into(), "a red fox".into())
        ]
    );
    assert_eq!(
        listed(&call(&client, "list_jobs", json!({})).await),
        listed(&everyones)
    );
    let bad = call(&client, "list_jobs", json!({"mine": "yes"})).await;
    assert!(
        is_error(&bad) && text(&bad).contains("invalid arguments"),
        "{}",
        text(&bad)
    );
    client.cancel().await.ok();
}

/// Another process holds the engine lock (here: this test): the server only enqueues,
/// a wait times out with the job id, a queued job cancels at once; when an engine runs
/// (started here, on the same store), the server sees the job end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_engine_elsewhere_it_enqueues_times_out_with_the_id_and_sees_the_job_end() {
    let setup = Setup::new().await;
    std::fs::create_dir_all(setup.path("data")).unwrap();
    let lock_path = setup.path("data/wandash.db.engine.lock");
    let lock = std::fs::File::create(&lock_path).unwrap();
    lock.try_lock().expect("take the engine lock");
    let client = setup.client().await;

    let waited = call(
        &client,
        "generate_image_from_text",
        json!({"prompt": "a quiet harbour", "timeout_seconds": 1}),
    )
    .await;
    assert!(!is_error(&waited), "{}", text(&waited));
    let answer = structured(&waited);
    let id = job_id(answer);
    assert_eq!(answer["state"], "queued");
    assert!(
        answer["note"].as_str().unwrap().contains("get_job"),
        "{answer}"
    );

    let other = call(
        &client,
        "submit_batch",
        json!({"jobs": [{"model": "wanx2.1-t2i-turbo", "prompt": "never mind"}]}),
    )
    .await;
    let other_id = structured(&other)["job_ids"][0].as_i64().unwrap();
    let cancelled = call(&client, "cancel_job", json!({"id": other_id})).await;
    assert!(!is_error(&cancelled), "{}", text(&cancelled));
    assert_eq!(structured(&cancelled)["outcome"], "cancelled");
    assert_eq!(setup.job(other_id).summary.state(), JobState::Cancelled);
    let got = call(&client, "get_job", json!({"id": other_id})).await;
    assert!(
        is_error(&got),
        "a cancelled job is reported as not done: {}",
        text(&got)
    );
    assert_eq!(setup.stats().await["creates"], 0);

    // The lock's owner (an engine in this process) runs the queued job.
    drop(lock);
    let engine = Engine::start(
        &setup.db(),
        Client::new(&setup.sim.base_url(), ApiKey::new("test-key".into())).unwrap(),
        EngineConfig {
            data_dir: setup.path("data"),
            poll_min: Duration::from_millis(50),
            poll_max: Duration::from_millis(200),
            ..EngineConfig::default()
        },
    )
    .expect("start the engine here");
    let mut state = Value::Null;
    for _ in 0..150 {
        let got = call(&client, "get_job", json!({"id": id})).await;
        state = structured(&got)["state"].clone();
        if state == "succeeded" {
            assert!(image_content(&got).is_some());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");
    assert_eq!(setup.stats().await["creates"], 1);
    client.cancel().await.ok();
    engine.shutdown().await;
}

/// A key the service refuses stops the engine: the tool says so at once instead of
/// waiting out its timeout, the job stays queued, and the key appears nowhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_key_is_a_tool_error_and_the_job_stays_queued() {
    let setup = Setup::with_sim(SimConfig {
        key: Some("the-right-key".into()),
        ..SimConfig::default()
    })
    .await;
    let client = setup.client().await;
    let result = call(
        &client,
        "generate_image_from_text",
        json!({"prompt": "a kite", "timeout_seconds": 60}),
    )
    .await;
    assert!(is_error(&result), "{}", text(&result));
    let message = text(&result);
    assert!(
        message.contains("engine stopped") && message.contains("InvalidApiKey"),
        "{message}"
    );
    assert!(!message.contains("test-key"), "the key leaked: {message}");
    let id = job_id(structured(&result));
    assert_eq!(setup.job(id).summary.state(), JobState::Queued);
    client.cancel().await.ok();
}

/// Raw JSON-RPC over the pipes: every stdout line is a protocol message, a bad call is a
/// tool error (not a crash), and closing stdin ends the server cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdout_carries_only_protocol_and_closing_stdin_stops_the_server() {
    use std::io::Write;
    let setup = Setup::new().await;
    let mut child = setup
        .command()
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start wandash mcp");
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",
            "capabilities": {}, "clientInfo": {"name": "raw-test", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "generate_image_from_text", "arguments": {"prompt": "x", "n": 9}}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "generate_image_from_text", "arguments": {"prompt": "a small boat", "return_image": false}}}),
    ];
    let mut stdin = child.stdin.take().unwrap();
    for request in &requests {
        writeln!(stdin, "{request}").unwrap();
    }
    // Read until both calls are answered, then hang up.
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        let mut reader = std::io::BufReader::new(stdout);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 {
                break;
            }
            let done = line.contains("\"id\":3");
            lines.push(line);
            if done {
                drop(stdin);
                let mut rest = String::new();
                std::io::Read::read_to_string(&mut reader, &mut rest).unwrap();
                lines.extend(rest.lines().map(String::from));
                break;
            }
        }
        lines
    })
    .await
    .unwrap();
    let messages: Vec<Value> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON-RPC on stdout ({e}): {l}"))
        })
        .collect();
    assert!(
        messages.iter().all(|m| m["jsonrpc"] == "2.0"),
        "{messages:?}"
    );
    let answer = |id: i64| {
        messages
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no answer {id}: {messages:?}"))
    };
    assert_eq!(answer(1)["result"]["serverInfo"]["name"], "wandash");
    assert_eq!(answer(2)["result"]["isError"], true);
    assert_eq!(answer(3)["result"]["isError"], false, "{}", answer(3));
    assert_eq!(
        answer(3)["result"]["structuredContent"]["state"],
        "succeeded"
    );
    let status = tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "wandash mcp exited with {status}");
}
