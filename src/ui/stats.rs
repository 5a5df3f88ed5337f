//! The `$` view: images and spend per model today, this month and in total, and the free
//! images left. Its figures come from the data worker (`DataJob::WatchStats`), which
//! reads them off the UI task and again whenever the store changes; drawing them is a
//! pure function of `StatsState`.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Borders, Cell, Paragraph, Row, Table, Wrap};

use crate::dashscope::{Model, Region, Timestamp};
use crate::store::{MoneyStats, Store, StoreError};

/// What the worker needs to work the figures out: the config's region and prices, and
/// where the free images are counted from.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsSource {
    pub region: Region,
    /// Price per image by model as the config names them; the others cost what API.md
    /// says, as the engine prices them.
    pub prices: BTreeMap<Model, f64>,
    /// `[budget] free_quota_since`; `None`: the store's first job.
    pub free_quota_since: Option<Timestamp>,
}

impl StatsSource {
    /// Reads the figures now (on the data worker).
    pub fn load(&self, store: &Store) -> Result<MoneyStats, StoreError> {
        store.money_stats_now(self.region, self.free_quota_since, |model| {
            self.price(model)
        })
    }

    pub fn price(&self, model: Model) -> Option<f64> {
        self.prices
            .get(&model)
            .copied()
            .or_else(|| model.default_price_cny())
    }
}

/// The view's state: the last figures the worker sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum StatsState {
    #[default]
    Loading,
    Ready(Box<MoneyStats>),
    Failed(String),
}

/// `¥0.56`, to the cent.
fn yuan(amount: f64) -> String {
    format!("¥{amount:.2}")
}

/// `12 ¥1.68`: images and what they cost.
fn images_and_spend(images: u64, spend: f64) -> String {
    format!("{images} {}", yuan(spend))
}

/// `2026-01-15` (UTC) for the line that says where free images are counted from.
fn day(at: Timestamp) -> String {
    at.to_datetime()
        .map(|t| {
            t.date()
                .format(time::macros::format_description!("[year]-[month]-[day]"))
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

/// Draws the view into `area` (the body between the header and the footer).
pub fn draw(stats: &StatsState, frame: &mut Frame, area: Rect) {
    let figures = match stats {
        StatsState::Ready(figures) => figures,
        StatsState::Loading | StatsState::Failed(_) => {
            let text = match stats {
                StatsState::Failed(message) => format!("cannot read the figures: {message}"),
                _ => "loading…".to_string(),
            };
            let block = view_block("Spend and free images");
            frame.render_widget(
                Paragraph::new(crate::text::sanitize(&text))
                    .block(block)
                    .wrap(Wrap { trim: true }),
                area,
            );
            return;
        }
    };
    let block = view_block(&format!(
        "Spend and free images · prices for {}",
        figures.region.id()
    ));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    // The catalogue has a score of models; the ones never used would push the totals and
    // the notes off a small screen, so they are one line of the notes (`wandash stats`
    // lists them all).
    let used: Vec<_> = figures
        .models
        .iter()
        .filter(|m| m.images_total > 0)
        .collect();
    let unused = figures.models.len() - used.len();
    let [table_area, notes_area] = Layout::vertical([
        Constraint::Length(used.len() as u16 + 3),
        Constraint::Min(0),
    ])
    .areas(inner);
    let header = Row::new([
        "model",
        "¥/img",
        "today",
        "this month",
        "total",
        "free left",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let mut rows: Vec<Row> = used
        .iter()
        .map(|m| {
            let free = Cell::from(format!("{}/{}", m.free_images_left, m.free_images));
            let free = if m.free_images_left == 0 {
                free.style(Style::new().fg(Color::Red))
            } else {
                free
            };
            Row::new(vec![
                Cell::from(m.model.id()),
                Cell::from(m.price_cny.map_or("?".to_string(), |p| format!("{p:.2}"))),
                Cell::from(images_and_spend(m.images_today, m.spend_today_cny)),
                Cell::from(images_and_spend(m.images_month, m.spend_month_cny)),
                Cell::from(images_and_spend(m.images_total, m.spend_total_cny)),
                free,
            ])
        })
        .collect();
    rows.push(
        Row::new(vec![
            Cell::from("all"),
            Cell::from(""),
            Cell::from(images_and_spend(
                figures.images_today,
                figures.spend_today_cny,
            )),
            Cell::from(yuan(figures.spend_month_cny)),
            Cell::from(yuan(figures.spend_total_cny)),
            Cell::from(""),
        ])
        .style(Style::new().add_modifier(Modifier::BOLD)),
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(18),
            Constraint::Length(5),
            Constraint::Length(12),
            Constraint::Length(12),
            Constraint::Length(13),
            Constraint::Min(9),
        ],
    )
    .header(header)
    .column_spacing(1);
    frame.render_widget(table, table_area);
    let mut notes = Vec::new();
    if unused > 0 {
        notes.push(Line::from(format!(
            "{unused} other models have made no images here yet: all their free images are left (`wandash stats` lists them)."
        )));
    }
    notes.extend([
        Line::from(format!(
            "Free images are counted locally, from this store's jobs since {}; the console's figures may differ.",
            day(figures.free_images_since)
        )),
        Line::from(
            "Spend is images saved x the price per image, free images included; today and month in local time.",
        ),
    ]);
    frame.render_widget(
        Paragraph::new(notes)
            .fg(Color::DarkGray)
            .wrap(Wrap { trim: true }),
        notes_area,
    );
}

fn view_block(title: &str) -> Block<'static> {
    Block::new()
        .borders(Borders::ALL)
        .border_type(BorderType::Thick)
        .border_style(Style::new().fg(Color::Cyan))
        .title(Line::from(title.to_string()).bold())
}
