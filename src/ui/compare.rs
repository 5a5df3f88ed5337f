//! Compare (`Space` marks 2-4 jobs, `C` compares): one column per job, above its image
//! only the parameters that differ between the jobs (the prompt diffed by words), `[` `]`
//! cycling the images, `1`-`4` picking the winner, which the store records by starring
//! its images and noting the compare on the job.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Wrap};

use crate::dashscope::JobSpec;
use crate::store::JobId;
use crate::text::sanitize;

use super::keys::{Action, Context, KeyMap};
use super::state::{AppState, JobDetailView, Mode, ToastLevel, state_label};
use super::studio::{PictureSlot, StudioCommand, draw_picture};
use super::update::Command;

/// The most jobs compared at once.
pub const COMPARE_MAX: usize = 4;
/// Prompt lines a column shows before the image.
const PROMPT_LINES: usize = 6;

/// The compare screen's state.
#[derive(Debug, Clone, PartialEq)]
pub struct CompareView {
    pub ids: Vec<JobId>,
    /// The jobs once the data worker has loaded them.
    pub jobs: Option<Result<Vec<JobDetailView>, String>>,
    /// Which image each column shows (of its saved ones, wrapping).
    pub image_index: usize,
    pub winner: Option<JobId>,
}

impl CompareView {
    /// The most saved images any compared job has: how far `[` `]` cycle.
    pub fn most_images(&self) -> usize {
        match &self.jobs {
            Some(Ok(jobs)) => jobs
                .iter()
                .map(|j| j.saved_images().len())
                .max()
                .unwrap_or(0),
            _ => 0,
        }
    }
}

/// A parameter that is not the same in every job: its name and each job's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub name: &'static str,
    pub values: Vec<String>,
}

/// How one parameter of a spec reads (`None` when it is not set).
type SpecValue = fn(&JobSpec) -> Option<String>;

/// The parameters (other than the prompt) that differ between the specs, in form order.
pub fn differences(specs: &[&JobSpec]) -> Vec<Difference> {
    let or_dash = |value: Option<String>| value.unwrap_or_else(|| "-".to_string());
    let fields: [(&'static str, SpecValue); 14] = [
        ("model", |s| Some(s.model.id().to_string())),
        ("function", |s| s.function.map(|f| f.as_str().to_string())),
        ("size", |s| s.size.map(|v| v.to_string())),
        ("n", |s| Some(s.image_count().to_string())),
        ("seed", |s| s.seed.map(|v| v.to_string())),
        ("negative", |s| s.negative_prompt.clone()),
        ("extend", |s| s.prompt_extend.map(|v| v.to_string())),
        ("watermark", |s| s.watermark.map(|v| v.to_string())),
        ("style", |s| s.style.clone()),
        ("base", |s| s.base_image.as_ref().map(ToString::to_string)),
        ("mask", |s| s.mask_image.as_ref().map(ToString::to_string)),
        ("images", |s| {
            (!s.images.is_empty()).then(|| {
                s.images
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
        }),
        ("expand", |s| {
            s.expand
                .map(|e| format!("{},{},{},{}", e.top, e.bottom, e.left, e.right))
        }),
        ("upscale", |s| s.upscale_factor.map(|v| v.to_string())),
    ];
    fields
        .into_iter()
        .filter_map(|(name, value)| {
            let values: Vec<String> = specs.iter().map(|s| or_dash(value(s))).collect();
            let differ = values.iter().any(|v| *v != values[0]);
            differ.then_some(Difference { name, values })
        })
        .collect()
}

/// A word of a prompt, and whether it is not shared with the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub changed: bool,
}

/// Each prompt split into words, the words that differ marked: the first prompt is the
/// reference; another's word is changed when it is not in its longest common word
/// sequence with the first, and a word of the first when it is missing from any other.
pub fn prompt_words(prompts: &[&str]) -> Vec<Vec<Word>> {
    let split: Vec<Vec<&str>> = prompts
        .iter()
        .map(|p| p.split_whitespace().collect())
        .collect();
    let Some(first) = split.first() else {
        return Vec::new();
    };
    let mut first_changed = vec![false; first.len()];
    let mut out = vec![Vec::new()];
    for other in &split[1..] {
        let (in_first, in_other) = common_words(first, other);
        for (changed, kept) in first_changed.iter_mut().zip(&in_first) {
            *changed |= !kept;
        }
        out.push(
            other
                .iter()
                .zip(in_other)
                .map(|(text, kept)| Word {
                    text: (*text).to_string(),
                    changed: !kept,
                })
                .collect(),
        );
    }
    out[0] = first
        .iter()
        .zip(first_changed)
        .map(|(text, changed)| Word {
            text: (*text).to_string(),
            changed,
        })
        .collect();
    out
}

/// Which words of `a` and of `b` belong to their longest common subsequence.
fn common_words(a: &[&str], b: &[&str]) -> (Vec<bool>, Vec<bool>) {
    // lengths[i][j]: the LCS of a[i..] and b[j..].
    let mut lengths = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lengths[i][j] = if a[i] == b[j] {
                lengths[i + 1][j + 1] + 1
            } else {
                lengths[i + 1][j].max(lengths[i][j + 1])
            };
        }
    }
    let (mut in_a, mut in_b) = (vec![false; a.len()], vec![false; b.len()]);
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            in_a[i] = true;
            in_b[j] = true;
            i += 1;
            j += 1;
        } else if lengths[i + 1][j] >= lengths[i][j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    (in_a, in_b)
}

