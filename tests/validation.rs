//! One test per validation rule: a job that breaks it is refused before anything is sent,
//! with an error that names the field and the limit.
//!
//! Inventory (issue 5): every rule in API.md and every extra case the issue names, with
//! the test that proves it. Tests without a file are in this one; `cli_bad_input` drives
//! the real binary. 57 rules, 57 covered.
//!
//! | # | rule (API.md) | test |
//! |---|---|---|
//! | 1 | prompt required, every model | `an_empty_prompt_is_refused` |
//! | 2 | t2i prompt <= 800 chars | `prompts_over_each_models_limit_are_refused` |
//! | 3 | imageedit prompt <= 800 chars | `prompts_over_each_models_limit_are_refused` |
//! | 4 | x-painting prompt <= 75 chars | `prompts_over_each_models_limit_are_refused` |
//! | 5 | t2i negative_prompt <= 500 chars | `a_negative_prompt_over_500_characters_is_refused` |
//! | 6 | t2i size: each side 512..1440 | `a_text_to_image_side_under_512_is_refused`, `..._over_1440_...` |
//! | 7 | t2i size: at most 2 megapixels | `a_text_to_image_size_over_2_megapixels_is_refused` |
//! | 8 | size written `W*H` | `a_size_not_written_as_width_by_height_is_refused` |
//! | 9 | n 1..4, every model | `n_outside_1_to_4_is_refused` |
//! | 10 | seed 0..2147483647 (t2i, imageedit, wan2.5) | `a_seed_over_2147483647_is_refused`; negative: `cli_bad_input::a_batch_field_of_the_wrong_type_names_the_field_and_its_rule` |
//! | 11 | imageedit: function required | `imageedit_without_a_function_is_refused` |
//! | 12 | imageedit: function one of 10 | `an_unknown_function_is_refused_on_the_wire_and_in_batch_files` |
//! | 13 | imageedit: base_image required | `imageedit_needs_a_base_image` |
//! | 14 | image URLs are http(s) | `an_image_url_that_is_not_http_is_refused` |
//! | 15 | imageedit: no Chinese characters in the URL | `a_url_with_chinese_characters_is_refused` |
//! | 16 | imageedit formats JPG PNG BMP TIFF WEBP | `an_imageedit_input_in_a_format_outside_its_list_is_refused` |
//! | 17 | imageedit sides 512..4096 | `a_local_image_under_the_minimum_side_is_refused`, `a_local_image_over_the_maximum_side_is_refused` |
//! | 18 | input image <= 10 MB (file or data URI) | `a_local_file_over_10_mb_is_refused`, `a_data_uri_over_10_mb_is_refused` |
//! | 19 | mask required for description_edit_with_mask | `description_edit_with_mask_needs_a_mask` |
//! | 20 | mask only for description_edit_with_mask | `a_mask_for_any_other_function_is_refused` |
//! | 21 | imageedit mask at the base's resolution | `a_mask_with_another_resolution_than_its_base_is_refused` |
//! | 22 | expand scales 1.0..2.0 | `expand_scales_outside_1_to_2_are_refused` |
//! | 23 | expand scales only with function expand | `expand_scales_for_another_function_are_refused` |
//! | 24 | upscale_factor 1..4 | `an_upscale_factor_of_5_is_refused` |
//! | 25 | upscale_factor only with super_resolution | `an_upscale_factor_for_another_function_is_refused` |
//! | 26 | x-painting: base and mask required | `x_painting_needs_base_and_mask` |
//! | 27 | imageedit, x-painting: URLs only, no base64 | `a_data_uri_for_a_url_only_model_is_refused` |
//! | 28 | x-painting formats JPG PNG BMP | `a_format_the_model_does_not_take_is_refused` |
//! | 29 | x-painting sides > 256 and < 4096 | `a_local_image_under_the_minimum_side_is_refused`, `an_x_painting_image_of_4096_pixels_a_side_is_refused` |
//! | 30 | x-painting mask at the base's resolution | `an_x_painting_mask_with_another_resolution_than_its_base_is_refused` |
//! | 31 | x-painting style one of 8 | `an_unknown_x_painting_style_is_refused` |
//! | 32 | x-painting size one of 3 | `an_x_painting_size_outside_the_three_is_refused` |
//! | 33 | x-painting mask_color: [r, g, b] of 0..255 | `cli_bad_input::a_batch_field_of_the_wrong_type_names_the_field_and_its_rule` |
//! | 34 | wan2.5 images 1..3 | `wan25_with_0_or_4_images_is_refused` |
//! | 35 | wan2.5 data URI `data:{mime};base64,{data}` | `a_malformed_data_uri_is_refused` |
//! | 36 | wan2.5 formats JPEG PNG BMP WEBP | `a_wan25_input_in_a_format_outside_its_list_is_refused` |
//! | 37 | wan2.5 PNG without alpha | `a_png_with_alpha_is_refused_for_wan25` |
//! | 38 | wan2.5 sides 384..5000 | `a_local_image_under_the_minimum_side_is_refused`, `a_wan25_image_over_5000_pixels_a_side_is_refused` |
//! | 39 | wan2.5 size: 768*768..1280*1280 pixels | `wan25_total_pixels_out_of_range_are_refused` |
//! | 40 | wan2.5 size: aspect 1:4..4:1 | `wan25_aspect_beyond_4_to_1_is_refused` |
//! | 41 | a parameter the model does not take | `fields_that_do_not_apply_to_the_model_are_refused` |
//! | 42 | a known model name | `cli_batch::submit_refuses_a_bad_job_naming_the_field_and_limit` |
//! | | **extra cases (issue 5)** | |
//! | 43 | empty prompt | `an_empty_prompt_is_refused` |
//! | 44 | prompt of only whitespace / control / invisible characters, never sent | `a_whitespace_only_prompt_is_refused_as_empty`, `a_prompt_of_only_control_or_invisible_characters_is_refused_as_empty`, `a_blank_prompt_is_never_sent`, `cli_bad_input::submit_refuses_a_prompt_of_only_control_and_invisible_characters` |
//! | 45 | non-UTF-8 batch file | `cli_batch::a_non_utf8_file_is_a_clear_error`, `cli_bad_input::a_non_utf8_batch_names_the_file_and_the_line_and_queues_nothing` |
//! | 46 | one bad line among 100: none queued, line named | `cli_batch::one_bad_line_among_a_hundred_queues_nothing_and_names_the_line`, `cli_bad_input::one_over_long_prompt_among_a_hundred_lines_...` |
//! | 47 | a file that is not an image | `a_local_file_that_is_not_an_image_is_refused`, `cli_bad_input::bad_local_images_in_a_batch_...` |
//! | 48 | truncated PNG | `a_truncated_png_is_refused`, `cli_bad_input::bad_local_images_in_a_batch_...` |
//! | 49 | 0-byte file | `an_empty_local_file_is_refused`, `cli_bad_input::bad_local_images_in_a_batch_...` |
//! | 50 | oversize / undersize images | rows 17, 18, 29, 38; `cli_bad_input::bad_local_images_in_a_batch_...` |
//! | 51 | mask of the wrong size | rows 21, 30; `cli_bad_input::bad_local_images_in_a_batch_...` |
//! | 52 | a path that is a directory (image, batch, database) | `a_directory_is_refused`, `cli_bad_input::submit_refuses_a_directory_as_an_image`, `..::a_directory_given_as_the_batch_file_is_named_as_such`, `..::a_directory_given_as_the_database_is_refused` |
//! | 53 | config: unknown key | `cli_config::an_unknown_key_is_named_with_its_line`, `cli_bad_input::a_config_with_an_unknown_key_names_it_its_line_and_the_keys_allowed` |
//! | 54 | config: wrong type (or value outside its choices / range) | `cli_config::a_wrong_type_is_named`, `cli_bad_input::a_config_value_of_the_wrong_type_...`, `..._outside_its_choices_...`, `..._outside_its_range_...` |
//! | 55 | database file that is not a database | `engine_store::a_file_that_is_not_a_database_is_refused_and_left_alone`, `cli_bad_input::a_file_that_is_not_a_database_is_refused_by_every_command_and_left_alone` |
//! | 56 | database locked by a running engine | `engine_run::a_second_engine_on_the_same_store_is_refused`, `cli_bad_input::a_second_engine_is_refused_naming_the_lock_while_reads_and_enqueues_work` |
//! | 57 | database held in a write transaction by another connection | `cli_bad_input::a_store_held_in_a_write_transaction_still_reads_and_refuses_writes_naming_the_file` |
//! | | **API-CURRENT.md (issue 11)** | |
//! | 58 | wan2.7 color_palette: 3..10 `{hex #RRGGBB, ratio 0..1}` | `wan27_color_palette_takes_3_to_10_hex_colours_with_ratios_0_to_1_naming_the_entry`; the simulator: `simulator::wan27_color_palette_and_bbox_list_are_checked_like_the_service` |
//! | 59 | wan2.7 bbox_list: boxes per input image (shape u, kept lenient) | `wan27_bbox_list_has_at_most_one_list_of_boxes_per_input_image` |

