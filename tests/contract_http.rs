//! Wire-level facts about the client that the simulator cannot show (it never answers
//! with HTML, never lies about a body's length): checked against a tiny real HTTP server
//! on 127.0.0.1 that records every request it gets.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use image::{ImageBuffer, ImageFormat, Rgb};
use serde_json::{Value, json};
use wandash::dashscope::{
    ApiKey, Client, ClientError, EditFunction, ErrorAction, ImageRef, JobSpec, ListQuery, Model,
    TaskStatus,
};

const KEY: &str = "sk-contract-secret-0123456789";

#[derive(Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone, Default)]
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
    addr: Arc<Mutex<Option<SocketAddr>>>,
}

impl Recorder {
    fn all(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn last(&self, path: &str) -> Seen {
        self.all()
            .into_iter()
            .rev()
            .find(|s| s.path == path)
            .unwrap_or_else(|| panic!("no request to {path}"))
    }
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn answer(State(rec): State<Recorder>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let path = parts.uri.path().to_string();
    rec.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        path: path.clone(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts.headers.clone(),
        body,
    });
    let addr = rec.addr.lock().unwrap().expect("address recorded");
    match path.as_str() {
        "/api/v1/services/aigc/text2image/image-synthesis"
        | "/api/v1/services/aigc/image2image/image-synthesis" => json_answer(
            StatusCode::OK,
            json!({"output":{"task_status":"PENDING","task_id":"task-1"},"request_id":"r1"}),
        ),
        "/api/v1/tasks/task-1/cancel" => json_answer(StatusCode::OK, json!({"request_id":"r2"})),
        "/api/v1/tasks" => json_answer(
            StatusCode::OK,
            json!({"total":0,"total_page":0,"page_no":2,"page_size":5,"request_id":"r3","data":[]}),
        ),
        "/api/v1/uploads" => json_answer(
            StatusCode::OK,
            json!({"request_id":"r4","data":{"policy":"POLICY","signature":"SIG",
                "upload_dir":"dashscope-instant/abc/2025-01-01/u1","upload_host":format!("http://{addr}/oss"),
                "expire_in_seconds":300,"max_file_size_mb":1024,"capacity_limit_mb":999,"oss_access_key_id":"AKID",
                "x_oss_object_acl":"private","x_oss_forbid_overwrite":"true"}}),
        ),
        "/oss" => StatusCode::OK.into_response(),
        "/api/v1/tasks/html" => (
            StatusCode::BAD_GATEWAY,
            [(header::CONTENT_TYPE, "text/html")],
            format!(
                "<html><body>\x1b]52;c;evil\x07Bad gateway {}</body></html>",
                "padding ".repeat(100)
            ),
        )
            .into_response(),
        "/api/v1/tasks/msg" => json_answer(
            StatusCode::TOO_MANY_REQUESTS,
            json!({"code":"Throttling.RateQuota","msg":"Requests rate limit exceeded"}),
        ),
        "/api/v1/tasks/garbage" => (StatusCode::OK, "this is not json").into_response(),
        "/api/v1/tasks/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            json_answer(StatusCode::OK, json!({}))
        }
        "/img/small" => (StatusCode::OK, vec![7u8; 1000]).into_response(),
        "/img/missing" => (
            StatusCode::NOT_FOUND,
            "<Error><Code>NoSuchKey</Code></Error>",
        )
            .into_response(),
        // No Content-Length: only counting the stream can stop it.
        "/img/chunked" => {
            let chunks = (0..10).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![1u8; 1000])));
            Body::from_stream(futures::stream::iter(chunks)).into_response()
        }
        _ => json_answer(
            StatusCode::NOT_FOUND,
            json!({"code":"NotFound","message":"no such path"}),
        ),
    }
}

async fn server() -> (Recorder, SocketAddr) {
    let rec = Recorder::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    *rec.addr.lock().unwrap() = Some(addr);
    let app = Router::new().fallback(answer).with_state(rec.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (rec, addr)
}

fn client(addr: SocketAddr) -> Client {
    Client::new(&format!("http://{addr}/api/v1"), ApiKey::new(KEY.into())).unwrap()
}

fn header<'a>(seen: &'a Seen, name: &str) -> Option<&'a str> {
    seen.headers.get(name).map(|v| v.to_str().unwrap())
}

fn assert_no_key(text: &str) {
    assert!(
        !text.contains(KEY) && !text.contains("sk-contract"),
        "the key leaked: {text}"
    );
}

