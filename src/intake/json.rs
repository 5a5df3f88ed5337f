//! A job written as a JSON object with the spec's field names: a line of a JSONL batch
//! file, a `[[job]]` table of a TOML one (read as JSON), a job of MCP's `submit_batch`.
//! serde's own errors do not say which field a wrong type is in; these do.

use serde_json::{Map, Value};

use crate::dashscope::{JobSpec, Model};

/// Deserialises a job, naming the field that does not fit and what it must look like.
pub fn spec_from_json(map: Map<String, Value>) -> Result<JobSpec, String> {
    match serde_json::from_value::<JobSpec>(Value::Object(map.clone())) {
        Ok(spec) => Ok(spec),
        Err(err) => {
            let message = err.to_string();
            if message.starts_with("unknown field") || message.starts_with("missing field") {
                return Err(message);
            }
            match bad_field(&map) {
                Some(field) => match expected_form(&field, model_of(&map)) {
                    Some(form) => Err(format!(
                        "field `{field}`: {message}; {field} must be {form}"
                    )),
                    None => Err(format!("field `{field}`: {message}")),
                },
                None => Err(message),
            }
        }
    }
}

/// What a field must look like, for type errors: serde says `expected u64`, a person
/// needs the rule (`a whole number 0 to 2147483647`). `None` where the parse error of the
/// field's own type already says it (model, function, size).
fn expected_form(field: &str, model: Option<Model>) -> Option<String> {
    Some(match field {
        "prompt" | "negative_prompt" | "style" => "text (a string)".to_string(),
        "n" => match model.map(|m| m.entry().n) {
            Some(rule) if rule.min == rule.max => format!("the whole number {}", rule.min),
            Some(rule) => format!("a whole number {} to {}", rule.min, rule.max),
            None => "a whole number".to_string(),
        },
        "max_images" => "a whole number 1 to 5".to_string(),
        "seed" => format!(
            "a whole number 0 to {}",
            crate::dashscope::validate::MAX_SEED
        ),
        "upscale_factor" => "a whole number 1 to 4".to_string(),
        "prompt_extend" | "watermark" | "enable_interleave" | "enable_sequential"
        | "thinking_mode" => "true or false".to_string(),
        "base_image" | "mask_image" => "an image URL or file path (a string)".to_string(),
        "images" => "a list of image URLs, data URIs or file paths".to_string(),
        "expand" => "a table of top, bottom, left, right scales, each 1.0 to 2.0".to_string(),
        "mask_color" => "a list of [r, g, b] triples, each 0 to 255".to_string(),
        "color_palette" => {
            "a list of 3 to 10 {hex = \"#RRGGBB\", ratio = 0 to 1} entries".to_string()
        }
        "bbox_list" => "a list, per input image, of [x1, y1, x2, y2] boxes".to_string(),
        _ => return None,
    })
}

/// The job's model, where it names one.
fn model_of(map: &Map<String, Value>) -> Option<Model> {
    serde_json::from_value(map.get("model")?.clone()).ok()
}

/// The first field that fails on its own, beside a known-good model and prompt.
fn bad_field(map: &Map<String, Value>) -> Option<String> {
    let model = map.get("model")?;
    if serde_json::from_value::<crate::dashscope::Model>(model.clone()).is_err() {
        return Some("model".into());
    }
    map.iter()
        .filter(|(k, _)| k.as_str() != "model")
        .find_map(|(key, value)| {
            let mut probe = Map::new();
            probe.insert("model".into(), model.clone());
            probe.insert("prompt".into(), Value::String("probe".into()));
            probe.insert(key.clone(), value.clone());
            serde_json::from_value::<JobSpec>(Value::Object(probe))
                .is_err()
                .then(|| key.clone())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> Result<JobSpec, String> {
        let Value::Object(map) = value else {
            panic!("a JSON object")
        };
        spec_from_json(map)
    }

    #[test]
    fn a_wrong_type_names_the_field_and_its_form() {
        let err =
            read(json!({"model": "wanx2.1-t2i-turbo", "prompt": "a", "seed": "x"})).unwrap_err();
        assert!(
            err.starts_with("field `seed`: ")
                && err.ends_with("seed must be a whole number 0 to 2147483647"),
            "{err}"
        );
    }

    #[test]
    fn unknown_and_missing_fields_keep_serdes_words() {
        let err =
            read(json!({"model": "wanx2.1-t2i-turbo", "prompt": "a", "colour": 1})).unwrap_err();
        assert!(err.starts_with("unknown field `colour`"), "{err}");
        let err = read(json!({"model": "wanx2.1-t2i-turbo"})).unwrap_err();
        assert!(err.starts_with("missing field `prompt`"), "{err}");
    }
}