impl AppState {
    /// Space: marks the selected job for compare, or unmarks it.
    pub(super) fn toggle_mark(&mut self) {
        let Some(id) = self.list.selected_row().map(|r| r.id) else {
            return;
        };
        let marks = &mut self.studio.marks;
        if let Some(at) = marks.iter().position(|m| *m == id) {
            marks.remove(at);
        } else if marks.len() >= COMPARE_MAX {
            self.toast(
                ToastLevel::Info,
                format!("at most {COMPARE_MAX} jobs compare; Space on a marked job unmarks it"),
            );
        } else {
            marks.push(id);
        }
    }

    /// `C`: the marked jobs side by side, loaded by the data worker.
    pub(super) fn open_compare(&mut self) -> Vec<Command> {
        let marks = self.studio.marks.clone();
        if marks.len() < 2 {
            self.toast(
                ToastLevel::Info,
                "mark 2 to 4 jobs with Space, then C compares them",
            );
            return Vec::new();
        }
        self.studio.compare = Some(CompareView {
            ids: marks.clone(),
            jobs: None,
            image_index: 0,
            winner: None,
        });
        self.mode = Mode::Compare;
        vec![Command::Studio(StudioCommand::LoadCompare(marks))]
    }

    /// The data worker's answer: the jobs, and their first images asked for.
    pub(super) fn compare_loaded(
        &mut self,
        result: Result<Vec<JobDetailView>, String>,
    ) -> Vec<Command> {
        let Some(compare) = self.studio.compare.as_mut() else {
            return Vec::new();
        };
        compare.jobs = Some(result);
        self.compare_pictures()
    }

    /// Asks for the pictures the columns show now.
    fn compare_pictures(&mut self) -> Vec<Command> {
        let paths: Vec<_> = match &self.studio.compare {
            Some(CompareView {
                jobs: Some(Ok(jobs)),
                image_index,
                ..
            }) => jobs
                .iter()
                .filter_map(|job| shown_image(job, *image_index))
                .collect(),
            _ => Vec::new(),
        };
        paths
            .into_iter()
            .flat_map(|path| self.picture_wanted(path))
            .collect()
    }

    pub(super) fn compare_key(
        &mut self,
        keys: &KeyMap,
        key: &ratatui::crossterm::event::KeyEvent,
    ) -> Vec<Command> {
        let Some(compare) = self.studio.compare.as_mut() else {
            self.mode = Mode::Browse;
            return Vec::new();
        };
        match keys.action(Context::Compare, key) {
            Some(Action::Leave) => {
                if compare.winner.is_some() {
                    self.studio.marks.clear();
                }
                self.studio.compare = None;
                self.studio.pictures.clear();
                self.mode = Mode::Browse;
                Vec::new()
            }
            Some(action @ (Action::NextImage | Action::PrevImage)) => {
                let most = compare.most_images().max(1);
                compare.image_index = if action == Action::NextImage {
                    (compare.image_index + 1) % most
                } else {
                    (compare.image_index + most - 1) % most
                };
                self.compare_pictures()
            }
            Some(Action::PickWinner(i)) => {
                let Some(&winner) = compare.ids.get(i) else {
                    return Vec::new();
                };
                compare.winner = Some(winner);
                let others = compare
                    .ids
                    .iter()
                    .copied()
                    .filter(|id| *id != winner)
                    .collect();
                vec![Command::Studio(StudioCommand::RecordWinner {
                    winner,
                    others,
                })]
            }
            _ => Vec::new(),
        }
    }
}

