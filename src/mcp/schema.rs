//! The image tools' input schemas, made from the model catalogue as the server's region
//! sees it: which models a tool offers (the region's own ids), what each costs, its sizes
//! and `n` range, and the model-specific arguments (`function`, `style`, `mask_color`)
//! only where an offered model takes them.
//!
//! The argument types of `args.rs` give the shape (names, types, the arguments no model
//! changes); every word that depends on a model is written here from the catalogue, so a
//! model added to the catalogue reaches the tools without an edit here. The schema only
//! guides the assistant: every call is still checked by `intake` like any other job.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use crate::dashscope::catalogue::{Entry, ImageSlots, NegativePrompt, Param};
use crate::dashscope::validate::MAX_SEED;
use crate::dashscope::{EditFunction, Model, Region};

pub type JsonObject = Map<String, Value>;

/// What the image tools serve: which models their `model` argument lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolKind {
    /// `generate_image_from_text`: models that draw from text alone.
    TextToImage,
    /// The `transform_image_*` tools: models that take input images.
    Transform,
}

/// The tools whose schema the catalogue writes.
pub const CATALOGUE_TOOLS: [(&str, ToolKind); 4] = [
    ("generate_image_from_text", ToolKind::TextToImage),
    ("transform_image_from_file", ToolKind::Transform),
    ("transform_image_from_url", ToolKind::Transform),
    ("transform_image_from_encoded", ToolKind::Transform),
];

impl ToolKind {
    fn serves(self, entry: &Entry) -> bool {
        match self {
            // Models whose images are optional draw from text alone too.
            ToolKind::TextToImage => {
                matches!(
                    entry.images,
                    ImageSlots::None | ImageSlots::List { min: 0, .. }
                )
            }
            ToolKind::Transform => entry.images != ImageSlots::None,
        }
    }

    /// The default of the Universal Image Generator server this one stands in for.
    fn preferred(self) -> Model {
        match self {
            ToolKind::TextToImage => Model::Wanx21T2iTurbo,
            ToolKind::Transform => Model::Wanx21ImageEdit,
        }
    }
}

/// One model as the tools offer it.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub model: Model,
    /// The id the region knows it by, which the `model` enum lists.
    pub id: &'static str,
    /// CNY per image in force: the config's price, else the catalogue's for the region.
    pub price: Option<f64>,
}

/// The catalogue as the server's region sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub region: Region,
    pub models: Vec<Offered>,
}

impl Offer {
    /// Every model `region` offers, in catalogue order; `prices` are the config's
    /// (a model without one there has the catalogue's price for the region).
    pub fn in_region(region: Region, prices: &HashMap<Model, f64>) -> Offer {
        let models = Model::ALL
            .into_iter()
            .filter_map(|model| {
                Some(Offered {
                    model,
                    id: model.id_in(region)?,
                    price: prices
                        .get(&model)
                        .copied()
                        .or_else(|| model.price_in(region)),
                })
            })
            .collect();
        Offer { region, models }
    }

    /// The models a tool of `kind` lists.
    pub fn for_tool(&self, kind: ToolKind) -> Vec<&Offered> {
        self.models
            .iter()
            .filter(|o| kind.serves(o.model.entry()))
            .collect()
    }

    /// The model a tool uses when the call names none: the legacy server's default where
    /// the region offers it, else the region's first of the kind. With none of the kind
    /// offered, the legacy default, which intake then refuses naming its regions.
    pub fn default_model(&self, kind: ToolKind) -> Model {
        let offered = self.for_tool(kind);
        if offered.iter().any(|o| o.model == kind.preferred()) {
            kind.preferred()
        } else {
            offered.first().map_or(kind.preferred(), |o| o.model)
        }
    }
}

/// `shape` (the schema of the tool's argument type) with every model-dependent argument
/// written from `offer`; an argument no offered model takes is left out.
pub fn tool_schema(kind: ToolKind, shape: &JsonObject, offer: &Offer) -> JsonObject {
    let models = offer.for_tool(kind);
    let mut schema = shape.clone();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return schema;
    };
    for (name, written) in catalogue_properties(kind, &models, offer) {
        match written {
            Some(Value::Object(fields)) => {
                if let Some(Value::Object(property)) = properties.get_mut(name) {
                    property.extend(fields);
                }
            }
            _ => {
                properties.remove(name);
            }
        }
    }
    schema
}

