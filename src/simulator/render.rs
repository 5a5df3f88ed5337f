//! The images a simulated task answers with: real PNGs, cheap to make in a debug build.
//!
//! Text-to-image draws a gradient with discs whose colours come from a hash of the
//! prompt and whose layout comes from a hash of prompt and seed: repeatable, and
//! recognisably different per prompt. Editing models transform their inputs visibly and
//! in the way the function's parameters say (expand grows the canvas, the mask limits
//! where an edit lands, ...).

use std::io::Cursor;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, Rgb, RgbImage};

use super::tasks::hash64;
use crate::dashscope::catalogue::DefaultSize;
use crate::dashscope::{EditFunction, Family, JobSpec, OutputSize, Size};

/// The largest side the simulator renders (super_resolution of a big image stops here).
const MAX_OUTPUT_SIDE: u32 = 8192;

/// The decoded input images of an editing task.
#[derive(Default)]
pub struct Inputs {
    pub base: Option<RgbImage>,
    pub mask: Option<RgbImage>,
    pub images: Vec<RgbImage>,
}

/// Renders image `seed` of a task as PNG bytes; `Err` says why the inputs cannot be used.
pub fn render(spec: &JobSpec, inputs: &Inputs, seed: u64) -> Result<Vec<u8>, String> {
    let look = Look::new(&spec.prompt, seed);
    let mut image = match spec.model.family() {
        Family::TextToImage => {
            let size = asked_or_default(spec);
            look.paint(size.width, size.height)
        }
        Family::ImageEdit => {
            let base = inputs.base.as_ref().ok_or("base_image is required")?;
            let function = spec.function.ok_or("function is required")?;
            edit(spec, function, base, inputs.mask.as_ref(), &look)?
        }
        Family::Inpainting => {
            let base = inputs.base.as_ref().ok_or("base_image is required")?;
            let mask = inputs.mask.as_ref().ok_or("mask_image is required")?;
            inpaint(spec, base, mask, &look)
        }
        // Models that edit when given images and generate from text alone otherwise
        // (wan2.6-image, wan2.7, qwen-image-2.0).
        Family::MultiImageEdit if inputs.images.is_empty() => {
            let size = asked_or_default(spec);
            look.paint(size.width, size.height)
        }
        Family::MultiImageEdit => combine(spec, &inputs.images, &look)?,
    };
    if spec.watermark == Some(true) {
        stamp_watermark(&mut image);
    }
    encode_png(&image)
}

/// The size the job asks for, else the model's default (a token as the square of its
/// class), else 1024*1024.
fn asked_or_default(spec: &JobSpec) -> Size {
    let default =
        spec.model
            .entry()
            .size
            .and_then(|rule| rule.default)
            .map(|default| match default {
                DefaultSize::Pixels(size) => OutputSize::Pixels(size),
                DefaultSize::Token(token) => OutputSize::Token(token),
            });
    spec.size
        .or(default)
        .map_or(Size::new(1024, 1024), OutputSize::nominal)
}

/// Colours and layout drawn from the prompt (palette) and prompt + seed (layout).
struct Look {
    from: [u8; 3],
    to: [u8; 3],
    accent: [u8; 3],
    /// Gradient direction, in sixteenths of a turn.
    direction: u32,
    /// Disc centres and radii as fractions (per mille) of the canvas.
    discs: [(u32, u32, u32); 3],
}

impl Look {
    fn new(prompt: &str, seed: u64) -> Look {
        let palette = hash64(&[prompt.as_bytes()]);
        let layout = hash64(&[prompt.as_bytes(), &seed.to_le_bytes()]);
        let colour = |h: u64| {
            [
                (h & 0xff) as u8,
                ((h >> 8) & 0xff) as u8,
                ((h >> 16) & 0xff) as u8,
            ]
        };
        let disc = |h: u64| {
            (
                (h % 1000) as u32,
                ((h >> 10) % 1000) as u32,
                60 + ((h >> 20) % 200) as u32,
            )
        };
        Look {
            from: colour(palette),
            to: colour(palette >> 24),
            accent: colour(palette.rotate_left(17) ^ 0x00a5_5a5a),
            direction: (layout % 16) as u32,
            discs: [
                disc(layout >> 4),
                disc(layout.rotate_left(23)),
                disc(layout.rotate_left(41)),
            ],
        }
    }

