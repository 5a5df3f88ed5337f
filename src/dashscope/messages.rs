//! The messages protocol of the image-generation endpoint (asynchronous: create, then
//! poll `/tasks/{id}`) and the multimodal-generation endpoint (synchronous: the answer
//! holds the images), API-CURRENT.md section 1 "G" and "M".
//!
//! Both take `input.messages` (one user message whose content is image parts and one text
//! part) and answer `output.choices[].message.content[]`. The request body is built from
//! the prompt-style body `JobSpec::to_wire` makes, so every parameter a model takes is
//! written once; `prompt_body` is the way back, for the simulator to judge a messages
//! body with the same `JobSpec::from_wire` and validation as any other.

use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::client::Client;
use super::error::ClientError;
use super::spec::{ImageRef, JobSpec, Size, UnresolvedImage, WireError};
use super::validate::{ValidationError, validate};
use super::wire::{TaskCreated, TaskResult};

/// The asynchronous image-generation endpoint ("G"), under the base URL.
pub const GENERATION_PATH: &str = "/services/aigc/image-generation/generation";
/// The synchronous multimodal-generation endpoint ("M"), under the base URL.
pub const MULTIMODAL_PATH: &str = "/services/aigc/multimodal-generation/generation";

/// How long a synchronous call may hold its connection by default (the config's
/// `[sync] call_timeout_ms`): the service generates the images before it answers, which
/// takes tens of seconds and at times one to two minutes (u: API-CURRENT.md gives 28 s to
/// 1-2 minutes for wan2.6).
pub const DEFAULT_SYNC_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(180);

/// The `input` fields of a prompt-style body that hold input images, in the order the
/// images go into the message (a single base image first, then the list).
const IMAGE_INPUTS: [&str; 2] = ["base_image_url", "images"];

/// The messages body of `spec`: its prompt-style body with `input` replaced by one user
/// message (image parts first, then the text, as the vendor's examples write it) and
/// `negative_prompt` moved to `parameters`, where these endpoints take it.
pub fn messages_body(spec: &JobSpec, model_id: &str) -> Result<Value, UnresolvedImage> {
    let mut body = spec.to_wire_as(model_id)?;
    let input = match body.get_mut("input").map(Value::take) {
        Some(Value::Object(input)) => input,
        _ => Map::new(),
    };
    Ok(into_messages(body, input))
}

fn into_messages(mut body: Value, mut input: Map<String, Value>) -> Value {
    let mut content: Vec<Value> = Vec::new();
    for field in IMAGE_INPUTS {
        match input.remove(field) {
            Some(Value::String(url)) => content.push(json!({ "image": url })),
            Some(Value::Array(urls)) => {
                content.extend(urls.into_iter().map(|url| json!({ "image": url })));
            }
            _ => {}
        }
    }
    let prompt = input.remove("prompt").unwrap_or_else(|| json!(""));
    content.push(json!({ "text": prompt }));
    if let Some(negative) = input.remove("negative_prompt") {
        if !body.get("parameters").is_some_and(Value::is_object) {
            body["parameters"] = json!({});
        }
        body["parameters"]["negative_prompt"] = negative;
    }
    body["input"] = json!({ "messages": [{ "role": "user", "content": content }] });
    body
}

