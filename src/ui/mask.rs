//! The mask painter's logic, with no terminal and no files: how an image of W x H pixels
//! sits on a grid of halfblock cells, the brush and the rectangle in image pixels, invert
//! and clear, and the PNG the service takes (white = edit, black = keep, at the base
//! image's exact resolution).
//!
//! Halfblock cells are one dot wide and two dots high, and a dot is square, so an image is
//! fitted into `cols x 2*rows` dots keeping its aspect ratio; every dot covers a block of
//! image pixels. The brush is a disc in image pixels centred on the cursor's cell, so the
//! mask keeps the full resolution however coarse the screen is.

use image::codecs::png::PngEncoder;
use image::{GrayImage, ImageEncoder, Luma};

/// A pixel the edit may change (white in the PNG).
const EDIT: Luma<u8> = Luma([255]);
/// A pixel the edit keeps (black in the PNG).
const KEEP: Luma<u8> = Luma([0]);

/// A cell of the painter's grid, counted from the image's top-left cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cell {
    pub col: u16,
    pub row: u16,
}

/// A block of image pixels: `x0..x1` by `y0..y1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PixelRect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

/// How an image sits on the cell grid: fitted into the area keeping its aspect ratio,
/// at the area's top-left (where the preview draws it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellFit {
    pub image_width: u32,
    pub image_height: u32,
    /// The fitted image in dots (one a cell wide, two a cell high).
    pub dots_wide: u32,
    pub dots_high: u32,
}

impl CellFit {
    /// Fits a `width x height` image into `cols x rows` cells. An empty area or image
    /// still gets one dot, so every position maps somewhere.
    pub fn new(width: u32, height: u32, cols: u16, rows: u16) -> CellFit {
        let (width, height) = (width.max(1), height.max(1));
        let room_wide = u64::from(cols.max(1));
        let room_high = 2 * u64::from(rows.max(1));
        // Scale by the tighter side, in integers: dots = pixels * room / side.
        let (dots_wide, dots_high) =
            if room_wide * u64::from(height) <= room_high * u64::from(width) {
                let high = (u64::from(height) * room_wide / u64::from(width)).max(1);
                (room_wide, high)
            } else {
                let wide = (u64::from(width) * room_high / u64::from(height)).max(1);
                (wide, room_high)
            };
        CellFit {
            image_width: width,
            image_height: height,
            dots_wide: dots_wide as u32,
            dots_high: dots_high as u32,
        }
    }

    /// Cells the fitted image covers across and down (a last half-filled row counts).
    pub fn cells(&self) -> (u16, u16) {
        (
            self.dots_wide.min(u32::from(u16::MAX)) as u16,
            self.dots_high.div_ceil(2).min(u32::from(u16::MAX)) as u16,
        )
    }

    /// The cell kept inside the image.
    pub fn clamp(&self, cell: Cell) -> Cell {
        let (cols, rows) = self.cells();
        Cell {
            col: cell.col.min(cols.saturating_sub(1)),
            row: cell.row.min(rows.saturating_sub(1)),
        }
    }

    fn x_at(&self, dot: u64) -> u32 {
        (dot * u64::from(self.image_width) / u64::from(self.dots_wide))
            .min(u64::from(self.image_width)) as u32
    }

    fn y_at(&self, dot: u64) -> u32 {
        (dot * u64::from(self.image_height) / u64::from(self.dots_high))
            .min(u64::from(self.image_height)) as u32
    }

    /// The image pixels under a cell (its two dots).
    pub fn cell_pixels(&self, cell: Cell) -> PixelRect {
        let (col, row) = (u64::from(cell.col), 2 * u64::from(cell.row));
        PixelRect {
            x0: self.x_at(col),
            y0: self.y_at(row),
            x1: self.x_at(col + 1),
            y1: self.y_at(row + 2),
        }
    }

    /// The image pixel at the middle of a dot (for drawing: what colour the dot shows).
    pub fn dot_pixel(&self, dot_x: u32, dot_y: u32) -> (u32, u32) {
        let centre = |dot: u32, dots: u32, side: u32| {
            let at = (2 * u64::from(dot) + 1) * u64::from(side) / (2 * u64::from(dots));
            (at as u32).min(side - 1)
        };
        (
            centre(dot_x, self.dots_wide, self.image_width),
            centre(dot_y, self.dots_high, self.image_height),
        )
    }

    /// Image pixels per dot (the same across and down: dots are square).
    pub fn pixels_per_dot(&self) -> f64 {
        f64::from(self.image_width) / f64::from(self.dots_wide)
    }
}

/// The mask being painted, at the base image's resolution.
#[derive(Debug, Clone, PartialEq)]
pub struct Mask {
    pixels: GrayImage,
    /// Pixels marked for editing, kept as they change: the painter shows the share on
    /// every frame, and counting millions of pixels per frame would stall the UI task.
    edit_count: usize,
}

impl Mask {
    /// All black: nothing to edit yet.
    pub fn new(width: u32, height: u32) -> Mask {
        Mask {
            pixels: GrayImage::from_pixel(width.max(1), height.max(1), KEEP),
            edit_count: 0,
        }
    }