    /// The generated picture at `w`x`h`.
    fn paint(&self, w: u32, h: u32) -> RgbImage {
        let (dx, dy) = DIRECTIONS[self.direction as usize];
        let span = (w as i64 * dx.abs() + h as i64 * dy.abs()).max(1);
        let offset =
            if dx < 0 { w as i64 * -dx } else { 0 } + if dy < 0 { h as i64 * -dy } else { 0 };
        let scale = w.min(h) as i64;
        let discs: Vec<(i64, i64, i64)> = self
            .discs
            .iter()
            .map(|&(x, y, r)| {
                (
                    x as i64 * w as i64 / 1000,
                    y as i64 * h as i64 / 1000,
                    r as i64 * scale / 1000,
                )
            })
            .collect();
        RgbImage::from_fn(w, h, |x, y| {
            let (xi, yi) = (x as i64, y as i64);
            for (i, &(cx, cy, r)) in discs.iter().enumerate() {
                let (ex, ey) = (xi - cx, yi - cy);
                if ex * ex + ey * ey < r * r {
                    return Rgb(if i == 1 {
                        invert(self.accent)
                    } else {
                        self.accent
                    });
                }
            }
            let t = ((xi * dx + yi * dy + offset) * 255 / span) as u8;
            Rgb(lerp(self.from, self.to, t))
        })
    }
}

/// Sixteen gradient directions as integer steps.
const DIRECTIONS: [(i64, i64); 16] = [
    (1, 0),
    (2, 1),
    (1, 1),
    (1, 2),
    (0, 1),
    (-1, 2),
    (-1, 1),
    (-2, 1),
    (-1, 0),
    (-2, -1),
    (-1, -1),
    (-1, -2),
    (0, -1),
    (1, -2),
    (1, -1),
    (2, -1),
];

fn lerp(a: [u8; 3], b: [u8; 3], t: u8) -> [u8; 3] {
    let mix = |x: u8, y: u8| ((x as u32 * (255 - t as u32) + y as u32 * t as u32) / 255) as u8;
    [mix(a[0], b[0]), mix(a[1], b[1]), mix(a[2], b[2])]
}

fn invert(c: [u8; 3]) -> [u8; 3] {
    [255 - c[0], 255 - c[1], 255 - c[2]]
}

fn luma(p: &Rgb<u8>) -> u8 {
    ((p[0] as u32 * 299 + p[1] as u32 * 587 + p[2] as u32 * 114) / 1000) as u8
}

