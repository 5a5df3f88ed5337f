//! Checking that a downloaded image decodes, within what its request can produce.

use crate::dashscope::{EditFunction, Family, JobSpec};

/// What decoding told about a downloaded image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedImage {
    pub ext: &'static str,
    pub width: u32,
    pub height: u32,
}

/// How large a downloaded image may be decoded: the size the request asked for, with a
/// margin, so that a small file claiming 16000x16000 pixels is refused before its pixels
/// are allocated rather than decoded into a gigabyte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DecodeBound {
    pub max_side: u32,
    pub max_pixels: u64,
}

/// How much larger than asked, per side, an image may be: a service that rounds or pads
/// is not refused, one that answers 16 times the pixels is.
const SIDE_MARGIN: u32 = 2;
/// wanx2.1-imageedit's largest input side (API.md); its output keeps the input's size,
/// expanded up to twice or upscaled up to four times.
const IMAGEEDIT_MAX_INPUT_SIDE: u32 = 4_096;
/// Bytes per decoded pixel at most (16-bit RGBA).
const BYTES_PER_PIXEL: u64 = 8;
/// Whatever the request, no decode allocates more than this.
const MAX_DECODE_BYTES: u64 = 1 << 30;

impl DecodeBound {
    /// The bound for the images of a job asked as `spec`: the size it asked for (the
    /// model's default when it asked none) with `SIDE_MARGIN`; for image editing, which
    /// keeps its input's unknown size, the documented largest result.
    pub fn for_spec(spec: &JobSpec) -> Self {
        let max_side = match (spec.size, spec.model.family()) {
            (Some(size), _) => {
                let size = size.nominal();
                size.width.max(size.height) * SIDE_MARGIN
            }
            (None, Family::TextToImage | Family::Inpainting) => DEFAULT_SIDE * SIDE_MARGIN,
            (None, Family::ImageEdit) => {
                let growth = match spec.function {
                    Some(EditFunction::SuperResolution) => {
                        spec.upscale_factor.unwrap_or(1).clamp(1, 4)
                    }
                    Some(EditFunction::Expand) => 2,
                    _ => 1,
                };
                IMAGEEDIT_MAX_INPUT_SIDE * growth
            }
            // About 1280*1280 at an aspect ratio of up to 4:1.
            (None, Family::MultiImageEdit) => MULTI_IMAGE_EDIT_MAX_SIDE * SIDE_MARGIN,
        };
        DecodeBound {
            max_side,
            max_pixels: u64::from(max_side) * u64::from(max_side),
        }
    }
}

/// What text-to-image and inpainting make when no size is asked.
const DEFAULT_SIDE: u32 = 1_024;
/// wan2.5-i2i-preview's default result: about 1280*1280, its aspect ratio up to 4:1.
const MULTI_IMAGE_EDIT_MAX_SIDE: u32 = 2_560;

/// Checks that `bytes` decode as an image no larger than `bound` (which refuses a
/// decompression bomb before its pixels are allocated); the error says why not.
/// Blocking: call from `spawn_blocking`.
pub(crate) fn check_image(bytes: &[u8], bound: DecodeBound) -> Result<CheckedImage, String> {
    let format = image::guess_format(bytes).map_err(|e| e.to_string())?;
    let mut reader = image::ImageReader::with_format(std::io::Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(bound.max_side);
    limits.max_image_height = Some(bound.max_side);
    limits.max_alloc = Some(
        bound
            .max_pixels
            .saturating_mul(BYTES_PER_PIXEL)
            .min(MAX_DECODE_BYTES),
    );
    reader.limits(limits);
    let decoded = reader.decode().map_err(|e| e.to_string())?;
    Ok(CheckedImage {
        ext: format.extensions_str().first().copied().unwrap_or("img"),
        width: decoded.width(),
        height: decoded.height(),
    })
}

/// Images for the engine's unit tests.
#[cfg(test)]
pub(crate) mod test_images {
    use super::DecodeBound;
    use crate::dashscope::JobSpec;

    pub fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png).unwrap();
        out.into_inner()
    }

    /// A small PNG whose header claims `w` x `h`: what a decompression bomb looks like
    /// before it is inflated.
    pub fn png_claiming(w: u32, h: u32) -> Vec<u8> {
        let mut bytes = png(8, 8);
        // IHDR's data starts at byte 16 (8 signature + 4 length + 4 type); its CRC covers
        // the type and the 13 data bytes.
        bytes[16..20].copy_from_slice(&w.to_be_bytes());
        bytes[20..24].copy_from_slice(&h.to_be_bytes());
        let crc = crc32(&bytes[12..29]);
        bytes[29..33].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    pub fn text_to_image_bound(width: u32, height: u32) -> DecodeBound {
        let mut spec = JobSpec::new(crate::dashscope::Model::Wanx21T2iTurbo, "a cat");
        spec.size = Some(crate::dashscope::Size::new(width, height).into());
        DecodeBound::for_spec(&spec)
    }
}

#[cfg(test)]
mod tests {
    use super::test_images::{png, png_claiming, text_to_image_bound};
    use super::*;

    #[test]
    fn decoding_is_bounded_by_the_asked_size_with_a_margin() {
        let asked_1024 = text_to_image_bound(1024, 1024);
        assert_eq!(asked_1024.max_side, 2048);
        assert!(
            check_image(&png(2048, 16), asked_1024).is_ok(),
            "within the margin"
        );
        // A small file claiming 16000x16000 (1 GB of pixels) for a 1024*1024 request.
        let why = check_image(&png_claiming(16_000, 16_000), asked_1024).unwrap_err();
        assert!(why.to_lowercase().contains("limit"), "{why}");
        assert!(check_image(&png(2049, 8), asked_1024).is_err());
        // Wider requests allow wider images.
        assert!(check_image(&png(2049, 8), text_to_image_bound(1440, 1024)).is_ok());
    }

    #[test]
    fn editing_is_bounded_by_its_input_limit_grown_by_the_asked_factor() {
        let mut spec = JobSpec::new(crate::dashscope::Model::Wanx21ImageEdit, "sharper");
        spec.function = Some(EditFunction::DescriptionEdit);
        assert_eq!(DecodeBound::for_spec(&spec).max_side, 4_096);
        spec.function = Some(EditFunction::SuperResolution);
        spec.upscale_factor = Some(4);
        assert_eq!(DecodeBound::for_spec(&spec).max_side, 16_384);
    }
}