/// Every argument the catalogue describes: `Some(fields)` merged into the argument's
/// schema, `None` where no offered model takes it. Arguments a tool does not have are
/// ignored by `tool_schema`.
fn catalogue_properties(
    kind: ToolKind,
    models: &[&Offered],
    offer: &Offer,
) -> Vec<(&'static str, Option<Value>)> {
    let region = offer.region.id();
    let takes = |test: fn(&Entry) -> bool| models.iter().any(|o| test(o.model.entry()));
    let has_param = |field: &'static str| models.iter().any(|o| o.model.entry().takes(field));
    let mut out = vec![
        ("model", Some(model_property(kind, models, offer))),
        ("prompt", Some(prompt_property(kind, models))),
        ("size", Some(size_property(models, region))),
        ("n", Some(n_property(models))),
        (
            "seed",
            takes(|e| e.seed).then(|| {
                json!({"minimum": 0, "maximum": MAX_SEED, "description": with_not_taken(
                    format!("0-{MAX_SEED}; image i of the job uses seed+i (default: wandash picks one and keeps it)"),
                    models, |e| e.seed)})
            }),
        ),
        (
            "negative_prompt",
            takes(|e| e.negative_prompt != NegativePrompt::No)
                .then(|| json!({"description": negative_prompt_text(models)})),
        ),
        (
            "prompt_extend",
            takes(|e| e.prompt_extend.is_some())
                .then(|| json!({"description": prompt_extend_text(models)})),
        ),
        (
            "watermark",
            takes(|e| e.watermark).then(|| {
                json!({"default": false, "description": with_not_taken(
                    "Add the service's watermark (default false)".to_string(), models, |e| e.watermark)})
            }),
        ),
    ];
    let edit_function = has_param("function");
    out.push((
        "function",
        edit_function.then(|| {
            let functions: Vec<&str> = EditFunction::ALL.iter().map(|f| f.as_str()).collect();
            json!({"enum": functions, "default": EditFunction::DescriptionEdit.as_str(),
                "description": format!(
                    "{}'s function (default description_edit); description_edit_with_mask needs a mask, \
                     expand takes the *_scale arguments, super_resolution upscale_factor.",
                    ids_taking(models, "function").join(", "))})
        }),
    ));
    for scale in ["top_scale", "bottom_scale", "left_scale", "right_scale"] {
        out.push((
            scale,
            edit_function.then(|| {
                json!({"minimum": 1.0, "maximum": 2.0,
                "description": "function expand: how far to extend this side, 1.0-2.0 (default 1.0)"})
            }),
        ));
    }
    out.push((
        "upscale_factor",
        edit_function.then(|| {
            json!({"minimum": 1, "maximum": 4,
            "description": "function super_resolution: 1-4 (1 = enhance only)"})
        }),
    ));
    out.push(("style", style_property(models)));
    out.push(("color_palette", palette_property(models)));
    out.push((
        "bbox_list",
        has_param("bbox_list").then(|| {
            json!({"description": format!(
                "{} only, with input images: per input image (in order), a list of [x1, y1, x2, y2] \
                 boxes marking where things go; at most one list per image.",
                ids_taking(models, "bbox_list").join(", "))})
        }),
    ));
    out.push((
        "mask_color",
        has_param("mask_color").then(|| {
            json!({"description": format!(
                "{} only: the [r, g, b] colours that mark the edit area in the mask \
                 (default: the mask is binarised, white is the edit area).",
                ids_taking(models, "mask_color").join(", "))})
        }),
    ));
    let extra = extra_images_property(models);
    for name in [
        "extra_image_file_paths",
        "extra_image_urls",
        "extra_encoded_images",
    ] {
        out.push((name, extra.clone()));
    }
    out
}

