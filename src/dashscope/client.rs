//! The HTTP client for DashScope's asynchronous image-synthesis API.
//!
//! One `reqwest::Client` shared behind an `Arc`; the API key is added per request (never
//! as a default header) so that downloads of result images, which go to public OSS links,
//! cannot carry it by accident.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, DATE, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::Deserialize;

use super::Timestamp;
use super::error::ClientError;
use super::messages::{Choice, Usage, choice_parts};
use super::models::Endpoint;
use super::spec::{ImageRef, JobSpec};
use super::validate::{ValidationError, region_refusal, validate};
use super::wire::{
    ListQuery, TaskCreated, TaskInfo, TaskList, TaskMetrics, TaskResult, TaskStatus, TaskSummary,
};
use super::{Model, Region};

pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How much of a non-JSON error body is kept for the message.
const ERROR_EXCERPT_CHARS: usize = 200;

/// The most wandash reads of any JSON answer (create, task, list, upload policy, error).
/// The largest real answer, a list page of 100 tasks, is some 60 KB; a task answer with
/// four results, under 4 KB.
pub const MAX_ANSWER_BYTES: u64 = 1024 * 1024;

/// A DashScope API key. Never printed: `Debug` shows `ApiKey(***)` and there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: String) -> Self {
        ApiKey(key)
    }

    /// `DASHSCOPE_API_KEY`, trimmed; `None` when unset or blank.
    pub fn from_env() -> Option<Self> {
        let key = std::env::var("DASHSCOPE_API_KEY").ok()?;
        let key = key.trim();
        (!key.is_empty()).then(|| ApiKey(key.to_string()))
    }

    /// The key itself, for building the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// A DashScope client. Cheap to clone: clones share one connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
    /// Decides which models may be sent and the id each goes by (`Model::id_in`).
    region: Region,
}

struct Inner {
    http: reqwest::Client,
    base_url: String,
    /// `Bearer <key>`, marked sensitive so that reqwest and http never print it.
    authorization: HeaderValue,
    /// How long one exchange may take, the body read included.
    request_timeout: Duration,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `base_url` (e.g. `Region::Beijing.base_url()`, or a simulator's
    /// `http://127.0.0.1:PORT/api/v1`), with a 10 s connect and 60 s request timeout.
    pub fn new(base_url: &str, key: ApiKey) -> Result<Client, ClientError> {
        Client::with_timeouts(
            base_url,
            key,
            DEFAULT_CONNECT_TIMEOUT,
            DEFAULT_REQUEST_TIMEOUT,
        )
    }

    pub fn with_timeouts(
        base_url: &str,
        key: ApiKey,
        connect: Duration,
        request: Duration,
    ) -> Result<Client, ClientError> {
        let base_url = base_url.trim().trim_end_matches('/').to_string();
        let parsed = reqwest::Url::parse(&base_url).map_err(|e| {
            ValidationError::new("base_url", format!("`{base_url}` is not a URL: {e}"))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ValidationError::new(
                "base_url",
                format!("`{base_url}` must be an http(s) URL"),
            )
            .into());
        }
        if key.expose().trim().is_empty() {
            return Err(ValidationError::new("api_key", "is empty; set DASHSCOPE_API_KEY").into());
        }
        let mut authorization = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
            .map_err(|_| {
                // Never echo the key: say what is wrong with it, not what it is.
                ValidationError::new(
                    "api_key",
                    "contains characters that cannot be sent in an HTTP header",
                )
            })?;
        authorization.set_sensitive(true);
        // No redirects: DashScope's API does not redirect, and following one would re-send
        // a create (prompt, images, key) to wherever the answer points. No Referer: a
        // signed result URL must not travel to another host. `timeout` bounds the whole
        // exchange, the body read included, so a trickling answer is cut too.
        let http = reqwest::Client::builder()
            .connect_timeout(connect)
            .timeout(request)
            .redirect(reqwest::redirect::Policy::none())
            .referer(false)
            .user_agent(concat!("wandash/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Transport(error_chain(&e)))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base_url,
                authorization,
                request_timeout: request,
            }),
            region: Region::Beijing,
        })
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// This client for the models of `region` (Beijing unless told): a model it does not
    /// offer is refused before anything is sent, and the others go by its ids.
    pub fn in_region(mut self, region: Region) -> Client {
        self.region = region;
        self
    }

    pub fn region(&self) -> Region {
        self.region
    }