use std::path::{Path, PathBuf};

use base64::Engine as _;
use image::{ImageBuffer, ImageFormat, Luma, Rgb, Rgba};
use serde_json::json;
use wandash::dashscope::catalogue::ImageSlots;
use wandash::dashscope::composition::PaletteColor;
use wandash::dashscope::{
    ApiKey, Client, ClientError, EditFunction, ExpandScales, ImageRef, JobSpec, Model, Region,
    Size, ValidationError, WireError, check_local_images, validate, validate_all,
};
use wandash::intake::{self, Draft};

const T2I: [Model; 3] = [
    Model::Wanx21T2iTurbo,
    Model::Wanx21T2iPlus,
    Model::Wanx20T2iTurbo,
];

/// Asserts that `spec` breaks exactly one rule, on `field`, and that the message says
/// `needle` (the limit or the allowed values).
#[track_caller]
fn refused(spec: &JobSpec, field: &str, needle: &str) -> ValidationError {
    let err = validate(spec).expect_err("the spec should be refused");
    assert_eq!(err.field, field, "{err}");
    assert!(
        err.message.contains(needle),
        "message `{}` should mention `{needle}`",
        err.message
    );
    assert_eq!(
        validate_all(spec).len(),
        1,
        "only this rule is broken: {:?}",
        validate_all(spec)
    );
    err
}

#[track_caller]
fn accepted(spec: &JobSpec) {
    assert_eq!(validate_all(spec), Vec::<ValidationError>::new());
}

#[track_caller]
fn local_refused(spec: &JobSpec, field: &str, needle: &str) {
    accepted(spec);
    let err = check_local_images(spec).expect_err("the local image should be refused");
    assert_eq!(err.field, field, "{err}");
    assert!(
        err.message.contains(needle),
        "message `{}` should mention `{needle}`",
        err.message
    );
}

fn edit(function: EditFunction) -> JobSpec {
    let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "make it brighter");
    spec.function = Some(function);
    spec.base_image = Some(ImageRef::Url("https://example.com/base.png".into()));
    if function.needs_mask() {
        spec.mask_image = Some(ImageRef::Url("https://example.com/mask.png".into()));
    }
    spec
}

fn painting() -> JobSpec {
    let mut spec = JobSpec::new(Model::WanxXPainting, "a cat");
    spec.base_image = Some(ImageRef::Url("https://example.com/base.png".into()));
    spec.mask_image = Some(ImageRef::Url("https://example.com/mask.png".into()));
    spec
}

fn multi(count: usize) -> JobSpec {
    let mut spec = JobSpec::new(Model::Wan25I2iPreview, "put image 1 into image 2");
    spec.images = (0..count)
        .map(|i| ImageRef::Url(format!("https://example.com/{i}.png")))
        .collect();
    spec
}

/// The six models of API.md (the rules of rows 1-57 are theirs).
const API_MD_MODELS: [Model; 6] = [
    Model::Wanx21T2iTurbo,
    Model::Wanx21T2iPlus,
    Model::Wanx20T2iTurbo,
    Model::Wanx21ImageEdit,
    Model::WanxXPainting,
    Model::Wan25I2iPreview,
];

/// The smallest spec each model accepts (remote images), to break one rule at a time.
fn minimal(model: Model) -> JobSpec {
    match model {
        Model::Wanx21ImageEdit => edit(EditFunction::DescriptionEdit),
        Model::WanxXPainting => painting(),
        Model::Wan25I2iPreview => multi(1),
        _ => {
            let mut spec = JobSpec::new(model, "a lighthouse");
            if let ImageSlots::List { min, .. } = model.entry().images {
                spec.images = (0..min)
                    .map(|i| ImageRef::Url(format!("https://example.com/{i}.png")))
                    .collect();
            }
            spec
        }
    }
}

