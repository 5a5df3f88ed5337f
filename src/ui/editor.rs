//! The job editor: a multi-line prompt and a form whose fields follow the model and
//! function. Every edit re-checks the rules with `intake::rule_problems` (the rules every
//! way into the queue applies), so each error sits beside its field and an invalid job
//! cannot be submitted; the data worker then reads the local files through `intake`.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::{TextArea, WrapMode};

use crate::dashscope::catalogue::Param;
use crate::dashscope::{
    EditFunction, Family, ImageRef, JobSpec, Model, OutputSize, PAINT_STYLES, Region, SizeToken,
    ValidationError, field_applies,
};
use crate::intake;
use crate::store::JobId;
use crate::text::{sanitize, sanitize_multiline};

/// A form field, in the order the form shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Model,
    Function,
    BaseImage,
    MaskImage,
    Images,
    Size,
    N,
    MaxImages,
    Seed,
    NegativePrompt,
    PromptExtend,
    Watermark,
    EnableInterleave,
    EnableSequential,
    ThinkingMode,
    Style,
    MaskColor,
    Expand,
    UpscaleFactor,
}

impl Field {
    const ALL: [Field; 19] = [
        Field::Model,
        Field::Function,
        Field::BaseImage,
        Field::MaskImage,
        Field::Images,
        Field::Size,
        Field::N,
        Field::MaxImages,
        Field::Seed,
        Field::NegativePrompt,
        Field::PromptExtend,
        Field::Watermark,
        Field::EnableInterleave,
        Field::EnableSequential,
        Field::ThinkingMode,
        Field::Style,
        Field::MaskColor,
        Field::Expand,
        Field::UpscaleFactor,
    ];

    /// The spec field name, as validation errors name it.
    pub fn spec_name(self) -> &'static str {
        match self {
            Field::Model => "model",
            Field::Function => "function",
            Field::BaseImage => "base_image",
            Field::MaskImage => "mask_image",
            Field::Images => "images",
            Field::Size => "size",
            Field::N => "n",
            Field::MaxImages => "max_images",
            Field::Seed => "seed",
            Field::NegativePrompt => "negative_prompt",
            Field::PromptExtend => "prompt_extend",
            Field::Watermark => "watermark",
            Field::EnableInterleave => "enable_interleave",
            Field::EnableSequential => "enable_sequential",
            Field::ThinkingMode => "thinking_mode",
            Field::Style => "style",
            Field::MaskColor => "mask_color",
            Field::Expand => "expand",
            Field::UpscaleFactor => "upscale_factor",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Field::Model => "model",
            Field::Function => "function",
            Field::BaseImage => "base image",
            Field::MaskImage => "mask image",
            Field::Images => "images (a, b, c)",
            Field::Size => "size (W*H)",
            Field::N => "n",
            Field::MaxImages => "max images",
            Field::Seed => "seed",
            Field::NegativePrompt => "negative",
            Field::PromptExtend => "prompt extend",
            Field::Watermark => "watermark",
            Field::EnableInterleave => "interleave",
            Field::EnableSequential => "sequential",
            Field::ThinkingMode => "thinking mode",
            Field::Style => "style",
            Field::MaskColor => "mask color RGB;…",
            Field::Expand => "expand t,b,l,r",
            Field::UpscaleFactor => "upscale factor",
        }
    }

    /// Choice fields change with ←/→; the others take typed text.
    pub fn is_choice(self) -> bool {
        matches!(
            self,
            Field::Model
                | Field::Function
                | Field::PromptExtend
                | Field::Watermark
                | Field::EnableInterleave
                | Field::EnableSequential
                | Field::ThinkingMode
                | Field::Style
        )
    }
}

/// Which part of the editor takes typed keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditorFocus {
    Prompt,
    Field(Field),
}