    /// How long a request may take before it is given up: past it, no create of this
    /// client is still waiting for its answer.
    pub fn request_timeout(&self) -> Duration {
        self.inner.request_timeout
    }

    /// The id `model` goes by in this client's region; the refusal names the regions
    /// that offer it.
    pub fn wire_model_id(&self, model: Model) -> Result<&'static str, ValidationError> {
        model
            .id_in(self.region)
            .ok_or_else(|| region_refusal(model, self.region))
    }

    /// Validates the job, resolves local files (see `prepare`), then submits it to the
    /// model's preferred endpoint. A model served only synchronously has no task to
    /// create: its jobs go through `call_sync`.
    pub async fn create(&self, spec: &JobSpec) -> Result<TaskCreated, ClientError> {
        match spec.model.endpoint() {
            Endpoint::ImageGeneration => return self.create_generation(spec).await,
            Endpoint::MultimodalGeneration => {
                return Err(ValidationError::new(
                    "model",
                    format!(
                        "{} is served only synchronously; its jobs are made with one call, not a task",
                        spec.model
                    ),
                )
                .into());
            }
            Endpoint::TextToImage | Endpoint::ImageToImage => {}
        }
        validate(spec)?;
        let model_id = self.wire_model_id(spec.model)?;
        let endpoint = spec.model.endpoint();
        let prepared;
        let spec = if spec
            .image_refs()
            .iter()
            .any(|(_, image)| matches!(image, ImageRef::File(_)))
        {
            prepared = self.prepare(spec).await?;
            &prepared
        } else {
            spec
        };
        let body = spec.to_wire_as(model_id).map_err(|e| {
            ValidationError::new(
                e.field.clone(),
                format!("local file {} was not uploaded", e.path.display()),
            )
        })?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        let mut request = self
            .api(Method::POST, endpoint.path())
            .header("X-DashScope-Async", "enable")
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body);
        if spec.image_refs().iter().any(|(_, image)| image.is_oss()) {
            request = request.header("X-DashScope-OssResourceResolve", "enable");
        }
        self.send_create(request).await
    }

    /// Sends a create and reads its answer: the task id, checked.
    pub(super) async fn send_create(
        &self,
        request: RequestBuilder,
    ) -> Result<TaskCreated, ClientError> {
        let answer: CreateAnswer = self.send_json(request).await?;
        // Checked here, where the id enters: every later call puts it in a URL path, and
        // the store keys the job by it.
        check_task_id(&answer.output.task_id).map_err(|_| {
            // The id exactly as answered, for finding the task in the service's list: the
            // log file escapes what the error message strips.
            tracing::warn!(task = %answer.output.task_id, "task created with an id that cannot be used; not followed");
            ClientError::WrongAnswer(format!(
                "the create answered task id `{}`, which is not a task id (letters, digits, - _ . only, 1 to {MAX_TASK_ID_CHARS})",
                excerpt(&answer.output.task_id)
            ))
        })?;
        Ok(TaskCreated {
            task_id: answer.output.task_id,
            task_status: answer.output.task_status,
            request_id: answer.request_id,
        })
    }

    /// The task's state; a task the service does not know reads `UNKNOWN`.
    pub async fn fetch(&self, task_id: &str) -> Result<TaskInfo, ClientError> {
        check_task_id(task_id)?;
        let answer: FetchAnswer = self
            .send_json(self.api(Method::GET, &format!("/tasks/{task_id}")))
            .await?;
        Ok(answer.into_info())
    }

    /// Cancels a PENDING task; any other is refused with `UnsupportedOperation`.
    pub async fn cancel(&self, task_id: &str) -> Result<(), ClientError> {
        check_task_id(task_id)?;
        // An empty POST: no body and no Content-Type, as the service expects.
        let response = self
            .send(self.api(Method::POST, &format!("/tasks/{task_id}/cancel")))
            .await?;
        // A 2xx is the whole answer; the body (a request id) is read only to free the connection.
        let _ = read_body(response, MAX_ANSWER_BYTES, "the cancel answer").await;
        Ok(())
    }

    /// One page of the account's tasks; how a task created but never recorded is found.
    pub async fn list(&self, query: &ListQuery) -> Result<TaskList, ClientError> {
        let mut params: Vec<(&str, String)> = vec![
            ("page_no", query.page_no.max(1).to_string()),
            (
                "page_size",
                if query.page_size == 0 {
                    10
                } else {
                    query.page_size
                }
                .to_string(),
            ),
        ];
        for (name, value) in [
            ("start_time", &query.start_time),
            ("end_time", &query.end_time),
            ("model_name", &query.model_name),
        ] {
            if let Some(value) = value {
                params.push((name, value.clone()));
            }
        }
        if let Some(status) = query.status {
            params.push(("status", status.as_str().to_string()));
        }
        let params: Vec<(&str, &str)> = params
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let response = self
            .send(self.api_query(Method::GET, "/tasks", &params))
            .await?;
        let service_time = response
            .headers()
            .get(DATE)
            .and_then(|date| date.to_str().ok())
            .and_then(Timestamp::parse_http_date);
        let answer: ListAnswer =
            decode_json(&read_body(response, MAX_ANSWER_BYTES, "the answer").await?)?;
        Ok(TaskList {
            total: answer.total,
            total_page: answer.total_page,
            page_no: answer.page_no,
            page_size: answer.page_size,
            data: answer.data,
            service_time,
        })
    }

    /// Downloads a result image. Result URLs are public OSS links: the request carries no
    /// `Authorization` header. The body is counted as it streams, so a lying or missing
    /// Content-Length cannot make it read more than `max_bytes`.
    pub async fn download(&self, url: &str, max_bytes: u64) -> Result<Vec<u8>, ClientError> {
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            ClientError::Protocol(format!(
                "result URL `{}` is not a URL: {e}",
                crate::text::sanitize(url)
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ClientError::Protocol(format!(
                "result URL `{}` is not an http(s) URL",
                crate::text::sanitize(url)
            )));
        }
        let path = parsed.path().to_string();
        let response = self
            .inner
            .http
            .get(parsed)
            .send()
            .await
            .map_err(transport)?;
        let status = response.status();
        tracing::debug!(method = "GET", path = %path, status = status.as_u16(), "download");
        if !status.is_success() {
            return Err(api_error(response).await);
        }
        read_body(response, max_bytes, &format!("the image at {path}")).await
    }

    /// The bare HTTP client, for requests that must not carry the key.
    pub(super) fn http(&self) -> &reqwest::Client {
        &self.inner.http
    }

    /// A request to `{base_url}{path}` with the key.
    pub(super) fn api(&self, method: Method, path: &str) -> RequestBuilder {
        self.api_query(method, path, &[])
    }

    /// Like `api`, with query parameters (percent-encoded here).
    pub(super) fn api_query(
        &self,
        method: Method,
        path: &str,
        params: &[(&str, &str)],
    ) -> RequestBuilder {
        let url = format!("{}{path}", self.inner.base_url);
        // `new` checked that the base URL parses; were it not to, reqwest reports it on send.
        let request = match reqwest::Url::parse(&url) {
            Ok(mut url) => {
                if !params.is_empty() {
                    url.query_pairs_mut().extend_pairs(params);
                }
                self.inner.http.request(method, url)
            }
            Err(_) => self.inner.http.request(method, url),
        };
        request.header(AUTHORIZATION, self.inner.authorization.clone())
    }

    /// Sends a request, maps a non-2xx answer to `Api`, and parses a 2xx body as `T`.
    pub(super) async fn send_json<T: for<'de> Deserialize<'de>>(
        &self,
        request: RequestBuilder,
    ) -> Result<T, ClientError> {
        let response = self.send(request).await?;
        decode_json(&read_body(response, MAX_ANSWER_BYTES, "the answer").await?)
    }

    /// Sends a request and returns a 2xx response, or the error the answer describes.
    pub(super) async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let request = request.build().map_err(transport)?;
        let (method, path) = (request.method().clone(), request.url().path().to_string());
        let response = self.inner.http.execute(request).await.map_err(transport)?;
        let status = response.status();
        tracing::debug!(method = %method, path = %path, status = status.as_u16(), "dashscope call");
        if status.is_success() {
            Ok(response)
        } else {
            Err(api_error(response).await)
        }
    }
}

