//! Running `wandash mcp` as a child process and speaking MCP to it with rmcp's client,
//! against a simulator started in this test process on 127.0.0.1 with short latency.

#![allow(dead_code)] // each test file uses a different part of this module

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use wandash::simulator::{self, RunningSim, SimConfig};
use wandash::store::{JobDetail, JobId, Store};

pub const BIN: &str = env!("CARGO_BIN_EXE_wandash");

/// A scratch home with its store, a fast-polling config, and a simulator.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub sim: RunningSim,
}

impl Setup {
    pub async fn new() -> Setup {
        Setup::with_sim(SimConfig::default()).await
    }

    /// A setup whose simulator has `config` (its latency is always made short).
    pub async fn with_sim(config: SimConfig) -> Setup {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sim = simulator::start(SimConfig {
            latency: (Duration::from_millis(30), Duration::from_millis(120)),
            ..config
        })
        .await
        .expect("start the simulator");
        // Poll fast: the simulator's tasks end within 120 ms.
        std::fs::write(
            dir.path().join("config.toml"),
            "[poll]\nmin_interval_ms = 50\nmax_interval_ms = 200\n[retry]\nbackoff_base_ms = 50\nbackoff_cap_ms = 500\n",
        )
        .expect("write the config");
        Setup { dir, sim }
    }

    /// The `wandash ... mcp` command line of `client`, for tests that speak raw JSON-RPC.
    pub fn command(&self) -> std::process::Command {
        self.wandash(&["mcp"])
    }

    /// `wandash --db .. --config .. --base-url <sim> <args>` with DASHSCOPE_API_KEY=test-key
    /// and a scratch home.
    pub fn wandash(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        let home = self.path("home");
        cmd.env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("DASHSCOPE_API_KEY", "test-key")
            .env_remove("DASHSCOPE_BASE_URL")
            .env_remove("RUST_LOG")
            .arg("--db")
            .arg(self.db())
            .arg("--config")
            .arg(self.path("config.toml"))
            .arg("--base-url")
            .arg(self.sim.base_url())
            .args(args);
        cmd
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn db(&self) -> PathBuf {
        self.path("data/wandash.db")
    }

    /// `wandash --db .. --config .. --base-url <sim> mcp` with DASHSCOPE_API_KEY=test-key,
    /// connected and initialised.
    pub async fn client(&self) -> RunningService<RoleClient, ()> {
        self.client_with(&["mcp"]).await
    }

    /// `client`, with global flags before `mcp` (e.g. `--region`).
    pub async fn client_with(&self, args: &[&str]) -> RunningService<RoleClient, ()> {
        connect(self.wandash(args)).await
    }

    /// `client`, run as `user` (`$USER`, `$LOGNAME`): who it queues jobs as.
    pub async fn client_as(&self, user: &str) -> RunningService<RoleClient, ()> {
        connect(as_user(user, self.wandash(&["mcp"]))).await
    }

    /// `wandash <args>` run as `user` to its end; panics unless it succeeds.
    pub fn run_as(&self, user: &str, args: &[&str]) {
        let out = as_user(user, self.wandash(args))
            .output()
            .expect("run wandash");
        assert!(
            out.status.success(),
            "wandash {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn store(&self) -> Store {
        Store::open(&self.db()).expect("open the store")
    }

    pub fn job(&self, id: i64) -> JobDetail {
        self.store()
            .job(JobId(id))
            .expect("read the store")
            .expect("the job is in the store")
    }

    pub async fn stats(&self) -> Value {
        let url = format!("http://{}/__sim/stats", self.sim.addr());
        reqwest::get(&url)
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }
}

/// `command` as `user`: the name a job it queues records (`submitted_by`).
fn as_user(user: &str, mut command: std::process::Command) -> std::process::Command {
    command.env("USER", user).env("LOGNAME", user);
    command
}

/// Starts `command` (a `wandash ... mcp`) and connects to it.
async fn connect(command: std::process::Command) -> RunningService<RoleClient, ()> {
    let (transport, _) = TokioChildProcess::builder(tokio::process::Command::from(command))
        .stderr(Stdio::null())
        .spawn()
        .expect("start wandash mcp");
    ().serve(transport)
        .await
        .expect("MCP handshake with wandash mcp")
}

pub async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    args: Value,
) -> CallToolResult {
    let Value::Object(arguments) = args else {
        panic!("arguments must be an object")
    };
    client
        .call_tool(CallToolRequestParams::new(tool.to_string()).with_arguments(arguments))
        .await
        .unwrap_or_else(|e| panic!("{tool}: the call itself failed: {e}"))
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

/// All text content, joined.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| match c {
            ContentBlock::Text(t) => Some(t.text.as_str()),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .unwrap_or_else(|| panic!("no structured content in {}", text(result)))
}

/// The decoded PNG of the first image content, if any.
pub fn image_content(result: &CallToolResult) -> Option<image::DynamicImage> {
    result.content.iter().find_map(|c| match c {
        ContentBlock::Image(img) => {
            assert_eq!(img.mime_type, "image/png");
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(&img.data)
                .expect("base64 image data");
            Some(
                image::load_from_memory_with_format(&bytes, image::ImageFormat::Png)
                    .expect("a PNG"),
            )
        }
        _ => None,
    })
}

/// Every `images[].path` of a job answer, each checked to be a decodable image.
pub fn saved_images(answer: &Value) -> Vec<PathBuf> {
    answer["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|i| {
            let path = PathBuf::from(
                i["path"]
                    .as_str()
                    .unwrap_or_else(|| panic!("image without a path: {i}")),
            );
            image::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            path
        })
        .collect()
}

/// A PNG of `w`x`h` at `path`: a gradient, or pure white/black halves for a mask.
pub fn write_png(path: &Path, w: u32, h: u32, mask: bool) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        if mask {
            if x < w / 2 {
                image::Rgb([255, 255, 255])
            } else {
                image::Rgb([0, 0, 0])
            }
        } else {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
        }
    });
    img.save(path).expect("write a test PNG");
}

pub fn data_uri(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read the test image");
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

pub fn job_id(answer: &Value) -> i64 {
    answer["job_id"]
        .as_i64()
        .unwrap_or_else(|| panic!("no job_id in {answer}"))
}