fn write_image<P: image::Pixel<Subpixel = u8> + image::PixelWithColorType>(
    dir: &Path,
    name: &str,
    width: u32,
    height: u32,
    pixel: P,
    format: ImageFormat,
) -> PathBuf {
    let path = dir.join(name);
    ImageBuffer::from_pixel(width, height, pixel)
        .save_with_format(&path, format)
        .unwrap();
    path
}

fn grey_png(dir: &Path, name: &str, width: u32, height: u32) -> PathBuf {
    write_image(dir, name, width, height, Luma([128u8]), ImageFormat::Png)
}

fn local_edit(base: PathBuf) -> JobSpec {
    let mut spec = edit(EditFunction::StylizationAll);
    spec.base_image = Some(ImageRef::File(base));
    spec
}

// ---- prompts ----

#[test]
fn an_empty_prompt_is_refused() {
    for model in Model::ALL {
        let mut spec = minimal(model);
        spec.prompt = String::new();
        refused(&spec, "prompt", "is empty");
    }
}

#[test]
fn a_whitespace_only_prompt_is_refused_as_empty() {
    let spec = JobSpec::new(Model::Wanx21T2iTurbo, " \t\n\u{3000}\r ");
    let err = refused(&spec, "prompt", "is empty");
    assert!(err.message.contains("its 6 character(s)"), "{err}");
}

#[test]
fn a_prompt_of_only_control_or_invisible_characters_is_refused_as_empty() {
    for prompt in [
        "\u{1b}\u{7}\0\u{7f}\u{9b}",
        "\u{200B}\u{202E}\u{FEFF}\u{2066}\u{00AD}",
        "\u{1b}\u{200D} \t\u{2028}",
    ] {
        for model in Model::ALL {
            let mut spec = minimal(model);
            spec.prompt = prompt.into();
            let err = refused(&spec, "prompt", "is empty");
            let count = format!("its {} character(s)", prompt.chars().count());
            assert!(err.message.contains(&count), "{err}");
        }
    }
    // One visible character among them is a prompt.
    accepted(&JobSpec::new(Model::Wanx21T2iTurbo, "\u{200B}猫\u{1b}"));
}

#[test]
fn prompts_over_each_models_limit_are_refused() {
    for model in T2I {
        accepted(&JobSpec::new(model, "字".repeat(800)));
        let err = refused(
            &JobSpec::new(model, "字".repeat(801)),
            "prompt",
            "limit of 800",
        );
        assert!(err.message.contains("801 characters"), "{err}");
    }
    let mut spec = edit(EditFunction::DescriptionEdit);
    spec.prompt = "a".repeat(800);
    accepted(&spec);
    spec.prompt = "a".repeat(801);
    refused(&spec, "prompt", "limit of 800");

    let mut spec = painting();
    spec.prompt = "猫".repeat(75);
    accepted(&spec);
    spec.prompt = "猫".repeat(76);
    let err = refused(&spec, "prompt", "limit of 75");
    assert!(err.message.contains("76 characters"), "{err}");
}

#[test]
fn a_negative_prompt_over_500_characters_is_refused() {
    let mut spec = JobSpec::new(Model::Wanx21T2iPlus, "a lighthouse");
    spec.negative_prompt = Some("x".repeat(500));
    accepted(&spec);
    spec.negative_prompt = Some("x".repeat(501));
    let err = refused(&spec, "negative_prompt", "limit of 500");
    assert!(err.message.contains("501 characters"), "{err}");
}

// ---- n, seed, size ----

#[test]
fn n_outside_1_to_4_is_refused() {
    for model in API_MD_MODELS {
        for n in [1, 4] {
            let mut spec = minimal(model);
            spec.n = Some(n);
            accepted(&spec);
        }
        for n in [0, 5] {
            let mut spec = minimal(model);
            spec.n = Some(n);
            let err = refused(&spec, "n", "1 to 4");
            assert!(
                err.message.starts_with(&format!("{n} is out of range")),
                "{err}"
            );
        }
    }
}

#[test]
fn a_seed_over_2147483647_is_refused() {
    // Every model that takes a seed (x-painting does not: see fields_that_do_not_apply...).
    for model in Model::ALL
        .into_iter()
        .filter(|m| *m != Model::WanxXPainting)
    {
        let mut spec = minimal(model);
        spec.seed = Some(2_147_483_647);
        accepted(&spec);
        spec.seed = Some(2_147_483_648);
        let err = refused(&spec, "seed", "0 to 2147483647");
        assert!(err.message.contains("2147483648 is out of range"), "{err}");
    }
}

#[test]
fn a_text_to_image_side_under_512_is_refused() {
    let mut spec = JobSpec::new(Model::Wanx20T2iTurbo, "a lighthouse");
    spec.size = Some(Size::new(511, 1024).into());
    let err = refused(&spec, "size", "512 to 1440");
    assert!(err.message.contains("width 511 of 511*1024"), "{err}");
}

#[test]
fn a_text_to_image_side_over_1440_is_refused() {
    let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse");
    spec.size = Some(Size::new(1024, 1441).into());
    let err = refused(&spec, "size", "512 to 1440");
    assert!(err.message.contains("height 1441"), "{err}");
}

#[test]
fn a_text_to_image_size_over_2_megapixels_is_refused() {
    let mut spec = JobSpec::new(Model::Wanx21T2iPlus, "a lighthouse");
    spec.size = Some(Size::new(1440, 1388).into());
    accepted(&spec);
    spec.size = Some(Size::new(1440, 1440).into());
    let err = refused(&spec, "size", "2000000");
    assert!(err.message.contains("1440*1440 is 2073600 pixels"), "{err}");
}

#[test]
fn an_x_painting_size_outside_the_three_is_refused() {
    for ok in [
        Size::new(1024, 1024),
        Size::new(720, 1280),
        Size::new(1280, 720),
    ] {
        let mut spec = painting();
        spec.size = Some(ok.into());
        accepted(&spec);
    }
    let mut spec = painting();
    spec.size = Some(Size::new(1280, 1280).into());
    let err = refused(&spec, "size", "1024*1024, 720*1280, 1280*720");
    assert!(err.message.starts_with("1280*1280 is not offered"), "{err}");
}