#[tokio::test]
async fn create_sends_the_documented_headers_and_body() {
    let (rec, addr) = server().await;
    let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse at dusk");
    spec.n = Some(2);
    spec.seed = Some(42);
    let created = client(addr).create(&spec).await.unwrap();
    assert_eq!(created.task_id, "task-1");
    assert_eq!(created.task_status, TaskStatus::Pending);
    assert_eq!(created.request_id.as_deref(), Some("r1"));

    let seen = rec.last("/api/v1/services/aigc/text2image/image-synthesis");
    assert_eq!(seen.method, "POST");
    assert_eq!(
        header(&seen, "authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(header(&seen, "x-dashscope-async"), Some("enable"));
    assert_eq!(
        header(&seen, "content-type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(
        header(&seen, "x-dashscope-ossresourceresolve"),
        None,
        "no oss:// image, no header"
    );
    let body: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(body, spec.to_wire().unwrap());
}

#[tokio::test]
async fn a_local_file_is_uploaded_with_the_signed_form_and_created_as_oss() {
    let (rec, addr) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("my base.png");
    ImageBuffer::from_pixel(600, 520, Rgb([10u8, 20, 30]))
        .save_with_format(&path, ImageFormat::Png)
        .unwrap();
    let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "make it snow");
    spec.function = Some(EditFunction::DescriptionEdit);
    spec.base_image = Some(ImageRef::File(path.clone()));

    let created = client(addr).create(&spec).await.unwrap();
    assert_eq!(created.task_id, "task-1");

    let policy = rec.last("/api/v1/uploads");
    assert_eq!(policy.method, "GET");
    assert_eq!(policy.query, "action=getPolicy&model=wanx2.1-imageedit");
    assert_eq!(
        header(&policy, "authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );

    let upload = rec.last("/oss");
    assert_eq!(upload.method, "POST");
    assert_eq!(
        header(&upload, "authorization"),
        None,
        "the API key is not for OSS"
    );
    assert!(
        header(&upload, "content-type")
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
    let form = String::from_utf8_lossy(&upload.body);
    let order: Vec<usize> = [
        "OSSAccessKeyId",
        "Signature",
        "policy",
        "key",
        "x-oss-object-acl",
        "x-oss-forbid-overwrite",
        "success_action_status",
        "x-oss-content-type",
        "file",
    ]
    .iter()
    .map(|name| {
        form.find(&format!("name=\"{name}\""))
            .unwrap_or_else(|| panic!("field {name} missing"))
    })
    .collect();
    assert!(
        order.windows(2).all(|w| w[0] < w[1]),
        "fields out of order, `file` must be last: {order:?}"
    );
    assert!(form.contains("dashscope-instant/abc/2025-01-01/u1/my_base.png"));
    assert!(form.contains("image/png"));
    assert!(
        upload
            .body
            .windows(std::fs::read(&path).unwrap().len())
            .any(|w| w == std::fs::read(&path).unwrap())
    );

    let create = rec.last("/api/v1/services/aigc/image2image/image-synthesis");
    assert_eq!(
        header(&create, "x-dashscope-ossresourceresolve"),
        Some("enable")
    );
    let body: Value = serde_json::from_slice(&create.body).unwrap();
    assert_eq!(
        body["input"]["base_image_url"],
        "oss://dashscope-instant/abc/2025-01-01/u1/my_base.png"
    );
}

#[tokio::test]
async fn prepare_uploads_a_file_used_twice_once() {
    let (rec, addr) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("same.png");
    ImageBuffer::from_pixel(600, 600, Rgb([255u8, 255, 255]))
        .save_with_format(&path, ImageFormat::Png)
        .unwrap();
    let mut spec = JobSpec::new(Model::WanxXPainting, "a cat");
    spec.base_image = Some(ImageRef::File(path.clone()));
    spec.mask_image = Some(ImageRef::File(path));
    let prepared = client(addr).prepare(&spec).await.unwrap();
    assert!(prepared.base_image.as_ref().unwrap().is_oss());
    assert_eq!(prepared.base_image, prepared.mask_image);
    assert_eq!(rec.all().iter().filter(|s| s.path == "/oss").count(), 1);
}

#[tokio::test]
async fn cancel_is_an_empty_post_without_content_type() {
    let (rec, addr) = server().await;
    client(addr).cancel("task-1").await.unwrap();
    let seen = rec.last("/api/v1/tasks/task-1/cancel");
    assert_eq!(seen.method, "POST");
    assert!(seen.body.is_empty());
    assert_eq!(header(&seen, "content-type"), None);
    assert_eq!(
        header(&seen, "authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
}

#[tokio::test]
async fn list_sends_its_filters_as_the_sdk_does() {
    let (rec, addr) = server().await;
    let query = ListQuery {
        page_no: 2,
        page_size: 5,
        start_time: Some("20250101000000".into()),
        end_time: Some("20250102000000".into()),
        model_name: Some("wanx2.1-t2i-turbo".into()),
        status: Some(TaskStatus::Succeeded),
    };
    let list = client(addr).list(&query).await.unwrap();
    assert_eq!((list.page_no, list.page_size, list.total), (2, 5, 0));
    assert_eq!(
        rec.last("/api/v1/tasks").query,
        "page_no=2&page_size=5&start_time=20250101000000&end_time=20250102000000&model_name=wanx2.1-t2i-turbo&status=SUCCEEDED"
    );
    client(addr).list(&ListQuery::default()).await.unwrap();
    assert_eq!(rec.last("/api/v1/tasks").query, "page_no=1&page_size=10");
}

#[tokio::test]
async fn downloads_carry_no_key_and_stop_at_the_byte_limit() {
    let (rec, addr) = server().await;
    let client = client(addr);
    let bytes = client
        .download(&format!("http://{addr}/img/small"), 1000)
        .await
        .unwrap();
    assert_eq!(bytes, vec![7u8; 1000]);
    assert_eq!(header(&rec.last("/img/small"), "authorization"), None);

    // Refused on Content-Length alone...
    let err = client
        .download(&format!("http://{addr}/img/small"), 999)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Protocol(m) if m.contains("limit of 999")),
        "{err:?}"
    );
    // ...and by counting a stream that has none.
    let bytes = client
        .download(&format!("http://{addr}/img/chunked"), 10_000)
        .await
        .unwrap();
    assert_eq!(bytes.len(), 10_000);
    let err = client
        .download(&format!("http://{addr}/img/chunked"), 9_999)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Protocol(m) if m.contains("limit of 9999")),
        "{err:?}"
    );
    assert!(
        rec.all()
            .iter()
            .all(|s| !s.path.starts_with("/img") || s.headers.get("authorization").is_none())
    );

    let err = client
        .download(&format!("http://{addr}/img/missing"), 10_000)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 404, code, .. } if code == "Unknown"),
        "{err:?}"
    );
    let err = client
        .download("file:///etc/passwd", 10_000)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::Protocol(_)), "{err:?}");
}

