//! One bad job through every way into the queue: the dashboard's editor (with its data
//! worker on a real store), `wandash submit`, a batch file, and the MCP tools. Each must
//! name the same problems, each with its field and the same words, and queue nothing.
//!
//! The job breaks three rules at once: a blank prompt, an out-of-range `n`, and a base
//! image (of an editing model) that does not exist.

mod cli_support;
mod mcp_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ratatui::crossterm::event::{Event, KeyCode, KeyEvent};
use ratatui::layout::Rect;
use serde_json::json;
use time::OffsetDateTime;
use wandash::dashscope::{EditFunction, Model};
use wandash::store::{ImageFiles, JobFilter, Store};
use wandash::ui::data::{DataJob, DataWorker, StoreChange};
use wandash::ui::draw::frame_layout;
use wandash::ui::editor::{EditorFocus, Field};
use wandash::ui::event::AppEvent;
use wandash::ui::keys::KeyMap;
use wandash::ui::state::{AppState, Header, Mode};
use wandash::ui::update::SubmitError;

const PROMPT: &str = "   ";
const N: u32 = 9;

/// A problem as every surface must name it: the spec field and the message.
type Problem = (String, String);

fn problem(field: &str, message: &str) -> Problem {
    (field.to_string(), message.to_string())
}

/// `label: message` where the label is the field, or `argument (field)` in MCP's terms.
fn split_labelled(line: &str) -> Problem {
    let (label, message) = line
        .split_once(": ")
        .unwrap_or_else(|| panic!("no `field: message` in {line:?}"));
    let field = match label.split_once(" (") {
        Some((_argument, field)) => field.trim_end_matches(')'),
        None => label,
    };
    problem(field, message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_bad_job_gets_the_same_field_named_problems_everywhere() {
    let scratch = cli_support::Scratch::new();
    let missing = scratch.path("missing.png");
    let missing = missing.to_str().unwrap();

    let editor = through_the_editor(&scratch.path("ui.db"), missing).await;
    let fields: BTreeSet<&str> = editor.iter().map(|(f, _)| f.as_str()).collect();
    assert_eq!(
        fields,
        BTreeSet::from(["prompt", "n", "base_image"]),
        "{editor:?}"
    );
    assert!(
        editor.contains(&problem("n", "9 is out of range; n must be 1 to 4")),
        "{editor:?}"
    );
    assert!(
        editor.contains(&problem(
            "base_image",
            &format!("cannot read {missing}: No such file or directory (os error 2)")
        )),
        "{editor:?}"
    );

    assert_eq!(through_submit(&scratch, missing), editor, "wandash submit");
    assert_eq!(
        through_a_batch_file(&scratch, missing),
        editor,
        "wandash batch"
    );
    let (tool, batch_tool) = through_mcp(missing).await;
    assert_eq!(tool, editor, "MCP transform_image_from_file");
    assert_eq!(batch_tool, editor, "MCP submit_batch");

    let cli_jobs = Store::open(&scratch.db()).unwrap();
    assert_eq!(cli_jobs.count(&JobFilter::default()).unwrap(), 0);
}

/// The dashboard: the job typed into the editor, which shows the rule problems at once;
/// the data worker checks it (files included) against a real store, and the answer lands
/// beside the editor's fields.
async fn through_the_editor(db: &Path, missing: &str) -> BTreeSet<Problem> {
    let keys = KeyMap::default();
    let mut state = AppState::new(
        frame_layout(Rect::new(0, 0, 120, 40)),
        OffsetDateTime::now_utc(),
        Header::default(),
    );
    state.handle(&keys, &Event::Key(KeyEvent::from(KeyCode::Char('n'))));
    assert_eq!(state.mode, Mode::Editor);
    let editor = state.editor.as_mut().unwrap();
    editor.model = Model::Wanx21ImageEdit;
    editor.function = Some(EditFunction::DescriptionEdit);
    let mut type_into = |focus: EditorFocus, text: &str| {
        editor.focus = focus;
        for c in text.chars() {
            editor.type_key(KeyEvent::from(KeyCode::Char(c)));
        }
    };
    type_into(EditorFocus::Prompt, PROMPT);
    type_into(EditorFocus::Field(Field::N), &N.to_string());
    type_into(EditorFocus::Field(Field::BaseImage), missing);

    // The editor reads no files: it names the two rule problems, in the same words.
    let live: BTreeSet<Problem> = editor
        .errors
        .iter()
        .map(|e| problem(&e.field, &e.message))
        .collect();
    let (spec, unparsed) = editor.build();
    assert!(unparsed.is_empty(), "{unparsed:?}");

    let (events, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let worker = DataWorker::start(db, ImageFiles::default(), events).unwrap();
    worker.send(DataJob::Change(StoreChange::Submit(Box::new(spec), None)));
    let result = loop {
        let answer = tokio::time::timeout(Duration::from_secs(10), answers.recv())
            .await
            .expect("the data worker answers")
            .expect("the data worker runs");
        if let AppEvent::Submitted(result) = answer {
            break result;
        }
    };
    let Err(SubmitError::Invalid(refused)) = &result else {
        panic!("the editor's job was not refused as invalid: {result:?}");
    };
    assert_eq!(refused.len(), 3, "{refused:?}");
    state.submitted(result);
    assert_eq!(state.mode, Mode::Editor, "the draft stays open");
    let shown: BTreeSet<Problem> = state
        .editor
        .as_ref()
        .unwrap()
        .errors
        .iter()
        .map(|e| problem(&e.field, &e.message))
        .collect();
    assert!(
        live.is_subset(&shown) && live.len() == 2,
        "{live:?} {shown:?}"
    );
    assert_eq!(
        Store::open(db)
            .unwrap()
            .count(&JobFilter::default())
            .unwrap(),
        0
    );
    shown
}

/// `wandash submit`: every problem on its own `error:` line, then the sum.
fn through_submit(scratch: &cli_support::Scratch, missing: &str) -> BTreeSet<Problem> {
    let run = scratch
        .run(&[
            "submit",
            "--model",
            "wanx2.1-imageedit",
            "--function",
            "description_edit",
            "--prompt",
            PROMPT,
            "-n",
            &N.to_string(),
            "--base-image",
            missing,
        ])
        .expect(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let (summary, problems) = lines.split_last().expect("stderr says something");
    assert_eq!(
        *summary,
        "error: 3 problem(s) with the job; nothing was queued. Fix the options and run the command again"
    );
    problems
        .iter()
        .map(|line| split_labelled(line.strip_prefix("error: ").expect("an error line")))
        .collect()
}

/// `wandash batch`: every problem named by its line and field, then the sum.
fn through_a_batch_file(scratch: &cli_support::Scratch, missing: &str) -> BTreeSet<Problem> {
    let line = json!({
        "model": "wanx2.1-imageedit",
        "function": "description_edit",
        "prompt": PROMPT,
        "n": N,
        "base_image": missing,
    });
    let file = scratch.write("bad.jsonl", format!("{line}\n"));
    let run = scratch.run(&["batch", file.to_str().unwrap()]).expect(2);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let (summary, problems) = lines.split_last().expect("stderr says something");
    assert!(
        summary.starts_with("error: 3 problem(s) in the batch file; nothing was queued"),
        "{summary}"
    );
    problems
        .iter()
        .map(|line| {
            let rest = line
                .strip_prefix("error: line 1: field `")
                .unwrap_or_else(|| panic!("not a problem of line 1: {line:?}"));
            let (field, message) = rest.split_once("`: ").expect("field `name`: message");
            problem(field, message)
        })
        .collect()
}

/// MCP: the transform tool (its image argument named beside the field) and submit_batch
/// (each problem named by its job).
async fn through_mcp(missing: &str) -> (BTreeSet<Problem>, BTreeSet<Problem>) {
    let setup = mcp_support::Setup::new().await;
    let client = setup.client().await;
    let result = mcp_support::call(
        &client,
        "transform_image_from_file",
        json!({"image_file_path": missing, "prompt": PROMPT, "n": N, "function": "description_edit"}),
    )
    .await;
    assert!(mcp_support::is_error(&result));
    let text = mcp_support::text(&result);
    let (head, problems) = text.split_once('\n').expect("one problem a line");
    assert_eq!(head, "invalid input, 3 problems:");
    assert!(
        problems.contains("image_file_path (base_image): cannot read"),
        "{problems}"
    );
    let tool = problems.lines().map(split_labelled).collect();

    let job = json!({
        "model": "wanx2.1-imageedit",
        "function": "description_edit",
        "prompt": PROMPT,
        "n": N,
        "base_image": missing,
    });
    let result = mcp_support::call(&client, "submit_batch", json!({"jobs": [job]})).await;
    assert!(mcp_support::is_error(&result));
    let text = mcp_support::text(&result);
    let (head, problems) = text.split_once('\n').expect("one problem a line");
    assert_eq!(
        head,
        "3 problem(s); nothing was queued (jobs are counted from 0):"
    );
    let batch = problems
        .lines()
        .map(|line| split_labelled(line.strip_prefix("job 0: ").expect("job 0's problem")))
        .collect();

    assert_eq!(setup.store().count(&JobFilter::default()).unwrap(), 0);
    client.cancel().await.ok();
    (tool, batch)
}