#[test]
fn wan25_total_pixels_out_of_range_are_refused() {
    for size in [Size::new(767, 768), Size::new(1281, 1280)] {
        let mut spec = multi(1);
        spec.size = Some(size.into());
        refused(&spec, "size", "(768*768) to 1638400 (1280*1280)");
    }
    let mut spec = multi(1);
    spec.size = Some(Size::new(768, 768).into());
    accepted(&spec);
}

#[test]
fn wan25_aspect_beyond_4_to_1_is_refused() {
    let mut spec = multi(2);
    spec.size = Some(Size::new(2400, 600).into());
    accepted(&spec);
    spec.size = Some(Size::new(2404, 600).into());
    let err = refused(&spec, "size", "1:4 to 4:1");
    assert!(err.message.starts_with("2404*600"), "{err}");
    spec.size = Some(Size::new(600, 2404).into());
    refused(&spec, "size", "1:4 to 4:1");
}

#[test]
fn a_size_not_written_as_width_by_height_is_refused() {
    let err = serde_json::from_value::<JobSpec>(
        json!({"model": "wanx2.1-t2i-turbo", "prompt": "p", "size": "big"}),
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("`big` is not a size; write it as WIDTH*HEIGHT"),
        "{err}"
    );
    let body = json!({"model": "wanx2.1-t2i-turbo", "input": {"prompt": "p"},
        "parameters": {"size": "1024x"}});
    match JobSpec::from_wire(&body) {
        Err(WireError::Field { field, message }) => {
            assert_eq!(field, "size");
            assert!(message.contains("WIDTH*HEIGHT"), "{message}");
        }
        other => panic!("expected a size error, got {other:?}"),
    }
}

// ---- functions and their parameters ----

#[test]
fn imageedit_without_a_function_is_refused() {
    let mut spec = edit(EditFunction::StylizationAll);
    spec.function = None;
    refused(&spec, "function", "is required for wanx2.1-imageedit");
}

#[test]
fn an_unknown_function_is_refused_on_the_wire_and_in_batch_files() {
    let body = json!({"model": "wanx2.1-imageedit",
        "input": {"function": "make_it_pop", "prompt": "p", "base_image_url": "https://e.com/a.png"}});
    match JobSpec::from_wire(&body) {
        Err(WireError::Field { field, message }) => {
            assert_eq!(field, "function");
            assert!(
                message.contains("make_it_pop") && message.contains("control_cartoon_feature"),
                "{message}"
            );
        }
        other => panic!("expected a function error, got {other:?}"),
    }
    let err =
        serde_json::from_value::<JobSpec>(json!({"model": "wanx2.1-imageedit", "prompt": "p",
        "function": "make_it_pop", "base_image": "https://e.com/a.png"}))
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown function `make_it_pop`"),
        "{err}"
    );
}

#[test]
fn description_edit_with_mask_needs_a_mask() {
    let mut spec = edit(EditFunction::DescriptionEditWithMask);
    accepted(&spec);
    spec.mask_image = None;
    refused(
        &spec,
        "mask_image",
        "is required for function description_edit_with_mask",
    );
}

#[test]
fn a_mask_for_any_other_function_is_refused() {
    for function in EditFunction::ALL.into_iter().filter(|f| !f.needs_mask()) {
        let mut spec = edit(function);
        spec.mask_image = Some(ImageRef::Url("https://example.com/mask.png".into()));
        refused(
            &spec,
            "mask_image",
            "only to function description_edit_with_mask",
        );
    }
}

#[test]
fn expand_scales_outside_1_to_2_are_refused() {
    let mut spec = edit(EditFunction::Expand);
    spec.expand = Some(ExpandScales {
        top: 1.0,
        bottom: 2.0,
        left: 1.5,
        right: 1.0,
    });
    accepted(&spec);
    spec.expand = Some(ExpandScales {
        top: 0.9,
        ..ExpandScales::default()
    });
    let err = refused(&spec, "expand.top_scale", "1.0 to 2.0");
    assert!(err.message.starts_with("0.9 is out of range"), "{err}");
    spec.expand = Some(ExpandScales {
        right: 2.1,
        ..ExpandScales::default()
    });
    refused(&spec, "expand.right_scale", "1.0 to 2.0");
}

#[test]
fn expand_scales_for_another_function_are_refused() {
    let mut spec = edit(EditFunction::SuperResolution);
    spec.expand = Some(ExpandScales::default());
    refused(&spec, "expand", "only to function expand");
}

#[test]
fn an_upscale_factor_of_5_is_refused() {
    let mut spec = edit(EditFunction::SuperResolution);
    spec.upscale_factor = Some(4);
    accepted(&spec);
    spec.upscale_factor = Some(5);
    let err = refused(&spec, "upscale_factor", "1 to 4");
    assert!(err.message.starts_with("5 is out of range"), "{err}");
    spec.upscale_factor = Some(0);
    refused(&spec, "upscale_factor", "1 to 4");
}

#[test]
fn an_upscale_factor_for_another_function_is_refused() {
    let mut spec = edit(EditFunction::Expand);
    spec.upscale_factor = Some(2);
    refused(&spec, "upscale_factor", "only to function super_resolution");
}

#[test]
fn wan25_with_0_or_4_images_is_refused() {
    for count in [1, 3] {
        accepted(&multi(count));
    }
    let err = refused(&multi(0), "images", "1 to 3");
    assert!(err.message.starts_with("0 images given"), "{err}");
    let err = refused(&multi(4), "images", "1 to 3");
    assert!(err.message.starts_with("4 images given"), "{err}");
}

#[test]
fn an_unknown_x_painting_style_is_refused() {
    let mut spec = painting();
    spec.style = Some("<anime>".into());
    accepted(&spec);
    spec.style = Some("<vaporwave>".into());
    let err = refused(&spec, "style", "<chinese painting>");
    assert!(
        err.message.contains("`<vaporwave>` is not a style"),
        "{err}"
    );
}

#[test]
fn x_painting_needs_base_and_mask() {
    let mut spec = painting();
    spec.mask_image = None;
    refused(&spec, "mask_image", "is required for wanx-x-painting");
    let mut spec = painting();
    spec.base_image = None;
    refused(&spec, "base_image", "is required for wanx-x-painting");
}

#[test]
fn imageedit_needs_a_base_image() {
    let mut spec = edit(EditFunction::Doodle);
    spec.base_image = None;
    refused(&spec, "base_image", "is required for wanx2.1-imageedit");
}