/// Reads a messages body back into the prompt-style body `JobSpec::from_wire` reads:
/// the text becomes `input.prompt`, the image parts `input.images`, and `negative_prompt`
/// returns to `input`. Errors name the malformed part.
pub fn prompt_body(body: &Value) -> Result<Value, WireError> {
    let bad = |message: &str| WireError::Field {
        field: "input.messages",
        message: message.to_string(),
    };
    let messages = match body.get("input").and_then(|input| input.get("messages")) {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(_) => return Err(bad("must be a non-empty list of messages")),
        None => return Err(bad("is required")),
    };
    // The service reads the last user message; earlier turns are context it ignores here.
    let message = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .ok_or_else(|| bad("has no message with role `user`"))?;
    let Some(Value::Array(parts)) = message.get("content") else {
        return Err(bad(
            "content must be a list of {\"text\"} and {\"image\"} parts",
        ));
    };
    let mut text: Option<&str> = None;
    let mut images = Vec::new();
    for part in parts {
        match (part.get("text"), part.get("image")) {
            (Some(Value::String(t)), None) => {
                if text.replace(t).is_some() {
                    return Err(bad("content must hold exactly one text part"));
                }
            }
            (None, Some(Value::String(url))) => images.push(json!(url)),
            _ => {
                return Err(bad(
                    "each content part must be {\"text\": string} or {\"image\": string}",
                ));
            }
        }
    }
    let mut input = Map::new();
    input.insert("prompt".into(), json!(text.unwrap_or_default()));
    if !images.is_empty() {
        input.insert("images".into(), Value::Array(images));
    }
    let mut out = body.clone();
    if let Some(Value::Object(parameters)) = out.get_mut("parameters")
        && let Some(negative) = parameters.remove("negative_prompt")
    {
        input.insert("negative_prompt".into(), negative);
    }
    out["input"] = Value::Object(input);
    Ok(out)
}

/// One `choices[]` entry of a task or a synchronous answer.
#[derive(Debug, Deserialize)]
pub(super) struct Choice {
    #[serde(default)]
    message: Option<ChoiceMessage>,
}

#[derive(Debug, Deserialize)]
struct ChoiceMessage {
    #[serde(default)]
    content: Vec<Value>,
}

/// What the choices hold: every part with an `image` key is a result image (in order, one
/// slot each); text parts (interleaved output) are kept as text.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct ChoiceParts {
    pub results: Vec<TaskResult>,
    pub texts: Vec<String>,
}

pub(super) fn choice_parts(choices: &[Choice]) -> ChoiceParts {
    let mut parts = ChoiceParts::default();
    let content = choices
        .iter()
        .filter_map(|c| c.message.as_ref())
        .flat_map(|m| &m.content);
    for part in content {
        match (part.get("image"), part.get("text")) {
            (Some(Value::String(url)), _) => parts.results.push(TaskResult::Image {
                url: url.clone(),
                orig_prompt: None,
                actual_prompt: None,
            }),
            // An image part without a usable URL still stands for an image the task made:
            // its slot fails with the reason instead of disappearing.
            (Some(other), _) => parts.results.push(TaskResult::Failed {
                code: "WrongAnswer".into(),
                message: format!(
                    "an image part of the answer holds {}, not a URL",
                    kind_of(other)
                ),
            }),
            (None, Some(Value::String(text))) => parts.texts.push(text.clone()),
            _ => {}
        }
    }
    parts
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `usage` of a synchronous answer or a finished task, in either shape the service
/// writes: `{width, height, image_count}` (qwen-image) or `{size: "W*H", image_count,
/// ...tokens}` (wan2.6 and later).
#[derive(Debug, Default, Deserialize)]
pub(super) struct Usage {
    pub image_count: Option<u32>,
    width: Option<u32>,
    height: Option<u32>,
    size: Option<String>,
}

impl Usage {
    pub fn size(&self) -> Option<Size> {
        match (self.width, self.height, &self.size) {
            (Some(width), Some(height), _) => Some(Size::new(width, height)),
            (_, _, Some(size)) => size.parse().ok(),
            _ => None,
        }
    }
}

/// The answer of a synchronous (multimodal-generation) call.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncAnswer {
    /// One entry per image part, in order.
    pub results: Vec<TaskResult>,
    /// Text parts of interleaved output.
    pub texts: Vec<String>,
    /// `usage.image_count`: images billed.
    pub image_count: Option<u32>,
    /// The output size `usage` reports.
    pub size: Option<Size>,
    pub request_id: Option<String>,
}

#[derive(Deserialize)]
struct SyncBody {
    output: SyncOutput,
    #[serde(default)]
    usage: Option<Usage>,
    request_id: Option<String>,
}