fn model_property(kind: ToolKind, models: &[&Offered], offer: &Offer) -> Value {
    let region = offer.region.id();
    let default = offer.default_model(kind);
    let default_id = default.id_in(offer.region).unwrap_or(default.id());
    if models.is_empty() {
        return json!({"description": format!(
            "No model of this kind is offered in {region}; the call is refused naming where {default_id} is offered.")});
    }
    let ids: Vec<&str> = models.iter().map(|o| o.id).collect();
    let lines: Vec<String> = models
        .iter()
        .map(|o| format!("- {}", model_line(kind, o, offer.region)))
        .collect();
    json!({
        "enum": ids,
        "default": default_id,
        "description": format!(
            "The model (default {default_id}); the models offered in {region}, with the price per \
             successful image (CNY), output sizes and images per call:\n{}",
            lines.join("\n")
        ),
    })
}

/// `qwen-image: 0.25 CNY/image; size ...; n 1` and what the model takes.
fn model_line(kind: ToolKind, offered: &Offered, region: Region) -> String {
    let entry = offered.model.entry();
    let mut line = format!("{}: {}", offered.id, price_text(offered, region));
    line.push_str(&format!("; size {}", size_text(entry)));
    line.push_str(&format!("; n {}", n_text(entry)));
    match (kind, entry.images) {
        (ToolKind::Transform, ImageSlots::BaseAndMask(_)) => {
            line.push_str("; one image and a mask")
        }
        (ToolKind::Transform, ImageSlots::List { min, max, .. }) => {
            line.push_str(&format!("; {}-{max} images", min.max(1)));
        }
        _ => {}
    }
    if let Some(note) = entry.lifecycle {
        line.push_str(&format!(" ({note})"));
    }
    line
}

fn price_text(offered: &Offered, region: Region) -> String {
    let Some(price) = offered.price else {
        return "price not published".to_string();
    };
    let mut text = format!("{price} CNY/image");
    let entry = offered.model.entry();
    // A surcharge for prompt_extend (z-image-turbo), where the config sets no price.
    if let Some(extended) = entry.price_in(region, true)
        && Some(price) == entry.price_in(region, false)
        && extended != price
    {
        text.push_str(&format!(" ({extended} with prompt_extend)"));
    }
    text
}

fn size_text(entry: &Entry) -> String {
    match entry.size {
        None => "follows the input".to_string(),
        Some(rule) => match rule.default {
            Some(default) => format!("{} (default {default})", rule.describe()),
            None => format!("{} (default: the input's aspect ratio)", rule.describe()),
        },
    }
}

fn n_text(entry: &Entry) -> String {
    let n = entry.n;
    if n.min == n.max {
        n.min.to_string()
    } else {
        format!("{}-{}", n.min, n.max)
    }
}

fn prompt_property(kind: ToolKind, models: &[&Offered]) -> Value {
    let what = match kind {
        ToolKind::TextToImage => "What the image shows",
        ToolKind::Transform => {
            "What to change; with several images, call them image 1, image 2 and so on"
        }
    };
    let limits = groups(models, |e| {
        Some(
            e.prompt_limit
                .map_or("no published limit".to_string(), |l| {
                    format!("at most {l} characters")
                }),
        )
    });
    json!({"description": format!("{what}; {}", joined(&limits))})
}

fn size_property(models: &[&Offered], region: &str) -> Value {
    let rules = groups(models, |e| Some(size_text(e)));
    json!({"description": format!(
        "Output size \"W*H\" (e.g. 1024*1024), or a token (1K, 2K, 4K) where the model takes one; \
         the rules of the models offered in {region}: {}",
        joined(&rules)
    )})
}

fn n_property(models: &[&Offered]) -> Value {
    let min = models
        .iter()
        .map(|o| o.model.entry().n.min)
        .min()
        .unwrap_or(1);
    let max = models
        .iter()
        .map(|o| o.model.entry().n.max)
        .max()
        .unwrap_or(1);
    let ranges = groups(models, |e| Some(n_text(e)));
    json!({"minimum": min, "maximum": max, "default": 1, "description": format!(
        "Images to make (default 1 here; each image is billed): {}", joined(&ranges))})
}

fn negative_prompt_text(models: &[&Offered]) -> String {
    let limits = groups(models, |e| match e.negative_prompt {
        NegativePrompt::No => None,
        other => Some(other.limit().map_or("no published limit".to_string(), |l| {
            format!("at most {l} characters")
        })),
    });
    with_not_taken(
        format!("What the image should not show: {}", joined(&limits)),
        models,
        |e| e.negative_prompt != NegativePrompt::No,
    )
}