#[test]
fn fields_that_do_not_apply_to_the_model_are_refused() {
    let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse");
    spec.style = Some("<anime>".into());
    refused(&spec, "style", "does not apply to model wanx2.1-t2i-turbo");

    let mut spec = edit(EditFunction::StylizationAll);
    spec.prompt_extend = Some(true);
    refused(
        &spec,
        "prompt_extend",
        "does not apply to model wanx2.1-imageedit",
    );

    let mut spec = edit(EditFunction::StylizationAll);
    spec.size = Some(Size::new(1024, 1024).into());
    refused(&spec, "size", "does not apply to model wanx2.1-imageedit");

    let mut spec = painting();
    spec.seed = Some(1);
    refused(&spec, "seed", "does not apply to model wanx-x-painting");

    let mut spec = multi(1);
    spec.function = Some(EditFunction::Expand);
    refused(
        &spec,
        "function",
        "does not apply to model wan2.5-i2i-preview",
    );
}

// ---- image references ----

#[test]
fn a_data_uri_for_a_url_only_model_is_refused() {
    let uri = ImageRef::DataUri("data:image/png;base64,iVBORw0KGgo=".into());
    let mut spec = edit(EditFunction::StylizationAll);
    spec.base_image = Some(uri.clone());
    refused(&spec, "base_image", "takes URLs only");
    let mut spec = painting();
    spec.mask_image = Some(uri.clone());
    refused(&spec, "mask_image", "takes URLs only");
    let mut spec = multi(1);
    spec.images = vec![uri];
    accepted(&spec);
}

#[test]
fn a_url_with_chinese_characters_is_refused() {
    let mut spec = edit(EditFunction::StylizationAll);
    spec.base_image = Some(ImageRef::Url("https://example.com/图片.png".into()));
    refused(&spec, "base_image", "Chinese characters");
}

#[test]
fn an_image_url_that_is_not_http_is_refused() {
    // Over the wire (the simulator reads create bodies so) anything not a data URI is a URL.
    let body = json!({"model": "wanx2.1-imageedit", "input": {"function": "colorization",
        "prompt": "p", "base_image_url": "ftp://example.com/a.png"}});
    let spec = JobSpec::from_wire(&body).unwrap();
    let err = refused(&spec, "base_image", "is not an http(s) URL");
    assert!(err.message.contains("ftp://example.com/a.png"), "{err}");
    let mut spec = multi(0);
    spec.images = vec![ImageRef::Url("file:///etc/passwd".into())];
    refused(&spec, "images", "is not an http(s) URL");
}

#[test]
fn a_malformed_data_uri_is_refused() {
    let mut spec = multi(1);
    spec.images = vec![ImageRef::DataUri(
        "data:image/png;base64,@@not base64@@".into(),
    )];
    refused(&spec, "images", "base64 is invalid");
}

// ---- local files ----

#[test]
fn a_local_file_that_is_not_an_image_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.png");
    std::fs::write(&path, b"just some text pretending to be a picture").unwrap();
    local_refused(&local_edit(path), "base_image", "is not an image");
}

#[test]
fn an_empty_local_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.png");
    std::fs::write(&path, b"").unwrap();
    local_refused(&local_edit(path), "base_image", "0 bytes");
}

#[test]
fn a_truncated_png_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_image(
        dir.path(),
        "whole.png",
        600,
        600,
        Rgb([10u8, 200, 30]),
        ImageFormat::Png,
    );
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&path, &bytes).unwrap();
    local_refused(&local_edit(path), "base_image", "truncated");
}

#[test]
fn a_local_image_under_the_minimum_side_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    local_refused(
        &local_edit(grey_png(dir.path(), "small.png", 511, 600)),
        "base_image",
        "512 to 4096",
    );
    let mut spec = painting();
    spec.base_image = Some(ImageRef::File(grey_png(dir.path(), "b.png", 256, 300)));
    spec.mask_image = Some(ImageRef::File(grey_png(dir.path(), "m.png", 256, 300)));
    local_refused(&spec, "base_image", "257 to 4095");
    let mut spec = multi(0);
    spec.images = vec![ImageRef::File(write_image(
        dir.path(),
        "w.png",
        383,
        400,
        Rgb([1u8, 2, 3]),
        ImageFormat::Png,
    ))];
    local_refused(&spec, "images", "384 to 5000");
}

#[test]
fn a_local_image_over_the_maximum_side_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = grey_png(dir.path(), "wide.png", 4097, 512);
    local_refused(&local_edit(path), "base_image", "512 to 4096");
}

#[test]
fn a_local_file_over_10_mb_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.png");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(10 * 1024 * 1024 + 1).unwrap();
    local_refused(&local_edit(path.clone()), "base_image", "limit of 10 MB");
    let mut spec = painting();
    spec.mask_image = Some(ImageRef::File(path.clone()));
    local_refused(
        &spec,
        "mask_image",
        "is 10485761 bytes, over the limit of 10 MB",
    );
    let mut spec = multi(0);
    spec.images = vec![ImageRef::File(path)];
    local_refused(&spec, "images", "limit of 10 MB");
}

#[test]
fn a_data_uri_over_10_mb_is_refused() {
    let encoded = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 10 * 1024 * 1024 + 1]);
    let mut spec = multi(0);
    spec.images = vec![ImageRef::DataUri(format!(
        "data:image/png;base64,{encoded}"
    ))];
    local_refused(&spec, "images", "10485761 bytes is over the limit of 10 MB");
}

#[test]
fn an_x_painting_image_of_4096_pixels_a_side_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = painting();
    spec.base_image = Some(ImageRef::File(grey_png(dir.path(), "b.png", 4095, 300)));
    spec.mask_image = Some(ImageRef::File(grey_png(dir.path(), "m.png", 4095, 300)));
    check_local_images(&spec).expect("4095 is under 4096");
    spec.base_image = Some(ImageRef::File(grey_png(dir.path(), "b2.png", 4096, 300)));
    local_refused(
        &spec,
        "base_image",
        "width 4096 of a 4096x300 image is out of range; each side must be 257 to 4095",
    );
}

#[test]
fn a_wan25_image_over_5000_pixels_a_side_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = multi(0);
    spec.images = vec![ImageRef::File(write_image(
        dir.path(),
        "tall.png",
        400,
        5001,
        Rgb([1u8, 2, 3]),
        ImageFormat::Png,
    ))];
    local_refused(
        &spec,
        "images",
        "height 5001 of a 400x5001 image is out of range; each side must be 384 to 5000",
    );
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    local_refused(
        &local_edit(dir.path().to_path_buf()),
        "base_image",
        "is a directory",
    );
}