    pub fn width(&self) -> u32 {
        self.pixels.width()
    }

    pub fn height(&self) -> u32 {
        self.pixels.height()
    }

    /// Whether the edit may change this pixel.
    pub fn is_edit(&self, x: u32, y: u32) -> bool {
        self.pixels.get_pixel(x, y) == &EDIT
    }

    /// Pixels marked for editing.
    pub fn edit_count(&self) -> usize {
        self.edit_count
    }

    fn set(&mut self, x: u32, y: u32, edit: bool) {
        let value = if edit { EDIT } else { KEEP };
        let pixel = self.pixels.get_pixel_mut(x, y);
        if *pixel != value {
            *pixel = value;
            if edit {
                self.edit_count += 1;
            } else {
                self.edit_count -= 1;
            }
        }
    }

    /// Paints (or, with `edit` false, erases) a disc of `radius_dots` dots around the
    /// middle of `cell`: every pixel whose centre lies strictly inside it. One dot of
    /// radius paints exactly the cell's two dots.
    pub fn brush(&mut self, fit: &CellFit, cell: Cell, radius_dots: u32, edit: bool) {
        let per_dot = fit.pixels_per_dot();
        let cx = (f64::from(cell.col) + 0.5) * per_dot;
        let cy = (2.0 * f64::from(cell.row) + 1.0) * per_dot;
        let radius = f64::from(radius_dots) * per_dot;
        let (w, h) = (self.width(), self.height());
        let span = |centre: f64, side: u32| {
            let low = (centre - radius).floor().max(0.0) as u32;
            let high = ((centre + radius).ceil().max(0.0) as u32).min(side);
            low..high
        };
        for y in span(cy, h) {
            for x in span(cx, w) {
                let (dx, dy) = (f64::from(x) + 0.5 - cx, f64::from(y) + 0.5 - cy);
                if dx * dx + dy * dy < radius * radius {
                    self.set(x, y, edit);
                }
            }
        }
    }

    /// Paints (or erases) the rectangle spanned by two cells, both included.
    pub fn rectangle(&mut self, fit: &CellFit, a: Cell, b: Cell, edit: bool) {
        let first = fit.cell_pixels(Cell {
            col: a.col.min(b.col),
            row: a.row.min(b.row),
        });
        let last = fit.cell_pixels(Cell {
            col: a.col.max(b.col),
            row: a.row.max(b.row),
        });
        for y in first.y0..last.y1.min(self.height()) {
            for x in first.x0..last.x1.min(self.width()) {
                self.set(x, y, edit);
            }
        }
    }

    /// Edit becomes keep and keep becomes edit.
    pub fn invert(&mut self) {
        for pixel in self.pixels.pixels_mut() {
            *pixel = if *pixel == EDIT { KEEP } else { EDIT };
        }
        self.edit_count = self.width() as usize * self.height() as usize - self.edit_count;
    }

    /// Back to all black.
    pub fn clear(&mut self) {
        for pixel in self.pixels.pixels_mut() {
            *pixel = KEEP;
        }
        self.edit_count = 0;
    }