fn prompt_extend_text(models: &[&Offered]) -> String {
    let defaults = groups(models, |e| {
        e.prompt_extend
            .map(|on| format!("default {}", if on { "true" } else { "false" }))
    });
    with_not_taken(
        format!("Let the service rewrite the prompt: {}", joined(&defaults)),
        models,
        |e| e.prompt_extend.is_some(),
    )
}

fn style_property(models: &[&Offered]) -> Option<Value> {
    let (ids, styles): (Vec<&str>, Vec<&[&str]>) = models
        .iter()
        .filter_map(|o| {
            o.model.entry().params.iter().find_map(|p| match p {
                Param::Style(styles) => Some((o.id, *styles)),
                _ => None,
            })
        })
        .unzip();
    let first = styles.first()?;
    Some(json!({"enum": first, "description": format!("{}'s style.", ids.join(", "))}))
}

fn palette_property(models: &[&Offered]) -> Option<Value> {
    let (min, max) = models.iter().find_map(|o| {
        o.model.entry().params.iter().find_map(|p| match p {
            Param::ColorPalette { min, max } => Some((*min, *max)),
            _ => None,
        })
    })?;
    Some(
        json!({"minItems": min, "maxItems": max, "description": format!(
        "{} only: the image's colours, {min} to {max} entries {{\"hex\": \"#RRGGBB\", \"ratio\": 0 to 1}}.",
        ids_taking(models, "color_palette").join(", "))}),
    )
}

fn extra_images_property(models: &[&Offered]) -> Option<Value> {
    let more = groups(models, |e| match e.images {
        ImageSlots::List { max, .. } if max > 1 => Some(format!("up to {} more", max - 1)),
        _ => None,
    });
    let most = models
        .iter()
        .filter_map(|o| match o.model.entry().images {
            ImageSlots::List { max, .. } => Some(max.saturating_sub(1)),
            _ => None,
        })
        .max()
        .filter(|most| *most > 0)?;
    Some(json!({"maxItems": most, "description": format!(
        "Images 2 and on, for the models that take a list of images: {}", joined(&more))}))
}

/// The ids of the offered models that take the `JobSpec` field `field`.
fn ids_taking(models: &[&Offered], field: &str) -> Vec<&'static str> {
    models
        .iter()
        .filter(|o| o.model.entry().takes(field))
        .map(|o| o.id)
        .collect()
}

