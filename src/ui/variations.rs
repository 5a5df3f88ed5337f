//! Variations of a job: `s` queues it again with new seeds (how many is asked, 4 when
//! nothing is typed), `E` opens the editor on an editing model with the shown image as
//! its input. Every job made here names the job it came from.

use std::path::Path;

use ratatui::Frame;
use ratatui::crossterm::event::{KeyCode, KeyEvent};
use ratatui::layout::{Constraint, Rect};
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, BorderType, Clear, Paragraph};

use crate::dashscope::{EditFunction, ImageRef, JobSpec, Model, field_applies};
use crate::store::JobId;

use super::editor::{Editor, EditorFocus};
use super::keys::{Action, Context, KeyMap};
use super::state::{AppState, Mode, ToastLevel};
use super::studio::{StudioCommand, SweepAsk, sweep_count, sweep_seeds};
use super::update::Command;

impl AppState {
    /// `s`: asks how many seeds, for the selected job.
    pub(super) fn open_sweep(&mut self) {
        let Some(detail) = self.selected_detail() else {
            return;
        };
        if !field_applies(detail.spec.model, "seed") {
            let model = detail.spec.model.id();
            self.toast(
                ToastLevel::Info,
                format!("{model} takes no seed; nothing to sweep"),
            );
            return;
        }
        self.studio.sweep = Some(SweepAsk {
            job: detail.id,
            count: String::new(),
        });
        self.mode = Mode::Sweep;
    }

    pub(super) fn sweep_key(&mut self, keys: &KeyMap, key: &KeyEvent) -> Vec<Command> {
        let Some(ask) = self.studio.sweep.as_mut() else {
            self.mode = Mode::Browse;
            return Vec::new();
        };
        match keys.action(Context::Confirm, key) {
            Some(Action::No) => {}
            Some(Action::Yes) => {
                let count = match sweep_count(&ask.count) {
                    Ok(count) => count,
                    Err(message) => {
                        self.toast(ToastLevel::Error, message);
                        return Vec::new();
                    }
                };
                let parent = ask.job;
                let Some(spec) = self
                    .selected_detail()
                    .filter(|d| d.id == parent)
                    .map(|d| d.spec.clone())
                else {
                    self.toast(ToastLevel::Error, "the job to sweep is no longer selected");
                    self.studio.sweep = None;
                    self.mode = Mode::Browse;
                    return Vec::new();
                };
                self.studio.sweep = None;
                self.mode = Mode::Browse;
                let specs = sweep_specs(&spec, count, &mut fastrand::Rng::new());
                return vec![Command::Studio(StudioCommand::Sweep { parent, specs })];
            }
            // Digits are the answer; the question's own keys (y, n) are not digits.
            _ => {
                match key.code {
                    KeyCode::Char(c) if c.is_ascii_digit() && ask.count.len() < 3 => {
                        ask.count.push(c)
                    }
                    KeyCode::Backspace => {
                        ask.count.pop();
                    }
                    _ => {}
                }
                return Vec::new();
            }
        }
        self.studio.sweep = None;
        self.mode = Mode::Browse;
        Vec::new()
    }

    /// `E`: the editor on wanx2.1-imageedit with the image shown as its input.
    pub(super) fn open_image_edit(&mut self) {
        let Some(job) = self.selected_detail().map(|d| d.id) else {
            return;
        };
        let Some(path) = self.selected_image().and_then(|i| i.path.clone()) else {
            self.toast(ToastLevel::Info, "no saved image to edit");
            return;
        };
        self.editor = Some(image_edit_editor(&path, job).in_region(self.region));
        self.mode = Mode::Editor;
    }
}

/// The job again with `count` new seeds, one job each.
pub fn sweep_specs(spec: &JobSpec, count: usize, rng: &mut fastrand::Rng) -> Vec<JobSpec> {
    sweep_seeds(rng, count, spec.seed)
        .into_iter()
        .map(|seed| JobSpec {
            seed: Some(seed),
            ..spec.clone()
        })
        .collect()
}

/// An instruction edit of `image` on wanx2.1-imageedit. The image is also in the list of
/// inputs, so switching the model to wan2.5-i2i-preview in the editor keeps it.
pub fn image_edit_editor(image: &Path, parent: JobId) -> Editor {
    let mut spec = JobSpec::new(Model::Wanx21ImageEdit, "");
    spec.function = Some(EditFunction::DescriptionEdit);
    spec.base_image = Some(ImageRef::File(image.to_path_buf()));
    spec.images = vec![ImageRef::File(image.to_path_buf())];
    let mut editor = Editor::from_spec(&spec);
    editor.parent = Some(parent);
    editor.focus = EditorFocus::Prompt;
    editor
}

/// The sweep question, over the main screen.
pub fn draw_sweep(state: &AppState, frame: &mut Frame, area: Rect) {
    let Some(ask) = state.studio.sweep.as_ref() else {
        return;
    };
    let popup = area.centered(
        Constraint::Length(54.min(area.width)),
        Constraint::Length(5),
    );
    frame.render_widget(Clear, popup);
    let typed = if ask.count.is_empty() {
        "4 (Enter takes it)".to_string()
    } else {
        ask.count.clone()
    };
    frame.render_widget(
        Paragraph::new(vec![
            Line::raw(format!(
                "Queue job {} again with how many new seeds?",
                ask.job
            )),
            Line::styled(format!("seeds: {typed}▏"), Style::new().fg(Color::Yellow)),
            Line::raw("Enter queue · Esc cancel").fg(Color::DarkGray),
        ])
        .block(
            Block::bordered()
                .border_type(BorderType::Rounded)
                .title(" Seed sweep ")
                .border_style(Style::new().fg(Color::Yellow)),
        )
        .centered(),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sweep_keeps_the_job_and_changes_only_the_seed() {
        let mut spec = JobSpec::new(Model::Wanx21T2iPlus, "a fox");
        spec.seed = Some(5);
        spec.n = Some(2);
        let specs = sweep_specs(&spec, 4, &mut fastrand::Rng::with_seed(1));
        assert_eq!(specs.len(), 4);
        for swept in &specs {
            assert_ne!(swept.seed, Some(5));
            assert_eq!(
                JobSpec {
                    seed: spec.seed,
                    ..swept.clone()
                },
                spec
            );
        }
    }

    #[test]
    fn the_edit_editor_is_a_valid_draft_once_a_prompt_is_written() {
        let mut editor = image_edit_editor(Path::new("/data/images/3/0.png"), JobId(3));
        assert_eq!(
            (editor.model, editor.function, editor.parent),
            (
                Model::Wanx21ImageEdit,
                Some(EditFunction::DescriptionEdit),
                Some(JobId(3))
            )
        );
        assert!(editor.error_for("prompt").is_some());
        editor.prompt.insert_str("make it night");
        editor.revalidate();
        let spec = editor.valid_spec().expect("a prompt is all it needed");
        assert_eq!(
            spec.base_image,
            Some(ImageRef::File("/data/images/3/0.png".into()))
        );
    }
}