#[test]
fn a_missing_local_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    local_refused(
        &local_edit(dir.path().join("nowhere.png")),
        "base_image",
        "cannot read",
    );
}

#[test]
fn a_format_the_model_does_not_take_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = painting();
    spec.base_image = Some(ImageRef::File(write_image(
        dir.path(),
        "b.tiff",
        600,
        600,
        Rgb([9u8, 9, 9]),
        ImageFormat::Tiff,
    )));
    spec.mask_image = Some(ImageRef::File(grey_png(dir.path(), "m.png", 600, 600)));
    local_refused(&spec, "base_image", "not accepted by wanx-x-painting");
}

#[test]
fn an_imageedit_input_in_a_format_outside_its_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // A GIF header is enough: the format is refused before anything is decoded.
    let path = dir.path().join("anim.gif");
    std::fs::write(&path, b"GIF89a\x01\x00\x01\x00\x00\x00\x00;").unwrap();
    local_refused(
        &local_edit(path),
        "base_image",
        "Gif is not accepted by wanx2.1-imageedit; use one of jpg, png, bmp, tiff, webp",
    );
}

#[test]
fn a_wan25_input_in_a_format_outside_its_list_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = multi(0);
    spec.images = vec![ImageRef::File(write_image(
        dir.path(),
        "scan.tiff",
        400,
        400,
        Rgb([9u8, 9, 9]),
        ImageFormat::Tiff,
    ))];
    local_refused(
        &spec,
        "images",
        "Tiff is not accepted by wan2.5-i2i-preview; use one of jpg, png, bmp, webp",
    );
}

#[test]
fn an_x_painting_mask_with_another_resolution_than_its_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = painting();
    spec.base_image = Some(ImageRef::File(grey_png(dir.path(), "base.png", 600, 600)));
    spec.mask_image = Some(ImageRef::File(grey_png(dir.path(), "mask.png", 600, 601)));
    local_refused(
        &spec,
        "mask_image",
        "is 600x601 but the base image is 600x600; a mask must have its base image's resolution",
    );
}

#[test]
fn a_mask_with_another_resolution_than_its_base_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = edit(EditFunction::DescriptionEditWithMask);
    spec.base_image = Some(ImageRef::File(grey_png(dir.path(), "base.png", 640, 600)));
    spec.mask_image = Some(ImageRef::File(grey_png(dir.path(), "mask.png", 600, 640)));
    local_refused(&spec, "mask_image", "base image is 640x600");
    spec.mask_image = Some(ImageRef::File(grey_png(dir.path(), "mask2.png", 640, 600)));
    check_local_images(&spec).expect("a mask at the base's resolution is fine");
}

#[test]
fn a_png_with_alpha_is_refused_for_wan25() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = write_image(
        dir.path(),
        "alpha.png",
        400,
        400,
        Rgba([1u8, 2, 3, 128]),
        ImageFormat::Png,
    );
    let mut spec = multi(0);
    spec.images = vec![ImageRef::File(alpha.clone())];
    local_refused(&spec, "images", "alpha channel");

    let encoded = base64::engine::general_purpose::STANDARD.encode(std::fs::read(&alpha).unwrap());
    spec.images = vec![ImageRef::DataUri(format!(
        "data:image/png;base64,{encoded}"
    ))];
    local_refused(&spec, "images", "alpha channel");

    // The edit model takes alpha.
    let mut spec = local_edit(write_image(
        dir.path(),
        "a2.png",
        600,
        600,
        Rgba([1u8, 2, 3, 128]),
        ImageFormat::Png,
    ));
    spec.function = Some(EditFunction::RemoveWatermark);
    check_local_images(&spec).expect("imageedit accepts alpha");
}

// ---- the client refuses before sending ----

/// A client pointed at a port nothing listens on: a refusal proves nothing was sent.
fn offline_client() -> Client {
    Client::new("http://127.0.0.1:9/api/v1", ApiKey::new("sk-test".into())).unwrap()
}