/// A JSON answer's body as `T`, or what is wrong with it.
fn decode_json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ClientError::Protocol(format!(
            "cannot read the answer ({e}): {}",
            excerpt(&String::from_utf8_lossy(bytes))
        ))
    })
}

/// Reads a body of at most `limit` bytes, counted as it streams: neither a lying or
/// missing Content-Length nor an endless stream makes it read more. `what` names the
/// body in the error. The client's request timeout still bounds how long this takes.
async fn read_body(mut response: Response, limit: u64, what: &str) -> Result<Vec<u8>, ClientError> {
    let too_big = |got: u64| {
        ClientError::Protocol(format!(
            "{what} is {got} bytes or more, over the limit of {limit} bytes"
        ))
    };
    if let Some(length) = response.content_length().filter(|&length| length > limit) {
        return Err(too_big(length));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        let got = body.len() as u64 + chunk.len() as u64;
        if got > limit {
            return Err(too_big(got));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The longest task id accepted; the service's are 36-character UUIDs.
const MAX_TASK_ID_CHARS: usize = 128;

/// Task ids go into the URL path: refuse anything that would change the path.
fn check_task_id(task_id: &str) -> Result<(), ClientError> {
    let ok = !task_id.is_empty()
        && task_id.len() <= MAX_TASK_ID_CHARS
        && task_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && task_id != "."
        && task_id != "..";
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "task_id",
            format!(
                "`{}` is not a task id (letters, digits, - _ . only, 1 to 128)",
                crate::text::sanitize(task_id)
            ),
        )
        .into())
    }
}