    /// The mask as an 8-bit greyscale PNG, white where the edit goes.
    pub fn to_png(&self) -> Result<Vec<u8>, String> {
        let mut bytes = Vec::new();
        PngEncoder::new(&mut bytes)
            .write_image(
                self.pixels.as_raw(),
                self.width(),
                self.height(),
                image::ExtendedColorType::L8,
            )
            .map_err(|e| format!("encoding the mask: {e}"))?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_square_image_fits_the_short_side_and_cells_cover_two_dots() {
        // 80x20 cells hold 80x40 dots: a square image gets 40x40 dots, 40 cells by 20.
        let fit = CellFit::new(1024, 1024, 80, 20);
        assert_eq!((fit.dots_wide, fit.dots_high), (40, 40));
        assert_eq!(fit.cells(), (40, 20));
        // 1024 / 40 = 25.6 pixels a dot; the first cell is one dot wide and two high.
        assert_eq!(
            fit.cell_pixels(Cell { col: 0, row: 0 }),
            PixelRect {
                x0: 0,
                y0: 0,
                x1: 25,
                y1: 51
            }
        );
        // The last cell ends at the image's edge.
        let last = fit.cell_pixels(Cell { col: 39, row: 19 });
        assert_eq!((last.x1, last.y1), (1024, 1024));
        // A wide image on a tall area fits the width.
        let wide = CellFit::new(2000, 500, 20, 40);
        assert_eq!((wide.dots_wide, wide.dots_high), (20, 5));
        assert_eq!(wide.cells(), (20, 3), "a half-filled last row counts");
    }

    #[test]
    fn positions_outside_the_image_are_clamped_to_its_last_cell() {
        let fit = CellFit::new(100, 100, 10, 10);
        assert_eq!(fit.cells(), (10, 5));
        assert_eq!(
            fit.clamp(Cell { col: 30, row: 30 }),
            Cell { col: 9, row: 4 }
        );
    }

    #[test]
    fn a_one_dot_brush_paints_the_cell_in_image_pixels() {
        // 100x100 pixels on 10x5 cells: 10 pixels a dot, a cell is 10x20 pixels.
        let fit = CellFit::new(100, 100, 10, 5);
        let mut mask = Mask::new(100, 100);
        mask.brush(&fit, Cell { col: 2, row: 1 }, 1, true);
        // The disc of radius 10 around (25, 30) covers the cell's middle...
        assert!(mask.is_edit(25, 30) && mask.is_edit(25, 21) && mask.is_edit(25, 39));
        // ...and nothing of the cells beside it.
        assert!(!mask.is_edit(35, 30) && !mask.is_edit(14, 30) && !mask.is_edit(25, 41));
        let painted = mask.edit_count();
        // A disc of radius 10 pixels: about pi * 100.
        assert!((300..=330).contains(&painted), "{painted}");
        // Erasing with the same brush leaves nothing.
        mask.brush(&fit, Cell { col: 2, row: 1 }, 1, false);
        assert_eq!(mask.edit_count(), 0);
    }

    #[test]
    fn a_brush_at_the_edge_stays_inside_the_image() {
        let fit = CellFit::new(64, 48, 16, 6);
        let mut mask = Mask::new(64, 48);
        mask.brush(&fit, Cell { col: 0, row: 0 }, 5, true);
        mask.brush(&fit, Cell { col: 15, row: 5 }, 5, true);
        assert!(mask.is_edit(0, 0) && mask.is_edit(63, 47));
    }

    #[test]
    fn a_rectangle_spans_both_cells_whichever_order_they_come_in() {
        let fit = CellFit::new(100, 100, 10, 5);
        let mut mask = Mask::new(100, 100);
        mask.rectangle(&fit, Cell { col: 3, row: 2 }, Cell { col: 1, row: 1 }, true);
        // Cells 1..=3 across (x 10..40), rows 1..=2 down (y 20..60).
        assert_eq!(mask.edit_count(), 30 * 40);
        assert!(mask.is_edit(10, 20) && mask.is_edit(39, 59));
        assert!(!mask.is_edit(9, 20) && !mask.is_edit(40, 59) && !mask.is_edit(10, 60));
        mask.rectangle(
            &fit,
            Cell { col: 1, row: 1 },
            Cell { col: 1, row: 1 },
            false,
        );
        assert_eq!(mask.edit_count(), 30 * 40 - 10 * 20, "erased one cell");
    }

    #[test]
    fn invert_and_clear() {
        let fit = CellFit::new(10, 10, 10, 5);
        let mut mask = Mask::new(10, 10);
        mask.rectangle(&fit, Cell { col: 0, row: 0 }, Cell { col: 4, row: 4 }, true);
        assert_eq!(mask.edit_count(), 50);
        mask.invert();
        assert_eq!(mask.edit_count(), 50);
        assert!(mask.is_edit(9, 0) && !mask.is_edit(0, 0));
        mask.clear();
        assert_eq!(mask.edit_count(), 0);
    }

    #[test]
    fn the_kept_count_agrees_with_the_pixels_after_every_tool() {
        let fit = CellFit::new(90, 70, 30, 10);
        let mut mask = Mask::new(90, 70);
        let counted = |m: &Mask| m.pixels.pixels().filter(|p| **p == EDIT).count();
        mask.brush(&fit, Cell { col: 4, row: 3 }, 3, true);
        mask.brush(&fit, Cell { col: 5, row: 3 }, 3, true);
        assert_eq!(mask.edit_count(), counted(&mask));
        mask.rectangle(
            &fit,
            Cell { col: 0, row: 0 },
            Cell { col: 6, row: 2 },
            false,
        );
        assert_eq!(mask.edit_count(), counted(&mask));
        mask.invert();
        assert_eq!(mask.edit_count(), counted(&mask));
        mask.brush(&fit, Cell { col: 20, row: 8 }, 2, false);
        assert_eq!(mask.edit_count(), counted(&mask));
    }

    #[test]
    fn the_png_is_white_where_painted_and_black_elsewhere_at_full_size() {
        let fit = CellFit::new(300, 200, 30, 10);
        let mut mask = Mask::new(300, 200);
        mask.brush(&fit, Cell { col: 5, row: 5 }, 2, true);
        let png = mask.to_png().unwrap();
        let decoded = image::load_from_memory(&png).unwrap().to_luma8();
        assert_eq!(decoded.dimensions(), (300, 200));
        assert_eq!(decoded.get_pixel(55, 110), &Luma([255]));
        assert_eq!(decoded.get_pixel(0, 0), &Luma([0]));
        assert!(decoded.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
    }

    #[test]
    fn a_dot_shows_the_pixel_at_its_middle() {
        let fit = CellFit::new(100, 100, 10, 5);
        assert_eq!(fit.dot_pixel(0, 0), (5, 5));
        assert_eq!(fit.dot_pixel(9, 9), (95, 95));
    }
}
