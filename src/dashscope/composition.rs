//! wan2.7's composition controls, sent in `parameters` (API-CURRENT.md, wan2.7):
//! `color_palette`, 3 to 10 colours each `{hex, ratio}`, and `bbox_list`, boxes per input
//! image. Their shapes are unconfirmed (u: API-CURRENT.md open question 4), so only what
//! the digest states is enforced, and the rest is let through for the service to judge:
//! - ratios are each 0 to 1, but not required to add up to 1;
//! - a box is four non-negative numbers, `[x1, y1, x2, y2]` as wandash assumes, not
//!   checked against the image's size nor for x1 < x2;
//! - there is at most one list of boxes per input image (fewer lists are let through).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// One colour of a palette: `#RRGGBB` and its share of the image, 0 to 1.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaletteColor {
    pub hex: String,
    pub ratio: f64,
}

/// A box on an input image: `[x1, y1, x2, y2]` (u).
pub type BoundingBox = [f64; 4];

/// `#112233:0.5,#445566:0.3,#778899:0.2`, the `--color-palette` flag's form.
pub fn parse_palette(text: &str) -> Result<Vec<PaletteColor>, String> {
    text.split(',')
        .map(str::trim)
        .enumerate()
        .map(|(i, entry)| {
            let (hex, ratio) = entry.split_once(':').ok_or_else(|| {
                format!(
                    "entry {}: `{entry}` is not HEX:RATIO; write e.g. #112233:0.5,#445566:0.3,#778899:0.2",
                    i + 1
                )
            })?;
            let ratio = ratio.trim().parse().map_err(|_| {
                format!("entry {}: ratio `{}` is not a number 0 to 1", i + 1, ratio.trim())
            })?;
            Ok(PaletteColor {
                hex: hex.trim().to_string(),
                ratio,
            })
        })
        .collect()
}

/// `[[[0,0,512,512]], [[10,10,100,200], [300,300,400,400]]]`: the `--bbox-list` flag's
/// form, one list of boxes per input image, as JSON.
pub fn parse_bbox_list(text: &str) -> Result<Vec<Vec<BoundingBox>>, String> {
    serde_json::from_str(text).map_err(|e| {
        format!(
            "not a list, per input image, of [x1, y1, x2, y2] boxes ({e}); write e.g. [[[0,0,512,512]]]"
        )
    })
}

/// The palette's rule: `min` to `max` colours, each `#RRGGBB` with a ratio 0 to 1. The
/// first bad entry is named (from 1).
pub fn check_palette(palette: &[PaletteColor], min: u32, max: u32) -> Result<(), String> {
    let count = palette.len();
    if !(min as usize..=max as usize).contains(&count) {
        return Err(format!(
            "{count} colours given; color_palette takes {min} to {max}"
        ));
    }
    for (i, color) in palette.iter().enumerate() {
        let entry = i + 1;
        if !is_hex_colour(&color.hex) {
            return Err(format!(
                "entry {entry}: hex `{}` is not a colour #RRGGBB",
                crate::text::sanitize(&color.hex)
            ));
        }
        if !(color.ratio.is_finite() && (0.0..=1.0).contains(&color.ratio)) {
            return Err(format!(
                "entry {entry}: ratio {} is out of range; ratio must be 0 to 1",
                color.ratio
            ));
        }
    }
    Ok(())
}

/// The boxes' rule: input images to put them on, at most one list per image, and each
/// box four non-negative numbers.
pub fn check_bbox_list(boxes: &[Vec<BoundingBox>], images: usize) -> Result<(), String> {
    if images == 0 {
        return Err("applies only with input images (boxes are drawn on them)".to_string());
    }
    if boxes.len() > images {
        return Err(format!(
            "{} lists of boxes for {images} input image(s); give at most one list per image",
            boxes.len()
        ));
    }
    for (image, list) in boxes.iter().enumerate() {
        if let Some((at, _)) = list
            .iter()
            .enumerate()
            .find(|(_, b)| b.iter().any(|v| !(v.is_finite() && *v >= 0.0)))
        {
            return Err(format!(
                "image {} box {}: coordinates must be numbers 0 or more",
                image + 1,
                at + 1
            ));
        }
    }
    Ok(())
}