/// Reads an error answer: JSON `{code, message | msg, request_id}` or anything else as
/// `Unknown`. A redirect is an error of its own: wandash does not follow it.
pub(super) async fn api_error(response: Response) -> ClientError {
    let status = response.status();
    if status.is_redirection() {
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .map(|l| crate::text::sanitize(&String::from_utf8_lossy(l.as_bytes())))
            .unwrap_or_default();
        return ClientError::Protocol(format!(
            "HTTP {status} redirect to `{}`; wandash does not follow redirects (check base_url)",
            excerpt(&location)
        ));
    }
    match read_body(response, MAX_ANSWER_BYTES, "the error answer").await {
        Ok(bytes) => error_from_body(status, &bytes),
        Err(e) => e,
    }
}

fn error_from_body(status: StatusCode, bytes: &[u8]) -> ClientError {
    #[derive(Deserialize)]
    struct ErrorBody {
        code: Option<String>,
        message: Option<String>,
        msg: Option<String>,
        request_id: Option<String>,
    }
    let text = String::from_utf8_lossy(bytes);
    let reason = status.canonical_reason().unwrap_or("no reason given");
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body
                .code
                .filter(|c| !c.is_empty())
                .map(|c| crate::text::sanitize(&c))
                .unwrap_or_else(|| "Unknown".into()),
            message: body
                .message
                .or(body.msg)
                .map(|m| crate::text::sanitize(&m))
                .unwrap_or_else(|| reason.to_string()),
            request_id: body.request_id.map(|r| crate::text::sanitize(&r)),
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "Unknown".into(),
            message: if text.trim().is_empty() {
                reason.to_string()
            } else {
                excerpt(&text)
            },
            request_id: None,
        },
    }
}

/// A short, one-line, terminal-safe excerpt of text from the network.
fn excerpt(text: &str) -> String {
    let clean = crate::text::sanitize(text.trim());
    let mut short: String = clean.chars().take(ERROR_EXCERPT_CHARS).collect();
    if clean.chars().count() > ERROR_EXCERPT_CHARS {
        short.push('…');
    }
    short
}

/// How a `Transport` error that ran out of time begins (`ClientError::is_timeout`).
pub(super) const TIMED_OUT: &str = "timed out: ";