/// The editor's draft.
pub struct Editor {
    pub prompt: TextArea<'static>,
    pub model: Model,
    /// The configured region: the model choice offers the models it has.
    pub region: Region,
    pub function: Option<EditFunction>,
    pub prompt_extend: Option<bool>,
    pub watermark: Option<bool>,
    pub enable_interleave: Option<bool>,
    pub enable_sequential: Option<bool>,
    pub thinking_mode: Option<bool>,
    /// Index into `PAINT_STYLES`.
    pub style: Option<usize>,
    /// Typed text of the free-form fields, keyed by field.
    texts: Vec<(Field, String)>,
    pub focus: EditorFocus,
    /// Every broken rule of the current draft (parse errors first, then validation).
    pub errors: Vec<ValidationError>,
    /// Set while the worker checks local files and enqueues.
    pub submitting: bool,
    /// Whether anything was typed since the editor opened (quit asks first if so).
    pub modified: bool,
    /// Shown under the form until the next key: why the last key did nothing.
    pub hint: Option<&'static str>,
    /// The job this draft is made from (a fork, edit or inpainting), recorded with it.
    pub parent: Option<JobId>,
}

/// What typing on a choice field gets instead of silence.
pub const CHOICE_HINT: &str = "←/→ or Space change this choice; Tab moves to a text field";

impl Editor {
    pub fn new(model: Model) -> Self {
        let mut editor = Editor {
            prompt: new_textarea(Vec::new()),
            model,
            region: Region::Beijing,
            function: None,
            prompt_extend: None,
            watermark: None,
            enable_interleave: None,
            enable_sequential: None,
            thinking_mode: None,
            style: None,
            texts: Vec::new(),
            focus: EditorFocus::Prompt,
            errors: Vec::new(),
            submitting: false,
            modified: false,
            hint: None,
            parent: None,
        };
        editor.revalidate();
        editor
    }