fn edit(
    spec: &JobSpec,
    function: EditFunction,
    base: &RgbImage,
    mask: Option<&RgbImage>,
    look: &Look,
) -> Result<RgbImage, String> {
    let (w, h) = base.dimensions();
    Ok(match function {
        EditFunction::StylizationAll => tint(base, look.accent, 128),
        EditFunction::StylizationLocal => {
            // The middle of the picture (an ellipse) takes the style.
            let (cx, cy) = (w as i64 / 2, h as i64 / 2);
            let (rx, ry) = ((w as i64 / 3).max(1), (h as i64 / 3).max(1));
            let styled = tint(base, look.accent, 160);
            RgbImage::from_fn(w, h, |x, y| {
                let (ex, ey) = (x as i64 - cx, y as i64 - cy);
                if ex * ex * ry * ry + ey * ey * rx * rx <= rx * rx * ry * ry {
                    *styled.get_pixel(x, y)
                } else {
                    *base.get_pixel(x, y)
                }
            })
        }
        EditFunction::DescriptionEdit => blend(base, &look.paint(w, h), 96),
        EditFunction::DescriptionEditWithMask => {
            let mask = mask.ok_or("mask_image is required for description_edit_with_mask")?;
            let painted = look.paint(w, h);
            RgbImage::from_fn(w, h, |x, y| {
                if *mask.get_pixel(x, y) == Rgb([255, 255, 255]) {
                    *painted.get_pixel(x, y)
                } else {
                    *base.get_pixel(x, y)
                }
            })
        }
        EditFunction::RemoveWatermark => {
            // Smooths the picture: text strokes fade into their surroundings.
            RgbImage::from_fn(w, h, |x, y| {
                let a = base.get_pixel(x.saturating_sub(2), y);
                let b = base.get_pixel((x + 2).min(w - 1), y);
                let c = base.get_pixel(x, y);
                Rgb([0, 1, 2].map(|k| ((a[k] as u32 + b[k] as u32 + 2 * c[k] as u32) / 4) as u8))
            })
        }
        EditFunction::Expand => {
            let scales = spec.expand.unwrap_or_default();
            let grow = |side: u32, scale: f64| (side as f64 * (scale - 1.0)).round() as u32;
            let (left, right, top, bottom) = (
                grow(w, scales.left),
                grow(w, scales.right),
                grow(h, scales.top),
                grow(h, scales.bottom),
            );
            let (nw, nh) = (w + left + right, h + top + bottom);
            let outside = look.paint(nw, nh);
            RgbImage::from_fn(nw, nh, |x, y| {
                if x >= left && x < left + w && y >= top && y < top + h {
                    *base.get_pixel(x - left, y - top)
                } else {
                    *outside.get_pixel(x, y)
                }
            })
        }
        EditFunction::SuperResolution => {
            let factor = spec.upscale_factor.unwrap_or(1);
            let (nw, nh) = (w * factor, h * factor);
            if nw > MAX_OUTPUT_SIDE || nh > MAX_OUTPUT_SIDE {
                return Err(format!(
                    "upscale_factor: {w}x{h} times {factor} is {nw}x{nh}, over the simulator's limit of {MAX_OUTPUT_SIDE} per side"
                ));
            }
            // Enlarged, and sharpened a little so factor 1 also changes the picture.
            let large = image::imageops::resize(base, nw, nh, image::imageops::FilterType::Nearest);
            RgbImage::from_fn(nw, nh, |x, y| {
                let p = large.get_pixel(x, y);
                Rgb([0, 1, 2].map(|k| (p[k] as i32 + (p[k] as i32 - 128) / 8).clamp(0, 255) as u8))
            })
        }
        EditFunction::Colorization => {
            // Grey levels mapped onto the prompt's palette.
            RgbImage::from_fn(w, h, |x, y| {
                Rgb(lerp(look.from, look.to, luma(base.get_pixel(x, y))))
            })
        }
        EditFunction::Doodle => {
            // Line art of the input (its edges), drawn over the generated picture.
            let painted = look.paint(w, h);
            RgbImage::from_fn(w, h, |x, y| {
                let here = luma(base.get_pixel(x, y)) as i32;
                let right = luma(base.get_pixel((x + 1).min(w - 1), y)) as i32;
                let below = luma(base.get_pixel(x, (y + 1).min(h - 1))) as i32;
                if (here - right).abs() + (here - below).abs() > 24 {
                    Rgb([20, 20, 20])
                } else {
                    *painted.get_pixel(x, y)
                }
            })
        }
        EditFunction::ControlCartoonFeature => {
            // A new picture with the reference character as an inset in the corner.
            let mut out = look.paint(w, h);
            let inset = image::imageops::thumbnail(base, (w / 3).max(1), (h / 3).max(1));
            image::imageops::overlay(&mut out, &inset, (w / 16) as i64, (h / 16) as i64);
            out
        }
    })
}