#[tokio::test]
async fn the_client_refuses_an_invalid_job_without_sending_it() {
    let mut spec = JobSpec::new(Model::Wanx21T2iTurbo, "a lighthouse");
    spec.n = Some(9);
    match offline_client().create(&spec).await {
        Err(ClientError::Invalid(err)) => assert_eq!(err.field, "n"),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_blank_prompt_is_never_sent() {
    let spec = JobSpec::new(Model::Wanx21T2iTurbo, "\u{3000}\u{200B}\u{1b}\r\n");
    match offline_client().create(&spec).await {
        Err(ClientError::Invalid(err)) => {
            assert_eq!(err.field, "prompt");
            assert!(err.message.contains("is empty"), "{err}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn the_client_checks_local_files_before_uploading() {
    let dir = tempfile::tempdir().unwrap();
    let spec = local_edit(grey_png(dir.path(), "small.png", 300, 300));
    for result in [
        offline_client().create(&spec).await.map(|_| ()),
        offline_client().prepare(&spec).await.map(|_| ()),
    ] {
        match result {
            Err(ClientError::Invalid(err)) => {
                assert_eq!(err.field, "base_image");
                assert!(err.message.contains("512 to 4096"), "{err}");
            }
            other => panic!("expected a validation error, got {other:?}"),
        }
    }
    match offline_client()
        .upload(Model::Wanx21ImageEdit, &dir.path().join("small.png"))
        .await
    {
        Err(err @ ClientError::Invalid(_)) => {
            assert!(err.to_string().contains("512 to 4096"), "{err}")
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn wan25_local_files_become_data_uris_without_any_request() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_image(
        dir.path(),
        "photo.png",
        400,
        500,
        Rgb([200u8, 100, 50]),
        ImageFormat::Png,
    );
    let mut spec = multi(0);
    spec.images = vec![
        ImageRef::File(path.clone()),
        ImageRef::Url("https://example.com/2.png".into()),
    ];
    let prepared = offline_client()
        .prepare(&spec)
        .await
        .expect("no network needed");
    match &prepared.images[0] {
        ImageRef::DataUri(uri) => {
            let (mime, bytes) = wandash::dashscope::validate::decode_data_uri(uri).unwrap();
            assert_eq!(mime, "image/png");
            assert_eq!(bytes, std::fs::read(&path).unwrap());
        }
        other => panic!("expected a data URI, got {other:?}"),
    }
    assert_eq!(prepared.images[1], spec.images[1]);
    assert!(prepared.to_wire().is_ok());
}

// ---- the catalogue's models (issue 11): one test per new rule ----

fn with_images(model: Model, count: usize) -> JobSpec {
    let mut spec = JobSpec::new(model, "put image 1 in the sky");
    spec.images = (0..count)
        .map(|i| ImageRef::Url(format!("https://example.com/{i}.png")))
        .collect();
    spec
}

fn sized(model: Model, size: &str) -> JobSpec {
    let mut spec = minimal(model);
    spec.size = Some(size.parse().unwrap());
    spec
}

#[test]
fn n_follows_each_models_range() {
    let mut spec = minimal(Model::QwenImageMax);
    spec.n = Some(1);
    accepted(&spec);
    spec.n = Some(2);
    refused(&spec, "n", "n must be 1 for qwen-image-max");
    let mut spec = minimal(Model::QwenImageEditPlus);
    spec.n = Some(6);
    accepted(&spec);
    spec.n = Some(7);
    refused(&spec, "n", "n must be 1 to 6");
}

#[test]
fn wan27_n_reaches_12_only_with_enable_sequential() {
    let mut spec = minimal(Model::Wan27Image);
    spec.n = Some(12);
    refused(&spec, "n", "n must be 1 to 4");
    spec.enable_sequential = Some(true);
    accepted(&spec);
    spec.n = Some(13);
    refused(&spec, "n", "1 to 12 with enable_sequential");
}

#[test]
fn a_size_token_the_model_does_not_take_is_refused() {
    accepted(&sized(Model::Wan26Image, "2K"));
    refused(&sized(Model::Wan26Image, "4K"), "size", "one of 1K, 2K");
    refused(
        &sized(Model::QwenImage, "2K"),
        "size",
        "2K is not taken by qwen-image; give WIDTH*HEIGHT",
    );
    refused(&sized(Model::Wan27Image, "4K"), "size", "one of 1K, 2K");
    accepted(&sized(Model::Wan27ImagePro, "4k"));
}

#[test]
fn wan27_pro_makes_4k_for_text_to_image_only() {
    let mut spec = with_images(Model::Wan27ImagePro, 1);
    spec.size = Some("4K".parse().unwrap());
    refused(&spec, "size", "4K is for text-to-image only");
}

#[test]
fn wan25_t2i_sizes_outside_their_area_or_aspect_are_refused() {
    accepted(&sized(Model::Wan25T2iPreview, "1280*1280"));
    refused(
        &sized(Model::Wan25T2iPreview, "1024*1024"),
        "size",
        "1638400 (1280*1280) to 2073600 (1440*1440)",
    );
    refused(
        &sized(Model::Wan26T2i, "4000*500"),
        "size",
        "outside 1:4 to 4:1",
    );
}

#[test]
fn a_qwen_image_size_outside_its_five_is_refused() {
    accepted(&sized(Model::QwenImagePlus, "1664*928"));
    refused(
        &sized(Model::QwenImagePlus, "1024*1024"),
        "size",
        "not offered by qwen-image-plus; one of 1664*928, 1472*1104, 1328*1328",
    );
}

#[test]
fn qwen_image_edit_sides_outside_512_to_2048_are_refused() {
    accepted(&sized(Model::QwenImageEdit, "2048*512"));
    refused(
        &sized(Model::QwenImageEdit, "2049*1024"),
        "size",
        "each side must be 512 to 2048",
    );
}

#[test]
fn image_counts_follow_each_models_range() {
    refused(
        &with_images(Model::QwenImageEdit, 0),
        "images",
        "0 images given; qwen-image-edit takes 1 to 3",
    );
    accepted(&with_images(Model::QwenImage20, 0));
    accepted(&with_images(Model::Wan27Image, 9));
    refused(
        &with_images(Model::Wan27Image, 10),
        "images",
        "takes 0 to 9",
    );
}

#[test]
fn wan26_image_interleaved_takes_at_most_one_image_and_one_n() {
    let mut spec = with_images(Model::Wan26Image, 2);
    accepted(&spec);
    spec.enable_interleave = Some(true);
    refused(&spec, "images", "takes 0 to 1");
    spec.images.truncate(1);
    accepted(&spec);
    spec.n = Some(2);
    refused(
        &spec,
        "n",
        "n must be 1 for wan2.6-image with enable_interleave",
    );
    spec.n = None;
    spec.size = Some(Size::new(1536, 1536).into());
    refused(&spec, "size", "to 1638400 (1280*1280)");
}

#[test]
fn max_images_applies_only_interleaved_and_is_1_to_5() {
    let mut spec = with_images(Model::Wan26Image, 1);
    spec.max_images = Some(3);
    refused(&spec, "max_images", "only with enable_interleave");
    spec.enable_interleave = Some(true);
    accepted(&spec);
    spec.max_images = Some(6);
    refused(&spec, "max_images", "max_images must be 1 to 5");
    let mut spec = minimal(Model::Wan26T2i);
    spec.max_images = Some(1);
    refused(&spec, "max_images", "does not apply to model wan2.6-t2i");
}

#[test]
fn prompt_extend_on_wan26_image_is_for_editing_only() {
    let mut spec = with_images(Model::Wan26Image, 1);
    spec.prompt_extend = Some(false);
    accepted(&spec);
    spec.enable_interleave = Some(true);
    refused(&spec, "prompt_extend", "not with enable_interleave");
}

#[test]
fn thinking_mode_is_for_text_to_image_only() {
    let mut spec = minimal(Model::Wan27Image);
    spec.thinking_mode = Some(false);
    accepted(&spec);
    spec.images = with_images(Model::Wan27Image, 1).images;
    refused(&spec, "thinking_mode", "text-to-image with wan2.7-image");
}

fn palette(entries: &[(&str, f64)]) -> Vec<PaletteColor> {
    entries
        .iter()
        .map(|(hex, ratio)| PaletteColor {
            hex: hex.to_string(),
            ratio: *ratio,
        })
        .collect()
}

#[test]
fn wan27_color_palette_takes_3_to_10_hex_colours_with_ratios_0_to_1_naming_the_entry() {
    let mut spec = minimal(Model::Wan27ImagePro);
    spec.color_palette = palette(&[("#112233", 0.5), ("#445566", 0.3), ("#778899", 0.2)]);
    accepted(&spec);
    spec.color_palette.pop();
    refused(
        &spec,
        "color_palette",
        "2 colours given; color_palette takes 3 to 10",
    );
    spec.color_palette = palette(&[("#112233", 0.5), ("112233", 0.3), ("#778899", 0.2)]);
    refused(
        &spec,
        "color_palette",
        "entry 2: hex `112233` is not a colour #RRGGBB",
    );
    spec.color_palette = palette(&[("#112233", 0.5), ("#445566", 0.3), ("#778899", -0.2)]);
    refused(
        &spec,
        "color_palette",
        "entry 3: ratio -0.2 is out of range; ratio must be 0 to 1",
    );
    // Only wan2.7 takes a palette.
    let mut other = minimal(Model::Wan26T2i);
    other.color_palette = palette(&[("#112233", 0.5), ("#445566", 0.3), ("#778899", 0.2)]);
    refused(
        &other,
        "color_palette",
        "does not apply to model wan2.6-t2i",
    );
}

#[test]
fn wan27_bbox_list_has_at_most_one_list_of_boxes_per_input_image() {
    let mut spec = with_images(Model::Wan27Image, 2);
    spec.bbox_list = vec![vec![[0.0, 0.0, 100.0, 100.0]], vec![]];
    accepted(&spec);
    spec.bbox_list.push(vec![[1.0, 1.0, 2.0, 2.0]]);
    refused(&spec, "bbox_list", "3 lists of boxes for 2 input image(s)");
    spec.bbox_list = vec![vec![[0.0, 0.0, 100.0, 100.0], [5.0, f64::NAN, 6.0, 7.0]]];
    refused(
        &spec,
        "bbox_list",
        "image 1 box 2: coordinates must be numbers 0 or more",
    );
    let mut text_only = minimal(Model::Wan27Image);
    text_only.bbox_list = vec![vec![[0.0, 0.0, 100.0, 100.0]]];
    refused(&text_only, "bbox_list", "applies only with input images");
}

#[test]
fn wan27_palette_and_boxes_travel_in_parameters_and_read_back() {
    let mut spec = with_images(Model::Wan27Image, 1);
    spec.color_palette = palette(&[("#112233", 0.5), ("#445566", 0.25), ("#778899", 0.25)]);
    spec.bbox_list = vec![vec![[0.0, 0.0, 100.0, 50.5]]];
    let wire = spec.to_wire().unwrap();
    assert_eq!(
        wire["parameters"]["color_palette"],
        json!([{"hex": "#112233", "ratio": 0.5}, {"hex": "#445566", "ratio": 0.25}, {"hex": "#778899", "ratio": 0.25}])
    );
    assert_eq!(
        wire["parameters"]["bbox_list"],
        json!([[[0, 0, 100, 50.5]]])
    );
    assert_eq!(JobSpec::from_wire(&wire).unwrap(), spec);
    let mut bad = wire.clone();
    bad["parameters"]["color_palette"] = json!(["#112233"]);
    assert!(
        JobSpec::from_wire(&bad)
            .unwrap_err()
            .to_string()
            .starts_with("color_palette must be a list"),
    );
}

#[test]
fn prompt_limits_follow_the_catalogue() {
    for (model, limit) in [
        (Model::Wan22T2iFlash, 500),
        (Model::Wan25T2iPreview, 2000),
        (Model::Wan26T2i, 2100),
        (Model::Wan27Image, 5000),
        (Model::QwenImage, 800),
        (Model::ZImageTurbo, 800),
    ] {
        let mut spec = minimal(model);
        spec.prompt = "字".repeat(limit);
        accepted(&spec);
        spec.prompt.push('字');
        refused(&spec, "prompt", &format!("limit of {limit} for {model}"));
    }
    let mut spec = minimal(Model::Wan22T2iPlus);
    spec.negative_prompt = Some("x".repeat(501));
    refused(&spec, "negative_prompt", "limit of 500");
}

#[test]
fn z_image_takes_no_negative_prompt_or_watermark() {
    let mut spec = minimal(Model::ZImageTurbo);
    spec.negative_prompt = Some("blur".into());
    refused(
        &spec,
        "negative_prompt",
        "does not apply to model z-image-turbo",
    );
    let mut spec = minimal(Model::ZImageTurbo);
    spec.watermark = Some(true);
    refused(&spec, "watermark", "does not apply to model z-image-turbo");
}

#[test]
fn a_wan27_input_beyond_8_to_1_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = JobSpec::new(Model::Wan27Image, "widen");
    spec.images = vec![ImageRef::File(grey_png(dir.path(), "wide.png", 2000, 240))];
    local_refused(&spec, "images", "outside 1:8 to 8:1");
    spec.images = vec![ImageRef::File(grey_png(dir.path(), "ok.png", 1920, 240))];
    check_local_images(&spec).expect("8:1 is within the range");
}

#[test]
fn a_model_the_region_does_not_offer_is_refused_naming_the_regions() {
    let draft = Draft::new(painting(), Path::new("/")).for_region(Region::Singapore);
    let problems = intake::check(draft).expect_err("Singapore has no wanx-x-painting");
    assert_eq!(problems[0].field, "model");
    assert!(
        problems[0].message.contains(
            "wanx-x-painting is not offered in ap-southeast-1; it is offered in cn-beijing"
        ),
        "{}",
        problems[0]
    );
    let draft = Draft::new(minimal(Model::Wanx21T2iTurbo), Path::new("/"));
    intake::check(draft.for_region(Region::Singapore)).expect("wan2.1-t2i-turbo there");
}

/// The refusal of models served only on image-generation and multimodal-generation,
/// there until this build spoke those endpoints (issue #11), is gone: they are queued.
#[test]
fn a_model_served_only_on_the_messages_endpoints_is_taken() {
    for model in [
        Model::Wan26T2i,
        Model::QwenImageMax,
        Model::ZImageTurbo,
        Model::QwenImage,
    ] {
        let problems = intake::rule_problems(&minimal(model));
        assert!(problems.is_empty(), "{model}: {problems:?}");
    }
}

#[tokio::test]
async fn the_client_refuses_a_model_its_region_does_not_offer_without_sending_it() {
    let client = offline_client().in_region(Region::Virginia);
    match client.create(&minimal(Model::Wanx21T2iTurbo)).await {
        Err(ClientError::Invalid(err)) => {
            assert_eq!(err.field, "model");
            assert!(
                err.message.contains(
                    "not offered in us-east-1; it is offered in cn-beijing, ap-southeast-1"
                ),
                "{err}"
            );
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}