#[derive(Deserialize)]
struct SyncOutput {
    #[serde(default)]
    choices: Vec<Choice>,
}

impl SyncBody {
    fn into_answer(self) -> SyncAnswer {
        let parts = choice_parts(&self.output.choices);
        let usage = self.usage.unwrap_or_default();
        SyncAnswer {
            results: parts.results,
            texts: parts.texts,
            image_count: usage.image_count,
            size: usage.size(),
            request_id: self.request_id,
        }
    }
}

impl Client {
    /// Validates the job, resolves its local files, and builds the messages body; the
    /// body is ready to send and whether it names `oss://` uploads.
    async fn messages_request(&self, spec: &JobSpec) -> Result<(Vec<u8>, bool), ClientError> {
        validate(spec)?;
        let model_id = self.wire_model_id(spec.model)?;
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
        let body = messages_body(spec, model_id).map_err(|e| {
            ValidationError::new(
                e.field.clone(),
                format!("local file {} was not uploaded", e.path.display()),
            )
        })?;
        let oss = spec.image_refs().iter().any(|(_, image)| image.is_oss());
        let body = serde_json::to_vec(&body)
            .map_err(|e| ClientError::Protocol(format!("cannot encode the request: {e}")))?;
        Ok((body, oss))
    }

    /// Creates an image-generation task (`X-DashScope-Async: enable`); it is then polled
    /// with `fetch` like any task, its images read from `output.choices`.
    pub async fn create_generation(&self, spec: &JobSpec) -> Result<TaskCreated, ClientError> {
        let (body, oss) = self.messages_request(spec).await?;
        let mut request = self
            .api(Method::POST, GENERATION_PATH)
            .header("X-DashScope-Async", "enable")
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .body(body);
        if oss {
            request = request.header("X-DashScope-OssResourceResolve", "enable");
        }
        self.send_create(request).await
    }