/// No answer at all. reqwest's messages name the URL (never a header), plus its causes.
pub(super) fn transport(error: reqwest::Error) -> ClientError {
    if error.is_connect() {
        return ClientError::Unreachable(error_chain(&error));
    }
    let kind = if error.is_timeout() { TIMED_OUT } else { "" };
    ClientError::Transport(format!("{kind}{}", error_chain(&error)))
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

#[derive(Deserialize)]
struct CreateAnswer {
    output: CreatedOutput,
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct CreatedOutput {
    task_id: String,
    task_status: TaskStatus,
}

#[derive(Deserialize)]
struct FetchAnswer {
    request_id: Option<String>,
    output: FetchOutput,
    #[serde(default)]
    usage: Option<Usage>,
}

#[derive(Deserialize)]
struct FetchOutput {
    task_id: String,
    task_status: TaskStatus,
    submit_time: Option<String>,
    scheduled_time: Option<String>,
    end_time: Option<String>,
    #[serde(default)]
    results: Vec<TaskResult>,
    /// Image-generation tasks answer `choices` instead of `results`.
    #[serde(default)]
    choices: Vec<Choice>,
    task_metrics: Option<TaskMetrics>,
    code: Option<String>,
    #[serde(alias = "msg")]
    message: Option<String>,
}

impl FetchAnswer {
    fn into_info(self) -> TaskInfo {
        let output = self.output;
        let parts = choice_parts(&output.choices);
        let mut results = output.results;
        results.extend(parts.results);
        TaskInfo {
            task_id: output.task_id,
            status: output.task_status,
            submit_time: output.submit_time,
            scheduled_time: output.scheduled_time,
            end_time: output.end_time,
            results,
            texts: parts.texts,
            metrics: output.task_metrics,
            code: output.code,
            message: output.message,
            image_count: self.usage.and_then(|u| u.image_count),
            request_id: self.request_id,
        }
    }
}

#[derive(Deserialize)]
struct ListAnswer {
    total: u64,
    total_page: u64,
    page_no: u32,
    page_size: u32,
    #[serde(default)]
    data: Vec<TaskSummary>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::Timestamp;

    fn parse_fetch(text: &str) -> TaskInfo {
        serde_json::from_str::<FetchAnswer>(text)
            .expect("parses")
            .into_info()
    }

    #[test]
    fn api_key_is_never_printed() {
        let key = ApiKey::new("sk-secret-123".into());
        assert_eq!(format!("{key:?}"), "ApiKey(***)");
        let client = Client::new("http://127.0.0.1:9/api/v1", key).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("sk-secret-123"), "{debug}");
        assert!(debug.contains("127.0.0.1:9"), "{debug}");
    }

    #[test]
    fn a_key_that_cannot_be_a_header_is_refused_without_echoing_it() {
        let err = Client::new(
            "http://127.0.0.1:9/api/v1",
            ApiKey::new("sk-bad\nkey".into()),
        )
        .unwrap_err();
        assert!(matches!(&err, ClientError::Invalid(v) if v.field == "api_key"));
        assert!(!err.to_string().contains("sk-bad"), "{err}");
        let err = Client::new("ftp://example.com", ApiKey::new("k".into())).unwrap_err();
        assert!(matches!(&err, ClientError::Invalid(v) if v.field == "base_url"));
    }

    #[test]
    fn base_url_loses_its_trailing_slash() {
        let client = Client::new("http://127.0.0.1:9/api/v1/", ApiKey::new("k".into())).unwrap();
        assert_eq!(client.base_url(), "http://127.0.0.1:9/api/v1");
    }

    #[test]
    fn a_succeeded_text_to_image_task_parses_with_unknown_fields() {
        let info = parse_fetch(
            r#"{"request_id":"f767d108","output":{"task_id":"d492bffd","task_status":"SUCCEEDED",
            "submit_time":"2025-01-08 16:03:59.840","scheduled_time":"2025-01-08 16:03:59.863",
            "end_time":"2025-01-08 16:04:10.660","results":[
              {"orig_prompt":"一间有着精致窗户的花店","actual_prompt":"一间温馨的花店","url":"https://x/1.png"},
              {"code":"InternalError.Algo","message":"inner error"}],
            "task_metrics":{"TOTAL":2,"SUCCEEDED":1,"FAILED":1},"extra_field":{"a":1}},
            "usage":{"image_count":1},"unexpected":true}"#,
        );
        assert_eq!(info.task_id, "d492bffd");
        assert_eq!(info.status, TaskStatus::Succeeded);
        assert_eq!(info.submit_time.as_deref(), Some("2025-01-08 16:03:59.840"));
        assert_eq!(info.end_time.as_deref(), Some("2025-01-08 16:04:10.660"));
        assert_eq!(
            info.metrics,
            Some(TaskMetrics {
                total: 2,
                succeeded: 1,
                failed: 1
            })
        );
        assert_eq!(info.image_count, Some(1));
        assert_eq!(info.request_id.as_deref(), Some("f767d108"));
        assert_eq!(
            info.results,
            vec![
                TaskResult::Image {
                    url: "https://x/1.png".into(),
                    orig_prompt: Some("一间有着精致窗户的花店".into()),
                    actual_prompt: Some("一间温馨的花店".into())
                },
                TaskResult::Failed {
                    code: "InternalError.Algo".into(),
                    message: "inner error".into()
                },
            ]
        );
    }

    #[test]
    fn failed_pending_and_unknown_tasks_parse() {
        let failed = parse_fetch(
            r#"{"request_id":"r","output":{"task_id":"t","task_status":"FAILED",
            "code":"InvalidParameter","msg":"image too small"}}"#,
        );
        assert_eq!(failed.status, TaskStatus::Failed);
        assert_eq!(failed.code.as_deref(), Some("InvalidParameter"));
        assert_eq!(failed.message.as_deref(), Some("image too small"));
        assert!(failed.results.is_empty());

        let pending = parse_fetch(
            r#"{"request_id":"r","output":{"task_id":"t","task_status":"PENDING","task_metrics":{"TOTAL":4,"SUCCEEDED":0,"FAILED":0}}}"#,
        );
        assert_eq!(pending.status, TaskStatus::Pending);
        assert_eq!(pending.image_count, None);

        let unknown =
            parse_fetch(r#"{"request_id":"r","output":{"task_id":"t","task_status":"UNKNOWN"}}"#);
        assert_eq!(unknown.status, TaskStatus::Unknown);
    }

    #[test]
    fn the_create_answer_and_list_answer_parse() {
        let created: CreateAnswer = serde_json::from_str(
            r#"{"output":{"task_status":"PENDING","task_id":"0385dc79-5ff8"},"request_id":"4909100c"}"#,
        )
        .unwrap();
        assert_eq!(created.output.task_id, "0385dc79-5ff8");
        assert_eq!(created.output.task_status, TaskStatus::Pending);

        let list: ListAnswer = serde_json::from_str(
            r#"{"total":1,"total_page":1,"page_no":1,"page_size":10,"request_id":"r","data":[
            {"task_id":"t1","status":"SUCCEEDED","model_name":"wanx2.1-t2i-turbo","gmt_create":1709260684485,
             "start_time":1709260684527,"end_time":1709260685184,"region":"cn-beijing","request_id":"r1",
             "api_key_id":"hidden","caller_uid":"u"}]}"#,
        )
        .unwrap();
        assert_eq!(
            (list.total, list.total_page, list.page_no, list.page_size),
            (1, 1, 1, 10)
        );
        assert_eq!(list.data[0].status, TaskStatus::Succeeded);
        assert_eq!(
            list.data[0].gmt_create,
            Some(Timestamp::from_millis(1709260684485))
        );
        assert_eq!(
            list.data[0].model_name.as_deref(),
            Some("wanx2.1-t2i-turbo")
        );
    }

    #[test]
    fn error_bodies_map_to_api_errors() {
        let err = error_from_body(
            StatusCode::UNAUTHORIZED,
            br#"{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"r1"}"#,
        );
        assert_eq!(
            err,
            ClientError::Api {
                status: 401,
                code: "InvalidApiKey".into(),
                message: "Invalid API-key provided.".into(),
                request_id: Some("r1".into())
            }
        );
        let err = error_from_body(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"code":"Throttling","msg":"slow down"}"#,
        );
        assert!(matches!(&err, ClientError::Api { message, .. } if message == "slow down"));

        let html = format!("<html>\x1b[31m{}</html>", "x".repeat(1000));
        let err = error_from_body(StatusCode::BAD_GATEWAY, html.as_bytes());
        match &err {
            ClientError::Api {
                status: 502,
                code,
                message,
                request_id: None,
            } => {
                assert_eq!(code, "Unknown");
                assert!(message.starts_with("<html>[31m"), "{message}");
                assert!(message.chars().count() <= ERROR_EXCERPT_CHARS + 1);
                assert!(!message.contains('\x1b'));
            }
            other => panic!("{other:?}"),
        }
        let err = error_from_body(StatusCode::SERVICE_UNAVAILABLE, b"");
        assert!(
            matches!(&err, ClientError::Api { code, message, .. } if code == "Unknown" && message == "Service Unavailable")
        );
    }

    #[test]
    fn task_ids_that_would_change_the_path_are_refused() {
        for bad in ["", "..", "a/b", "a?b=1", "a b", "中"] {
            assert!(
                matches!(check_task_id(bad), Err(ClientError::Invalid(v)) if v.field == "task_id"),
                "{bad}"
            );
        }
        assert!(check_task_id("0385dc79-5ff8-4d82-bcb6-xxxxxx").is_ok());
    }
}