#[tokio::test]
async fn a_non_json_error_body_reads_as_unknown_with_a_clean_excerpt() {
    let (_rec, addr) = server().await;
    let err = client(addr).fetch("html").await.unwrap_err();
    match &err {
        ClientError::Api {
            status: 502,
            code,
            message,
            request_id: None,
        } => {
            assert_eq!(code, "Unknown");
            assert!(message.starts_with("<html><body>]52;c;evil"), "{message}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
            assert!(
                message.chars().count() <= 201,
                "an excerpt, not the whole page"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.action(), ErrorAction::RetryLater);
}

#[tokio::test]
async fn msg_is_read_in_place_of_message() {
    let (_rec, addr) = server().await;
    let err = client(addr).fetch("msg").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status: 429, code, message, .. }
            if code == "Throttling.RateQuota" && message == "Requests rate limit exceeded"),
        "{err:?}"
    );
    assert_eq!(err.action(), ErrorAction::RetryLater);
}

#[tokio::test]
async fn an_unreadable_success_is_a_protocol_error() {
    let (_rec, addr) = server().await;
    let err = client(addr).fetch("garbage").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Protocol(m) if m.contains("this is not json")),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_timeout_is_a_transport_error_to_retry() {
    let (_rec, addr) = server().await;
    let client = Client::with_timeouts(
        &format!("http://{addr}/api/v1"),
        ApiKey::new(KEY.into()),
        Duration::from_secs(2),
        Duration::from_millis(200),
    )
    .unwrap();
    let err = client.fetch("slow").await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Transport(m) if m.starts_with("timed out")),
        "{err:?}"
    );
    assert_eq!(err.action(), ErrorAction::RetryLater);
    assert_no_key(&format!("{err} {err:?}"));
}

#[tokio::test]
async fn refused_connections_are_unreachable_and_dropped_ones_transport_errors_without_the_key() {
    // A port that was free a moment ago: nothing listens there now, so nothing was sent.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let err = client(closed).fetch("task-1").await.unwrap_err();
    assert!(matches!(err, ClientError::Unreachable(_)), "{err:?}");
    assert_eq!(err.action(), ErrorAction::RetryLater);
    assert_no_key(&format!("{err} {err:?}"));

    // A server that accepts and hangs up without answering: the request may have landed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let spec = JobSpec::new(Model::Wanx21T2iPlus, "a lighthouse");
    let err = client(addr).create(&spec).await.unwrap_err();
    assert!(matches!(err, ClientError::Transport(_)), "{err:?}");
    assert_eq!(err.action(), ErrorAction::RetryLater);
    assert_no_key(&format!("{err} {err:?}"));
}