/// The saved image a column shows at `index` (wrapping over its saved images).
fn shown_image(job: &JobDetailView, index: usize) -> Option<std::path::PathBuf> {
    let saved = job.saved_images();
    saved
        .get(index % saved.len().max(1))
        .and_then(|image| image.path.clone())
}

/// Draws compare full screen: a title, the columns, a line of keys.
pub fn draw_compare(state: &AppState, frame: &mut Frame, area: Rect) {
    let Some(compare) = state.studio.compare.as_ref() else {
        return;
    };
    frame.render_widget(Clear, area);
    let [top, body, bottom] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    let ids = compare
        .ids
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    frame.render_widget(
        Line::from(format!(
            " compare jobs {ids} · image {}/{}",
            compare.image_index + 1,
            compare.most_images().max(1)
        ))
        .bold(),
        top,
    );
    frame.render_widget(
        Line::from(" 1-4 pick the winner (stars its images) · [ ] images · Esc back")
            .fg(Color::DarkGray),
        bottom,
    );
    let jobs = match &compare.jobs {
        None => {
            frame.render_widget(Paragraph::new("loading…").fg(Color::DarkGray), body);
            return;
        }
        Some(Err(message)) => {
            frame.render_widget(
                Paragraph::new(sanitize(message))
                    .fg(Color::Red)
                    .wrap(Wrap { trim: true }),
                body,
            );
            return;
        }
        Some(Ok(jobs)) => jobs,
    };
    let specs: Vec<&JobSpec> = jobs.iter().map(|j| &j.spec).collect();
    let differ = differences(&specs);
    let prompts: Vec<&str> = specs.iter().map(|s| s.prompt.as_str()).collect();
    let prompt_differs = prompts.iter().any(|p| *p != prompts[0]);
    let words = prompt_words(&prompts);
    let columns =
        Layout::horizontal(vec![Constraint::Ratio(1, jobs.len() as u32); jobs.len()]).split(body);
    // Every column gives the differences the same height, so the images line up.
    let texts: Vec<Vec<Line>> = jobs
        .iter()
        .enumerate()
        .map(|(i, _)| {
            let width = columns[i].width.saturating_sub(2) as usize;
            let mut lines: Vec<Line> = differ
                .iter()
                .map(|d| {
                    Line::from(vec![
                        Span::styled(format!("{} ", d.name), Style::new().fg(Color::DarkGray)),
                        Span::styled(sanitize(&d.values[i]), Style::new().fg(Color::Yellow)),
                    ])
                })
                .collect();
            if prompt_differs {
                lines.extend(wrap_prompt(&words[i], width, PROMPT_LINES));
            }
            if differ.is_empty() && !prompt_differs {
                lines.push(Line::styled(
                    "same parameters",
                    Style::new().fg(Color::DarkGray),
                ));
            }
            lines
        })
        .collect();
    let text_height = texts.iter().map(Vec::len).max().unwrap_or(0) as u16;
    // The images keep at least half of the column.
    let text_height = text_height.min(body.height.saturating_sub(2) / 2);
    for (i, (job, column)) in jobs.iter().zip(columns.iter()).enumerate() {
        let won = compare.winner == Some(job.id);
        let title = format!(
            " {} · job {} · {}{} ",
            i + 1,
            job.id,
            state_label(job.state),
            if won { " · ★ winner" } else { "" }
        );
        let block = Block::bordered()
            .border_type(if won {
                BorderType::Thick
            } else {
                BorderType::Plain
            })
            .border_style(if won {
                Style::new().fg(Color::Green)
            } else {
                Style::new().fg(Color::DarkGray)
            })
            .title(Span::styled(title, Style::new().bold()));
        let inner = block.inner(*column);
        frame.render_widget(block, *column);
        let [text_area, image_area] =
            Layout::vertical([Constraint::Length(text_height), Constraint::Min(0)]).areas(inner);
        frame.render_widget(Paragraph::new(texts[i].clone()), text_area);
        let saved = job.saved_images().len();
        let message = match shown_image(job, compare.image_index)
            .and_then(|path| state.studio.picture(&path).cloned())
        {
            Some(PictureSlot::Ready(picture)) => {
                draw_picture(&picture, None, image_area, frame.buffer_mut());
                continue;
            }
            Some(PictureSlot::Failed(message)) => sanitize(&message),
            Some(PictureSlot::Loading) => "loading…".to_string(),
            None if saved == 0 => "no image".to_string(),
            None => "loading…".to_string(),
        };
        frame.render_widget(
            Paragraph::new(message)
                .fg(Color::DarkGray)
                .wrap(Wrap { trim: true }),
            image_area,
        );
    }
}