    /// The editor for `region`: the model choice offers only the models offered there.
    pub fn in_region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// An editor filled with a past job's parameters (the fork).
    pub fn from_spec(spec: &JobSpec) -> Self {
        let mut editor = Editor::new(spec.model);
        // Sanitised: a stored prompt may hold control or bidi characters from outside.
        editor.prompt = new_textarea(
            sanitize_multiline(&spec.prompt)
                .split('\n')
                .map(str::to_string)
                .collect(),
        );
        editor.function = spec.function;
        editor.prompt_extend = spec.prompt_extend;
        editor.watermark = spec.watermark;
        editor.enable_interleave = spec.enable_interleave;
        editor.enable_sequential = spec.enable_sequential;
        editor.thinking_mode = spec.thinking_mode;
        editor.style = spec
            .style
            .as_deref()
            .and_then(|s| PAINT_STYLES.iter().position(|p| *p == s));
        let join = |refs: &[ImageRef]| {
            refs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let texts = [
            (
                Field::BaseImage,
                spec.base_image.as_ref().map(ToString::to_string),
            ),
            (
                Field::MaskImage,
                spec.mask_image.as_ref().map(ToString::to_string),
            ),
            (
                Field::Images,
                (!spec.images.is_empty()).then(|| join(&spec.images)),
            ),
            (Field::Size, spec.size.map(|s| s.to_string())),
            (Field::N, spec.n.map(|n| n.to_string())),
            (Field::MaxImages, spec.max_images.map(|n| n.to_string())),
            (
                Field::MaskColor,
                (!spec.mask_color.is_empty()).then(|| {
                    spec.mask_color
                        .iter()
                        .map(|[r, g, b]| format!("{r},{g},{b}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                }),
            ),
            (Field::Seed, spec.seed.map(|s| s.to_string())),
            (Field::NegativePrompt, spec.negative_prompt.clone()),
            (
                Field::Expand,
                spec.expand
                    .map(|e| format!("{},{},{},{}", e.top, e.bottom, e.left, e.right)),
            ),
            (
                Field::UpscaleFactor,
                spec.upscale_factor.map(|f| f.to_string()),
            ),
        ];
        editor.texts = texts
            .into_iter()
            .filter_map(|(f, t)| t.map(|t| (f, t)))
            .collect();
        editor.revalidate();
        editor
    }

    /// The fields that apply to the current model and function, in form order.
    pub fn visible_fields(&self) -> Vec<Field> {
        let family = self.model.family();
        Field::ALL
            .into_iter()
            .filter(|field| match field {
                Field::Model => true,
                Field::MaskImage => match family {
                    Family::Inpainting => true,
                    Family::ImageEdit => self.function.is_some_and(EditFunction::needs_mask),
                    _ => false,
                },
                Field::Expand => self.function == Some(EditFunction::Expand),
                Field::UpscaleFactor => self.function == Some(EditFunction::SuperResolution),
                other => field_applies(self.model, other.spec_name()),
            })
            .collect()
    }

    pub fn text(&self, field: Field) -> &str {
        self.texts
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, t)| t.as_str())
            .unwrap_or("")
    }

    fn text_mut(&mut self, field: Field) -> &mut String {
        let at = match self.texts.iter().position(|(f, _)| *f == field) {
            Some(at) => at,
            None => {
                self.texts.push((field, String::new()));
                self.texts.len() - 1
            }
        };
        &mut self.texts[at].1
    }

    /// What a field shows: typed text, or the choice made.
    pub fn display_value(&self, field: Field) -> String {
        let tri = |v: Option<bool>| match v {
            None => "default".to_string(),
            Some(b) => b.to_string(),
        };
        match field {
            Field::Model => self.model.id().to_string(),
            Field::Function => self
                .function
                .map_or("(choose)".to_string(), |f| f.as_str().to_string()),
            Field::PromptExtend => tri(self.prompt_extend),
            Field::Watermark => tri(self.watermark),
            Field::EnableInterleave => tri(self.enable_interleave),
            Field::EnableSequential => tri(self.enable_sequential),
            Field::ThinkingMode => tri(self.thinking_mode),
            Field::Style => self
                .style
                .map_or("default".to_string(), |i| PAINT_STYLES[i].to_string()),
            other => self.text(other).to_string(),
        }
    }

    /// What the service does when the field is left empty (a choice left at `default`),
    /// as the catalogue says for the model; `None` where the field is set or no default
    /// is known. Shown greyed beside the empty field: `n` empty shows `4`, 4 images billed.
    pub fn default_hint(&self, field: Field) -> Option<String> {
        let entry = self.model.entry();
        let on_off = |b: bool| if b { "on" } else { "off" }.to_string();
        let param = |name: &str| entry.param(name);
        let empty = match field {
            Field::PromptExtend => self.prompt_extend.is_none(),
            Field::Watermark => self.watermark.is_none(),
            Field::EnableInterleave => self.enable_interleave.is_none(),
            Field::EnableSequential => self.enable_sequential.is_none(),
            Field::ThinkingMode => self.thinking_mode.is_none(),
            Field::Model | Field::Function | Field::Style => false,
            text => self.text(text).trim().is_empty(),
        };
        if !empty {
            return None;
        }
        match field {
            Field::N => Some(entry.n.default.to_string()),
            Field::Size => entry.size.map(|rule| {
                rule.default
                    .map_or("the input's aspect".to_string(), |d| d.to_string())
            }),
            Field::Seed => Some("random".to_string()),
            Field::NegativePrompt => Some("none".to_string()),
            Field::PromptExtend => entry.prompt_extend.map(on_off),
            Field::Watermark => Some(on_off(false)),
            Field::EnableInterleave | Field::EnableSequential => Some(on_off(false)),
            Field::ThinkingMode => match param("thinking_mode") {
                Some(Param::ThinkingMode { default }) => Some(on_off(default)),
                _ => None,
            },
            Field::MaxImages => match param("max_images") {
                Some(Param::MaxImages { default, .. }) => Some(default.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// The first error about a field, if any.
    pub fn error_for(&self, name: &str) -> Option<&ValidationError> {
        self.errors.iter().find(|e| e.field == name)
    }

    pub fn is_valid(&self) -> bool {
        self.errors.is_empty()
    }

    pub fn prompt_text(&self) -> String {
        self.prompt.lines().join("\n")
    }

    /// The draft as a spec, with the errors of fields whose text does not parse. Fields
    /// that do not apply to the model are left out, so switching models keeps the text
    /// typed for the other model without making the job invalid.
    pub fn build(&self) -> (JobSpec, Vec<ValidationError>) {
        let mut spec = JobSpec::new(self.model, self.prompt_text());
        let mut errors = Vec::new();
        for field in self.visible_fields() {
            let text = self.text(field).trim();
            let name = field.spec_name();
            let mut fail = |message: String| errors.push(ValidationError::new(name, message));
            match field {
                Field::Model => {}
                Field::Function => spec.function = self.function,
                Field::PromptExtend => spec.prompt_extend = self.prompt_extend,
                Field::Watermark => spec.watermark = self.watermark,
                Field::EnableInterleave => spec.enable_interleave = self.enable_interleave,
                Field::EnableSequential => spec.enable_sequential = self.enable_sequential,
                Field::ThinkingMode => spec.thinking_mode = self.thinking_mode,
                Field::Style => spec.style = self.style.map(|i| PAINT_STYLES[i].to_string()),
                _ if text.is_empty() => {}
                Field::BaseImage => spec.base_image = Some(ImageRef::parse(text)),
                Field::MaskImage => spec.mask_image = Some(ImageRef::parse(text)),
                Field::Images => {
                    spec.images = text
                        .split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(ImageRef::parse)
                        .collect()
                }
                Field::NegativePrompt => spec.negative_prompt = Some(text.to_string()),
                Field::Size => match text.parse::<OutputSize>() {
                    Ok(size) => spec.size = Some(size),
                    Err(e) => fail(e.to_string()),
                },
                Field::N => match text.parse::<u32>() {
                    Ok(n) => spec.n = Some(n),
                    Err(_) => fail(format!("`{text}` is not a whole number; n must be 1 to 4")),
                },
                Field::MaxImages => match text.parse::<u32>() {
                    Ok(n) => spec.max_images = Some(n),
                    Err(_) => fail(format!("`{text}` is not a whole number")),
                },
                Field::MaskColor => match parse_colours(text) {
                    Ok(colours) => spec.mask_color = colours,
                    Err(message) => fail(message),
                },
                Field::Seed => match text.parse::<u64>() {
                    Ok(seed) => spec.seed = Some(seed),
                    Err(_) => fail(format!(
                        "`{text}` is not a whole number; seed must be 0 to 2147483647"
                    )),
                },
                Field::UpscaleFactor => match text.parse::<u32>() {
                    Ok(f) => spec.upscale_factor = Some(f),
                    Err(_) => fail(format!("`{text}` is not a whole number")),
                },
                Field::Expand => match intake::parse_expand(text) {
                    Ok(scales) => spec.expand = Some(scales),
                    Err(message) => fail(message),
                },
            }
        }
        (spec, errors)
    }

    /// Rebuilds the spec and the error list; called after every change.
    pub fn revalidate(&mut self) {
        let (spec, mut errors) = self.build();
        for err in intake::rule_problems(&spec) {
            if !errors.iter().any(|e| e.field == err.field) {
                errors.push(err);
            }
        }
        self.errors = errors;
    }

    /// The spec to submit, only if the draft is valid.
    pub fn valid_spec(&self) -> Option<JobSpec> {
        let (spec, errors) = self.build();
        (errors.is_empty() && intake::rule_problems(&spec).is_empty()).then_some(spec)
    }

    /// Moves focus to the next (or previous) part: prompt, then each visible field.
    pub fn cycle_focus(&mut self, forward: bool) {
        let mut order = vec![EditorFocus::Prompt];
        order.extend(self.visible_fields().into_iter().map(EditorFocus::Field));
        let at = order.iter().position(|f| *f == self.focus).unwrap_or(0);
        let len = order.len();
        self.focus = order[if forward {
            (at + 1) % len
        } else {
            (at + len - 1) % len
        }];
    }

    /// Changes a choice field one step; true if the focused field is a choice.
    pub fn cycle_choice(&mut self, forward: bool) -> bool {
        let EditorFocus::Field(field) = self.focus else {
            return false;
        };
        match field {
            Field::Model => {
                let choices = model_choices(self.region);
                self.model = step(&choices, Some(self.model), forward)
                    .or_else(|| {
                        // Past either end: wrap round rather than stop.
                        if forward {
                            choices.first()
                        } else {
                            choices.last()
                        }
                        .copied()
                    })
                    .unwrap_or(self.model)
            }
            Field::Function => self.function = step(&EditFunction::ALL, self.function, forward),
            Field::PromptExtend => self.prompt_extend = step_bool(self.prompt_extend, forward),
            Field::Watermark => self.watermark = step_bool(self.watermark, forward),
            Field::EnableInterleave => {
                self.enable_interleave = step_bool(self.enable_interleave, forward)
            }
            Field::EnableSequential => {
                self.enable_sequential = step_bool(self.enable_sequential, forward)
            }
            Field::ThinkingMode => self.thinking_mode = step_bool(self.thinking_mode, forward),
            Field::Size if !self.size_tokens().is_empty() => {
                // The tokens as choices; a typed `W*H` is left for the first token.
                let tokens = self.size_tokens();
                let current = self.text(Field::Size).trim().parse::<OutputSize>().ok();
                let current = match current {
                    Some(OutputSize::Token(token)) => Some(token),
                    _ => None,
                };
                *self.text_mut(Field::Size) = step(tokens, current, forward)
                    .map_or(String::new(), |t| t.as_str().to_string());
            }
            Field::Style => {
                let indices: Vec<usize> = (0..PAINT_STYLES.len()).collect();
                self.style = step(&indices, self.style, forward);
            }
            _ => return false,
        }
        self.modified = true;
        self.revalidate();
        true
    }

    /// The size tokens (`1K`, `2K`, `4K`) the model takes, offered as choices of `size`.
    pub fn size_tokens(&self) -> &'static [SizeToken] {
        self.model.entry().size.map_or(&[], |rule| rule.tokens)
    }

    /// Whether ←/→ change the focused field: a choice, or a size with tokens to offer.
    pub fn on_choice(&self) -> bool {
        match self.focus {
            EditorFocus::Field(Field::Size) => !self.size_tokens().is_empty(),
            EditorFocus::Field(field) => field.is_choice(),
            EditorFocus::Prompt => false,
        }
    }

    /// A key not bound in the editor's key table: typing into the focused part.
    pub fn type_key(&mut self, key: KeyEvent) {
        match self.focus {
            EditorFocus::Prompt => {
                if self.prompt.input(key) {
                    self.modified = true;
                }
            }
            EditorFocus::Field(field) if !field.is_choice() => {
                let text = self.text_mut(field);
                match key.code {
                    KeyCode::Char(c)
                        if !key
                            .modifiers
                            .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT) =>
                    {
                        text.push(c)
                    }
                    KeyCode::Backspace => {
                        text.pop();
                    }
                    _ => return,
                }
                self.modified = true;
            }
            EditorFocus::Field(_) => {
                if let KeyCode::Char(_) = key.code
                    && !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                {
                    self.hint = Some(CHOICE_HINT);
                }
                return;
            }
        }
        self.revalidate();
    }

    /// Bracketed paste: into the prompt as is, into a one-line field as one line.
    pub fn paste(&mut self, pasted: &str) {
        match self.focus {
            EditorFocus::Prompt => {
                let text = pasted.replace("\r\n", "\n").replace('\r', "\n");
                self.prompt.insert_str(sanitize_multiline(&text));
            }
            EditorFocus::Field(field) if !field.is_choice() => {
                self.text_mut(field).push_str(&sanitize(pasted));
            }
            EditorFocus::Field(_) => return,
        }
        self.modified = true;
        self.revalidate();
    }
}

/// The models offered in `region`, grouped by the catalogue's family line (`group`), the
/// groups in the order their first model appears in `Model::ALL`.
pub fn model_choices(region: Region) -> Vec<Model> {
    let offered: Vec<Model> = Model::ALL
        .into_iter()
        .filter(|m| m.id_in(region).is_some())
        .collect();
    let mut groups: Vec<&'static str> = Vec::new();
    for model in &offered {
        let group = model.entry().group;
        if !groups.contains(&group) {
            groups.push(group);
        }
    }
    groups
        .into_iter()
        .flat_map(|g| {
            offered
                .iter()
                .copied()
                .filter(move |m| m.entry().group == g)
        })
        .collect()
}

fn new_textarea(lines: Vec<String>) -> TextArea<'static> {
    let mut area = if lines.is_empty() {
        TextArea::default()
    } else {
        TextArea::new(lines)
    };
    area.set_wrap_mode(WrapMode::WordOrGlyph);
    area.set_placeholder_text("Describe the image…");
    area
}

/// `255,0,0; 0,255,0`: wanx-x-painting's mask colours, R,G,B each, `;` between colours
/// (the CLI's `--mask-color`, repeated).
fn parse_colours(text: &str) -> Result<Vec<[u8; 3]>, String> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|colour| {
            let channels: Option<Vec<u8>> =
                colour.split(',').map(|c| c.trim().parse().ok()).collect();
            match channels.as_deref() {
                Some(&[r, g, b]) => Ok([r, g, b]),
                _ => Err(format!(
                    "`{colour}` is not a colour; write R,G,B with each 0 to 255, e.g. 255,0,0 (`;` between colours)"
                )),
            }
        })
        .collect()
}

/// The next choice in `all`; `None` sits before the first (for optional choices).
fn step<T: Copy + PartialEq>(all: &[T], current: Option<T>, forward: bool) -> Option<T> {
    let at = current.and_then(|c| all.iter().position(|x| *x == c));
    match (at, forward) {
        (None, true) => all.first().copied(),
        (None, false) => all.last().copied(),
        (Some(i), true) => all.get(i + 1).copied(),
        (Some(0), false) => None,
        (Some(i), false) => all.get(i - 1).copied(),
    }
}

fn step_bool(current: Option<bool>, forward: bool) -> Option<bool> {
    step(&[true, false], current, forward)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_follow_model_and_function() {
        let mut editor = Editor::new(Model::Wanx21T2iTurbo);
        assert!(editor.visible_fields().contains(&Field::PromptExtend));
        assert!(!editor.visible_fields().contains(&Field::BaseImage));
        editor.model = Model::Wanx21ImageEdit;
        editor.function = Some(EditFunction::Expand);
        let fields = editor.visible_fields();
        assert!(fields.contains(&Field::Expand) && fields.contains(&Field::BaseImage));
        assert!(!fields.contains(&Field::UpscaleFactor) && !fields.contains(&Field::MaskImage));
    }

    #[test]
    fn the_model_choice_follows_the_region_grouped_by_family() {
        let beijing = model_choices(Region::Beijing);
        assert_eq!(beijing.len(), Model::ALL.len());
        // Each group's models sit together.
        let groups: Vec<&str> = beijing.iter().map(|m| m.entry().group).collect();
        let mut seen: Vec<&str> = Vec::new();
        for (i, g) in groups.iter().enumerate() {
            if i == 0 || groups[i - 1] != *g {
                assert!(!seen.contains(g), "{g} split in {groups:?}");
                seen.push(g);
            }
        }
        for region in Region::ALL {
            assert!(
                model_choices(region)
                    .iter()
                    .all(|m| m.id_in(region).is_some())
            );
        }
        let mut editor = Editor::new(Model::Wanx21T2iTurbo).in_region(Region::Beijing);
        editor.focus = EditorFocus::Field(Field::Model);
        for _ in 0..beijing.len() {
            assert!(editor.cycle_choice(true));
        }
        assert_eq!(editor.model, Model::Wanx21T2iTurbo, "wraps round");
    }

    #[test]
    fn the_form_follows_the_catalogue() {
        let mut editor = Editor::new(Model::Wan26Image);
        editor.prompt.insert_str("a cat");
        let fields = editor.visible_fields();
        assert!(fields.contains(&Field::Images), "{fields:?}");
        assert!(fields.contains(&Field::EnableInterleave) && fields.contains(&Field::MaxImages));
        assert!(!fields.contains(&Field::ThinkingMode) && !fields.contains(&Field::MaskColor));
        // The size tokens are choices of `size`.
        editor.focus = EditorFocus::Field(Field::Size);
        assert!(editor.on_choice());
        assert!(editor.cycle_choice(true));
        assert_eq!(editor.text(Field::Size), editor.size_tokens()[0].as_str());
        let (spec, errors) = editor.build();
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(spec.size, Some(OutputSize::Token(editor.size_tokens()[0])));

        editor.model = Model::Wan27Image;
        let fields = editor.visible_fields();
        assert!(fields.contains(&Field::EnableSequential) && fields.contains(&Field::ThinkingMode));

        let mut editor = Editor::new(Model::WanxXPainting);
        editor.focus = EditorFocus::Field(Field::MaskColor);
        assert!(editor.visible_fields().contains(&Field::MaskColor));
        for c in "255,0,0; 0,255,0".chars() {
            editor.type_key(KeyEvent::from(KeyCode::Char(c)));
        }
        assert_eq!(editor.build().0.mask_color, vec![[255, 0, 0], [0, 255, 0]]);
        editor.type_key(KeyEvent::from(KeyCode::Char('x')));
        assert!(editor.error_for("mask_color").is_some());

        // A text-only model takes no size tokens: ←/→ do not apply to its size.
        let mut editor = Editor::new(Model::Wanx21T2iTurbo);
        editor.focus = EditorFocus::Field(Field::Size);
        assert!(!editor.on_choice());
    }

    #[test]
    fn empty_fields_show_the_catalogue_defaults() {
        let mut editor = Editor::new(Model::Wanx21T2iTurbo);
        assert_eq!(editor.default_hint(Field::N).as_deref(), Some("4"));
        assert_eq!(editor.default_hint(Field::Seed).as_deref(), Some("random"));
        editor.focus = EditorFocus::Field(Field::N);
        editor.type_key(KeyEvent::from(KeyCode::Char('2')));
        assert_eq!(editor.default_hint(Field::N), None, "a typed n hides it");
        editor.focus = EditorFocus::Field(Field::Watermark);
        assert_eq!(
            editor.default_hint(Field::Watermark).as_deref(),
            Some("off")
        );
        editor.cycle_choice(true);
        assert_eq!(editor.default_hint(Field::Watermark), None);

        let editor = Editor::new(Model::Wan26Image);
        assert_eq!(
            editor.default_hint(Field::N).as_deref(),
            Some(Model::Wan26Image.default_n().to_string().as_str())
        );
        assert!(editor.default_hint(Field::MaxImages).is_some());
        assert!(editor.default_hint(Field::Size).is_some());
        let editor = Editor::new(Model::Wan27Image);
        assert!(editor.default_hint(Field::ThinkingMode).is_some());
    }

    #[test]
    fn fork_round_trips_the_spec() {
        let mut spec = JobSpec::new(Model::Wanx21T2iPlus, "a cat\non two lines");
        spec.n = Some(2);
        spec.seed = Some(42);
        spec.size = Some(crate::dashscope::Size::new(1024, 768).into());
        spec.negative_prompt = Some("blurry".into());
        spec.prompt_extend = Some(false);
        let editor = Editor::from_spec(&spec);
        assert_eq!(editor.valid_spec(), Some(spec));
    }

    #[test]
    fn a_field_that_does_not_parse_is_named() {
        let mut editor = Editor::new(Model::Wanx21T2iTurbo);
        editor.prompt.insert_str("a lighthouse");
        editor.focus = EditorFocus::Field(Field::N);
        editor.type_key(KeyEvent::from(KeyCode::Char('x')));
        assert_eq!(editor.error_for("n").map(|e| e.field.as_str()), Some("n"));
        assert!(editor.valid_spec().is_none());
    }

    #[test]
    fn typing_on_a_choice_field_gives_a_hint_and_changes_nothing() {
        let mut editor = Editor::new(Model::Wanx21T2iTurbo);
        editor.focus = EditorFocus::Field(Field::Model);
        editor.type_key(KeyEvent::from(KeyCode::Char('x')));
        assert_eq!(editor.hint, Some(CHOICE_HINT));
        assert_eq!(editor.model, Model::Wanx21T2iTurbo);
        assert!(!editor.modified);
    }
}