/// The boxes as the request carries them: whole coordinates as integers (pixels), since
/// the service's number type is not published (u) and `10` is read by either.
pub fn bbox_list_wire(boxes: &[Vec<BoundingBox>]) -> Value {
    let number = |v: f64| {
        if v.fract() == 0.0 && (0.0..9.0e15).contains(&v) {
            json!(v as u64)
        } else {
            json!(v)
        }
    };
    Value::Array(
        boxes
            .iter()
            .map(|list| {
                Value::Array(
                    list.iter()
                        .map(|b| Value::Array(b.iter().map(|v| number(*v)).collect()))
                        .collect(),
                )
            })
            .collect(),
    )
}

fn is_hex_colour(text: &str) -> bool {
    text.len() == 7 && text.starts_with('#') && text[1..].chars().all(|c| c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_flag_form_reads_hex_and_ratio_pairs() {
        assert_eq!(
            parse_palette("#112233:0.5, #445566:0.3,#778899:0.2").unwrap(),
            palette(&[("#112233", 0.5), ("#445566", 0.3), ("#778899", 0.2)])
        );
        let err = parse_palette("#112233:0.5,#445566").unwrap_err();
        assert!(
            err.starts_with("entry 2: `#445566` is not HEX:RATIO"),
            "{err}"
        );
        let err = parse_palette("#112233:half").unwrap_err();
        assert!(err.contains("entry 1: ratio `half`"), "{err}");
    }

    #[test]
    fn a_palette_takes_3_to_10_colours_each_hex_with_a_ratio_0_to_1() {
        let three = [("#112233", 0.5), ("#445566", 0.3), ("#778899", 0.2)];
        assert_eq!(check_palette(&palette(&three), 3, 10), Ok(()));
        let err = check_palette(&palette(&three[..2]), 3, 10).unwrap_err();
        assert_eq!(err, "2 colours given; color_palette takes 3 to 10");
        let err = check_palette(&palette(&[("#112233", 0.1); 11]), 3, 10).unwrap_err();
        assert!(err.starts_with("11 colours"), "{err}");
        let bad_hex = [("#112233", 0.5), ("#44556", 0.3), ("#778899", 0.2)];
        let err = check_palette(&palette(&bad_hex), 3, 10).unwrap_err();
        assert_eq!(err, "entry 2: hex `#44556` is not a colour #RRGGBB");
        let not_hex = [("#112233", 0.5), ("#445566", 0.3), ("#77889G", 0.2)];
        assert!(
            check_palette(&palette(&not_hex), 3, 10)
                .unwrap_err()
                .starts_with("entry 3: hex")
        );
        let bad_ratio = [("#112233", 0.5), ("#445566", 1.5), ("#778899", 0.2)];
        let err = check_palette(&palette(&bad_ratio), 3, 10).unwrap_err();
        assert_eq!(
            err,
            "entry 2: ratio 1.5 is out of range; ratio must be 0 to 1"
        );
        // (u) Ratios that do not add up to 1 are the service's to judge.
        let loose = [("#112233", 0.9), ("#445566", 0.9), ("#778899", 0.9)];
        assert_eq!(check_palette(&palette(&loose), 3, 10), Ok(()));
    }

    #[test]
    fn boxes_go_on_input_images_one_list_each_at_most() {
        let boxes =
            parse_bbox_list("[[[0,0,512,512]],[[10,10,100,200],[300,300,400,400]]]").unwrap();
        assert_eq!(boxes.len(), 2);
        assert_eq!(check_bbox_list(&boxes, 2), Ok(()));
        assert_eq!(check_bbox_list(&boxes[..1], 2), Ok(()));
        assert!(
            check_bbox_list(&boxes, 1)
                .unwrap_err()
                .starts_with("2 lists of boxes for 1 input image")
        );
        assert!(
            check_bbox_list(&boxes, 0)
                .unwrap_err()
                .starts_with("applies only with input images")
        );
        let negative = vec![vec![[0.0, 0.0, 1.0, 1.0], [0.0, -1.0, 5.0, 5.0]]];
        assert_eq!(
            check_bbox_list(&negative, 1).unwrap_err(),
            "image 1 box 2: coordinates must be numbers 0 or more"
        );
        assert!(parse_bbox_list("[[0,0,1,1]]").is_err());
        assert_eq!(bbox_list_wire(&boxes[..1]), json!([[[0, 0, 512, 512]]]));
        assert_eq!(
            bbox_list_wire(&[vec![[0.5, 0.0, 1.0, 1.0]]]),
            json!([[[0.5, 0, 1, 1]]])
        );
    }
}