/// The prompt's words wrapped to `width`, changed words highlighted, at most `max` lines
/// (the last ending in `…` when cut).
fn wrap_prompt(words: &[Word], width: usize, max: usize) -> Vec<Line<'static>> {
    let width = width.max(8);
    let changed = Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD);
    let mut lines: Vec<Vec<Span<'static>>> = vec![vec![Span::styled(
        "prompt ",
        Style::new().fg(Color::DarkGray),
    )]];
    let mut used = "prompt ".len();
    for word in words {
        let text: String = sanitize(&word.text).chars().take(width).collect();
        let len = text.chars().count();
        if used > 0 && used + len > width {
            lines.push(Vec::new());
            used = 0;
        }
        let style = if word.changed { changed } else { Style::new() };
        lines
            .last_mut()
            .expect("one line at least")
            .push(Span::styled(format!("{text} "), style));
        used += len + 1;
    }
    let cut = lines.len() > max;
    lines.truncate(max);
    if cut && let Some(last) = lines.last_mut() {
        last.push(Span::raw("…"));
    }
    lines.into_iter().map(Line::from).collect()
}

#[cfg(test)]
mod tests {
    use crate::dashscope::{Model, Size};

    use super::*;

    fn words(marked: &[Word]) -> String {
        marked
            .iter()
            .map(|w| {
                if w.changed {
                    format!("[{}]", w.text)
                } else {
                    w.text.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn only_the_parameters_that_differ_are_listed() {
        let mut a = JobSpec::new(Model::Wanx21T2iTurbo, "a fox");
        a.seed = Some(1);
        a.size = Some(Size::new(1024, 1024).into());
        let mut b = a.clone();
        b.seed = Some(2);
        let mut c = a.clone();
        c.model = Model::Wanx21T2iPlus;
        c.negative_prompt = Some("blurry".into());
        let found = differences(&[&a, &b, &c]);
        let names: Vec<&str> = found.iter().map(|d| d.name).collect();
        assert_eq!(names, ["model", "seed", "negative"]);
        assert_eq!(found[1].values, ["1", "2", "1"]);
        assert_eq!(found[2].values, ["-", "-", "blurry"]);
        assert!(differences(&[&a, &a.clone()]).is_empty());
    }

    #[test]
    fn prompts_are_diffed_by_words_against_the_first() {
        let marked = prompt_words(&["a red fox in snow", "a grey fox in deep snow", "a red fox"]);
        assert_eq!(words(&marked[0]), "a [red] fox [in] [snow]");
        assert_eq!(words(&marked[1]), "a [grey] fox in [deep] snow");
        assert_eq!(words(&marked[2]), "a red fox");
        let same = prompt_words(&["same words", "same  words"]);
        assert!(same.iter().flatten().all(|w| !w.changed));
        assert!(prompt_words(&[]).is_empty());
    }

    #[test]
    fn a_long_prompt_is_cut_to_its_lines_with_an_ellipsis() {
        let marked = prompt_words(&["one two three four five six seven eight nine ten"]);
        let lines = wrap_prompt(&marked[0], 12, 2);
        assert_eq!(lines.len(), 2);
        let last: String = lines[1].spans.iter().map(|s| s.content.as_ref()).collect();
        assert!(last.ends_with('…'), "{last}");
    }
}