    /// One synchronous multimodal-generation call: the connection is held until the
    /// images are made, at most `timeout` (then a `Transport` error whose `is_timeout`
    /// holds; the service may still make the images). Never with the async header, which
    /// this endpoint refuses with 403 AccessDenied.
    pub async fn call_sync(
        &self,
        spec: &JobSpec,
        timeout: std::time::Duration,
    ) -> Result<SyncAnswer, ClientError> {
        let (body, oss) = self.messages_request(spec).await?;
        let mut request = self
            .api(Method::POST, MULTIMODAL_PATH)
            .header(CONTENT_TYPE, "application/json; charset=utf-8")
            .timeout(timeout)
            .body(body);
        if oss {
            request = request.header("X-DashScope-OssResourceResolve", "enable");
        }
        let answer: SyncBody = self.send_json(request).await?;
        let answer = answer.into_answer();
        if answer.results.is_empty() {
            return Err(ClientError::WrongAnswer(format!(
                "the synchronous answer holds no image part (request {})",
                answer.request_id.as_deref().unwrap_or("without an id")
            )));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dashscope::Model;

    fn choices(json: &str) -> Vec<Choice> {
        serde_json::from_str(json).expect("parses")
    }

    #[test]
    fn a_spec_becomes_one_user_message_with_images_first_and_negative_prompt_in_parameters() {
        let mut spec = JobSpec::new(Model::Wan25I2iPreview, "put image 1 in image 2");
        spec.images = vec![
            ImageRef::Url("https://x/1.png".into()),
            ImageRef::DataUri("data:image/png;base64,AAAA".into()),
        ];
        spec.negative_prompt = Some("blur".into());
        spec.n = Some(2);
        spec.seed = Some(42);
        let body = messages_body(&spec, spec.model.id()).unwrap();
        assert_eq!(
            body["input"],
            json!({"messages": [{"role": "user", "content": [
                {"image": "https://x/1.png"},
                {"image": "data:image/png;base64,AAAA"},
                {"text": "put image 1 in image 2"}
            ]}]})
        );
        assert_eq!(
            body["parameters"],
            json!({"n": 2, "seed": 42, "negative_prompt": "blur"})
        );
        assert_eq!(body["model"], json!("wan2.5-i2i-preview"));
    }

    #[test]
    fn a_messages_body_reads_back_as_the_prompt_body_it_came_from() {
        let mut spec = JobSpec::new(Model::Wan25I2iPreview, "a cat");
        spec.images = vec![ImageRef::Url("https://x/1.png".into())];
        spec.negative_prompt = Some("dogs".into());
        spec.size = Some(Size::new(1280, 1280).into());
        let back = prompt_body(&messages_body(&spec, spec.model.id()).unwrap()).unwrap();
        assert_eq!(JobSpec::from_wire(&back).unwrap(), spec);
    }

    #[test]
    fn malformed_messages_are_refused_naming_the_part() {
        for body in [
            json!({"model": "m", "input": {}}),
            json!({"model": "m", "input": {"messages": []}}),
            json!({"model": "m", "input": {"messages": [{"role": "system", "content": []}]}}),
            json!({"model": "m", "input": {"messages": [{"role": "user", "content": "hi"}]}}),
            json!({"model": "m", "input": {"messages": [{"role": "user", "content": [{"text": "a"}, {"text": "b"}]}]}}),
            json!({"model": "m", "input": {"messages": [{"role": "user", "content": [{"image": 3}]}]}}),
        ] {
            let err = prompt_body(&body).unwrap_err();
            assert!(
                matches!(
                    &err,
                    WireError::Field {
                        field: "input.messages",
                        ..
                    }
                ),
                "{body}: {err}"
            );
        }
    }

    #[test]
    fn every_part_with_an_image_key_is_a_result_and_text_parts_are_kept_as_text() {
        let parts = choice_parts(&choices(
            r#"[{"finish_reason":"stop","message":{"role":"assistant","content":[
                  {"type":"text","text":"Step one"},{"image":"https://x/1.png","type":"image"}]}},
                {"finish_reason":"stop","message":{"role":"assistant","content":[{"image":"https://x/2.png"}]}},
                {"finish_reason":"stop","message":{"role":"assistant","content":[{"image":null}]}},
                {"finish_reason":"stop"}]"#,
        ));
        assert_eq!(parts.texts, vec!["Step one".to_string()]);
        assert_eq!(parts.results.len(), 3);
        assert!(
            matches!(&parts.results[1], TaskResult::Image { url, .. } if url == "https://x/2.png")
        );
        assert!(
            matches!(&parts.results[2], TaskResult::Failed { code, message } if code == "WrongAnswer" && message.contains("null"))
        );
    }

    #[test]
    fn both_synchronous_answer_shapes_parse() {
        let qwen: SyncBody = serde_json::from_str(
            r#"{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":[{"image":"https://x/q.png?Expires=1"}]}}]},
                "usage":{"width":1664,"height":928,"image_count":1},"request_id":"r1"}"#,
        )
        .unwrap();
        let qwen = qwen.into_answer();
        assert_eq!(qwen.size, Some(Size::new(1664, 928)));
        assert_eq!(qwen.image_count, Some(1));
        assert_eq!(qwen.request_id.as_deref(), Some("r1"));
        assert_eq!(qwen.results.len(), 1);

        let wan: SyncBody = serde_json::from_str(
            r#"{"output":{"choices":[{"finish_reason":"stop","message":{"role":"assistant","content":[{"image":"https://x/w.png","type":"image"}]}}],"finished":true},
                "usage":{"image_count":1,"size":"1376*768","input_tokens":0,"output_tokens":0,"total_tokens":0},"request_id":"r2"}"#,
        )
        .unwrap();
        let wan = wan.into_answer();
        assert_eq!(wan.size, Some(Size::new(1376, 768)));
        assert!(
            matches!(&wan.results[0], TaskResult::Image { url, .. } if url == "https://x/w.png")
        );
    }
}