/// wanx-x-painting: the base at the output size, repainted where the mask marks.
fn inpaint(spec: &JobSpec, base: &RgbImage, mask: &RgbImage, look: &Look) -> RgbImage {
    let size = spec.size.map_or(Size::new(1024, 1024), OutputSize::nominal);
    let (w, h) = (size.width, size.height);
    let base = image::imageops::resize(base, w, h, image::imageops::FilterType::Nearest);
    let mask = image::imageops::resize(mask, w, h, image::imageops::FilterType::Nearest);
    let style = spec.style.as_deref().unwrap_or("<auto>");
    let styled = tint(&look.paint(w, h), look_colour(style), 96);
    let marks = |p: &Rgb<u8>| {
        if spec.mask_color.is_empty() {
            luma(p) >= 128 // binarised: white is the edit area
        } else {
            spec.mask_color.contains(&p.0)
        }
    };
    RgbImage::from_fn(w, h, |x, y| {
        if marks(mask.get_pixel(x, y)) {
            *styled.get_pixel(x, y)
        } else {
            *base.get_pixel(x, y)
        }
    })
}

/// wan2.5: the inputs side by side in vertical bands, tinted by the prompt.
fn combine(spec: &JobSpec, images: &[RgbImage], look: &Look) -> Result<RgbImage, String> {
    let last = images
        .last()
        .ok_or("images: at least one image is required")?;
    let size = spec.size.map_or_else(
        || keep_aspect(last.width(), last.height()),
        OutputSize::nominal,
    );
    let (w, h) = (size.width, size.height);
    let scaled: Vec<RgbImage> = images
        .iter()
        .map(|i| image::imageops::resize(i, w, h, image::imageops::FilterType::Nearest))
        .collect();
    let bands = scaled.len() as u32;
    let mixed = RgbImage::from_fn(w, h, |x, y| {
        *scaled[((x * bands) / w).min(bands - 1) as usize].get_pixel(x, y)
    });
    Ok(tint(&mixed, look.accent, 64))
}

/// The input's aspect at about 1280*1280 pixels (wan2.5's default size).
fn keep_aspect(w: u32, h: u32) -> Size {
    let aspect = (w as f64 / h as f64).clamp(0.25, 4.0);
    let target = 1280.0 * 1280.0;
    let width = (target * aspect).sqrt().floor();
    let height = (target / width).floor();
    Size::new(width as u32, height as u32)
}

fn look_colour(style: &str) -> [u8; 3] {
    let h = hash64(&[style.as_bytes()]);
    [
        (h & 0xff) as u8,
        ((h >> 8) & 0xff) as u8,
        ((h >> 16) & 0xff) as u8,
    ]
}

/// Mixes a colour into every pixel; `amount` of 255 replaces the picture.
fn tint(image: &RgbImage, colour: [u8; 3], amount: u8) -> RgbImage {
    RgbImage::from_fn(image.width(), image.height(), |x, y| {
        Rgb(lerp(image.get_pixel(x, y).0, colour, amount))
    })
}

fn blend(a: &RgbImage, b: &RgbImage, amount: u8) -> RgbImage {
    RgbImage::from_fn(a.width(), a.height(), |x, y| {
        Rgb(lerp(a.get_pixel(x, y).0, b.get_pixel(x, y).0, amount))
    })
}

/// A light box in the lower right corner where the service writes "AI生成".
fn stamp_watermark(image: &mut RgbImage) {
    let (w, h) = image.dimensions();
    let (bw, bh) = ((w / 8).max(1), (h / 24).max(1));
    for y in h.saturating_sub(bh + h / 48)..h.saturating_sub(h / 48) {
        for x in w.saturating_sub(bw + w / 48)..w.saturating_sub(w / 48) {
            let p = image.get_pixel(x, y).0;
            image.put_pixel(x, y, Rgb(lerp(p, [255, 255, 255], 180)));
        }
    }
}

fn encode_png(image: &RgbImage) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    PngEncoder::new_with_quality(
        Cursor::new(&mut bytes),
        CompressionType::Fast,
        FilterType::Sub,
    )
    .write_image(
        image.as_raw(),
        image.width(),
        image.height(),
        image::ExtendedColorType::Rgb8,
    )
    .map_err(|e| format!("PNG encoding failed: {e}"))?;
    Ok(bytes)
}