/// The models grouped by `note` (in order of first appearance), so that a rule shared by
/// ten models is said once; models with no note are left out.
fn groups(
    models: &[&Offered],
    note: impl Fn(&Entry) -> Option<String>,
) -> Vec<(String, Vec<&'static str>)> {
    let mut out: Vec<(String, Vec<&'static str>)> = Vec::new();
    for offered in models {
        let Some(text) = note(offered.model.entry()) else {
            continue;
        };
        match out.iter_mut().find(|(t, _)| *t == text) {
            Some((_, ids)) => ids.push(offered.id),
            None => out.push((text, vec![offered.id])),
        }
    }
    out
}

/// `note (a, b); note (c)`.
fn joined(groups: &[(String, Vec<&'static str>)]) -> String {
    groups
        .iter()
        .map(|(text, ids)| format!("{text} ({})", ids.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// `text`, and the offered models that do not take the argument, which refuse it.
fn with_not_taken(text: String, models: &[&Offered], takes: fn(&Entry) -> bool) -> String {
    let without: Vec<&str> = models
        .iter()
        .filter(|o| !takes(o.model.entry()))
        .map(|o| o.id)
        .collect();
    if without.is_empty() {
        text
    } else {
        format!("{text}. Not taken by {}.", without.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::args::{FileArgs, TextToImageArgs};
    use rmcp::handler::server::common::schema_for_input;
    use schemars::JsonSchema;

    fn shape<T: JsonSchema + 'static>() -> JsonObject {
        (*schema_for_input::<T>().unwrap()).clone()
    }

    fn offer(region: Region) -> Offer {
        Offer::in_region(region, &HashMap::new())
    }

    fn property<'a>(schema: &'a JsonObject, name: &str) -> Option<&'a Value> {
        schema["properties"].get(name)
    }

    fn model_enum(schema: &JsonObject) -> Vec<String> {
        property(schema, "model").unwrap()["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn text_to_image_lists_the_regions_text_models_by_their_regional_ids() {
        let beijing = tool_schema(
            ToolKind::TextToImage,
            &shape::<TextToImageArgs>(),
            &offer(Region::Beijing),
        );
        let ids = model_enum(&beijing);
        for id in [
            "wanx2.1-t2i-turbo",
            "wanx2.0-t2i-turbo",
            "qwen-image",
            "z-image-turbo",
            "wan2.7-image",
            "qwen-image-2.0",
        ] {
            assert!(ids.contains(&id.to_string()), "{id} missing: {ids:?}");
        }
        // Editing-only models are the transform tools'.
        for id in ["wanx2.1-imageedit", "qwen-image-edit", "wan2.6-image"] {
            assert!(!ids.contains(&id.to_string()), "{id} listed: {ids:?}");
        }
        assert_eq!(
            property(&beijing, "model").unwrap()["default"],
            "wanx2.1-t2i-turbo"
        );

        let singapore = tool_schema(
            ToolKind::TextToImage,
            &shape::<TextToImageArgs>(),
            &offer(Region::Singapore),
        );
        let ids = model_enum(&singapore);
        assert!(ids.contains(&"wan2.1-t2i-turbo".to_string()), "{ids:?}");
        assert!(!ids.contains(&"wanx2.1-t2i-turbo".to_string()));
        assert!(!ids.contains(&"wanx2.0-t2i-turbo".to_string()));
        assert_eq!(
            property(&singapore, "model").unwrap()["default"],
            "wan2.1-t2i-turbo"
        );
        assert_ne!(beijing, singapore);
    }

    #[test]
    fn model_description_gives_each_models_price_sizes_and_n() {
        let schema = tool_schema(
            ToolKind::TextToImage,
            &shape::<TextToImageArgs>(),
            &offer(Region::Beijing),
        );
        let text = property(&schema, "model").unwrap()["description"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            text.contains("- wanx2.1-t2i-turbo: 0.14 CNY/image; size each side 512-1440, at most 2000000 pixels (default 1024*1024); n 1-4"),
            "{text}"
        );
        assert!(
            text.contains("- z-image-turbo: 0.1 CNY/image (0.2 with prompt_extend)"),
            "{text}"
        );
        let size = property(&schema, "size").unwrap()["description"]
            .as_str()
            .unwrap();
        assert!(size.contains("1664*928, 1472*1104, 1328*1328, 1104*1472, 928*1664 (default 1328*1328) (qwen-image, qwen-image-plus)"), "{size}");
        let n = property(&schema, "n").unwrap();
        assert_eq!(
            (
                n["minimum"].as_u64(),
                n["maximum"].as_u64(),
                n["default"].as_u64()
            ),
            (Some(1), Some(6), Some(1))
        );
        // z-image takes no negative prompt: said, not hidden.
        let negative = property(&schema, "negative_prompt").unwrap()["description"]
            .as_str()
            .unwrap();
        assert!(
            negative.contains("Not taken by z-image-turbo"),
            "{negative}"
        );
    }

    #[test]
    fn a_config_price_is_the_one_shown() {
        let prices = HashMap::from([(Model::QwenImage, 0.3)]);
        let schema = tool_schema(
            ToolKind::TextToImage,
            &shape::<TextToImageArgs>(),
            &Offer::in_region(Region::Beijing, &prices),
        );
        let text = property(&schema, "model").unwrap()["description"]
            .as_str()
            .unwrap();
        assert!(text.contains("- qwen-image: 0.3 CNY/image;"), "{text}");
    }

    #[test]
    fn transform_tools_offer_the_editing_models_and_their_arguments_only_where_offered() {
        let beijing = tool_schema(
            ToolKind::Transform,
            &shape::<FileArgs>(),
            &offer(Region::Beijing),
        );
        let ids = model_enum(&beijing);
        for id in [
            "wanx2.1-imageedit",
            "wanx-x-painting",
            "wan2.5-i2i-preview",
            "wan2.6-image",
            "wan2.7-image-pro",
            "qwen-image-edit-max",
        ] {
            assert!(ids.contains(&id.to_string()), "{id} missing: {ids:?}");
        }
        assert!(!ids.contains(&"qwen-image".to_string()));
        let mask_color = property(&beijing, "mask_color").expect("mask_color in Beijing");
        assert!(
            mask_color["description"]
                .as_str()
                .unwrap()
                .starts_with("wanx-x-painting only")
        );
        assert_eq!(
            property(&beijing, "function").unwrap()["default"],
            "description_edit"
        );
        assert_eq!(property(&beijing, "style").unwrap()["enum"][0], "<auto>");
        assert!(
            property(&beijing, "model").unwrap()["description"]
                .as_str()
                .unwrap()
                .contains("retiring")
        );
        assert_eq!(
            property(&beijing, "extra_image_file_paths").unwrap()["maxItems"],
            8
        );

        // Singapore offers neither wanx2.1-imageedit nor wanx-x-painting: their arguments go.
        let singapore = tool_schema(
            ToolKind::Transform,
            &shape::<FileArgs>(),
            &offer(Region::Singapore),
        );
        for gone in [
            "function",
            "mask_color",
            "style",
            "top_scale",
            "upscale_factor",
        ] {
            assert!(property(&singapore, gone).is_none(), "{gone} in Singapore");
        }
        assert!(!model_enum(&singapore).contains(&"wanx-x-painting".to_string()));
        assert_eq!(
            property(&singapore, "model").unwrap()["default"],
            "wan2.5-i2i-preview"
        );
        // Arguments no model changes stay as the argument type has them.
        assert!(property(&singapore, "image_file_path").is_some());
        assert_eq!(singapore["required"], beijing["required"]);
    }

    #[test]
    fn removing_a_model_from_the_view_changes_the_schema() {
        let full = offer(Region::Beijing);
        let mut without = full.clone();
        without.models.retain(|o| o.model != Model::WanxXPainting);
        let shape = shape::<FileArgs>();
        let before = tool_schema(ToolKind::Transform, &shape, &full);
        let after = tool_schema(ToolKind::Transform, &shape, &without);
        assert!(model_enum(&before).contains(&"wanx-x-painting".to_string()));
        assert!(!model_enum(&after).contains(&"wanx-x-painting".to_string()));
        assert!(property(&before, "mask_color").is_some());
        assert!(property(&after, "mask_color").is_none());
    }

    #[test]
    fn wan27s_palette_and_boxes_are_offered_where_wan27_is() {
        let beijing = tool_schema(
            ToolKind::TextToImage,
            &shape::<TextToImageArgs>(),
            &offer(Region::Beijing),
        );
        let palette = property(&beijing, "color_palette").expect("a palette in Beijing");
        assert_eq!(
            (palette["minItems"].as_u64(), palette["maxItems"].as_u64()),
            (Some(3), Some(10))
        );
        assert!(
            palette["description"]
                .as_str()
                .unwrap()
                .starts_with("wan2.7-image, wan2.7-image-pro only")
        );
        let edit = tool_schema(
            ToolKind::Transform,
            &shape::<FileArgs>(),
            &offer(Region::Beijing),
        );
        assert!(property(&edit, "bbox_list").is_some());
        let virginia = tool_schema(
            ToolKind::Transform,
            &shape::<FileArgs>(),
            &offer(Region::Virginia),
        );
        assert!(property(&virginia, "color_palette").is_none());
        assert!(property(&virginia, "bbox_list").is_none());
    }

    #[test]
    fn virginia_offers_only_wan26() {
        let virginia = offer(Region::Virginia);
        assert_eq!(
            virginia.default_model(ToolKind::TextToImage),
            Model::Wan26T2i
        );
        assert_eq!(
            virginia.default_model(ToolKind::Transform),
            Model::Wan26Image
        );
        let schema = tool_schema(
            ToolKind::TextToImage,
            &shape::<TextToImageArgs>(),
            &virginia,
        );
        assert_eq!(model_enum(&schema), ["wan2.6-t2i"]);
    }
}
