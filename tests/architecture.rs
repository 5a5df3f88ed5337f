//! The layering the README's "How it is built" table describes, checked on the source: each
//! top-level module may use only the modules below it, so there is no import circle, the
//! engine does not know the simulator exists, and the MCP server does not reach into the CLI.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Lowest first. A module may import only the modules that come before it.
const LAYERS: &[&str] = &[
    "text",      // sanitising outside text
    "files",     // bounded reads, private writes
    "dashscope", // the protocol
    "store",     // the durable queue
    "engine",    // from queue to service to disk
    "simulator", // the service's stand-in: knows the protocol, not the engine
    "intake",    // the one way into the queue
    "backend",   // which service the engine talks to
    "ui",        // the dashboard
    "config",    // the settings, which name the UI's keys and the engine's limits
    "mcp",       // the MCP server
    "cli",       // the commands, which start everything else
];

/// The longest an engine source file may grow before it is split by stage.
const ENGINE_FILE_MAX_LINES: usize = 450;

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level module a source file belongs to (`src/engine/follow.rs` -> `engine`).
fn module_of(file: &Path) -> String {
    let relative = file.strip_prefix(src()).unwrap();
    let first = relative
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::name` a file refers to, including those inside `use crate::{a, b::c}`.
fn crate_references(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    // Comments may name other modules (`see crate::backend`) without importing them.
    let code: String = text
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let text = code.as_str();
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Only the names at the group's own depth are modules: `{a::{B, C}, d}` -> a, d.
            let mut depth = 0;
            let mut at_name = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => at_name = true,
                    c if at_name && !c.is_whitespace() => {
                        found.insert(word(&group[j..]));
                        at_name = false;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(word(rest));
        }
    }
    found.retain(|name| !name.is_empty());
    found
}

#[test]
fn every_module_imports_only_the_layers_below_it() {
    let mut broken = Vec::new();
    for file in rust_files(&src()) {
        let module = module_of(&file);
        let Some(level) = LAYERS.iter().position(|m| *m == module) else {
            // lib.rs and main.rs put the modules together; they sit above all of them.
            assert!(
                module == "lib" || module == "main",
                "{} is in no layer: add `{module}` to LAYERS where it belongs",
                file.display()
            );
            continue;
        };
        let text = fs::read_to_string(&file).unwrap();
        for used in crate_references(&text) {
            if used == module {
                continue;
            }
            match LAYERS.iter().position(|m| *m == used) {
                Some(used_level) if used_level < level => {}
                Some(_) => broken.push(format!(
                    "{} uses crate::{used}, a layer above or beside `{module}`",
                    file.display()
                )),
                None => broken.push(format!(
                    "{} uses crate::{used}, which is in no layer",
                    file.display()
                )),
            }
        }
    }
    assert!(
        broken.is_empty(),
        "imports against the layering:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_layer_list_names_every_top_level_module() {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: BTreeSet<&str> = lib
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';'))
        .collect();
    let listed: BTreeSet<&str> = LAYERS.iter().copied().collect();
    assert_eq!(declared, listed, "lib.rs's modules and LAYERS differ");
}

#[test]
fn no_engine_source_file_outgrows_one_stage() {
    let long: Vec<String> = rust_files(&src().join("engine"))
        .into_iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(&file).unwrap().lines().count();
            (lines > ENGINE_FILE_MAX_LINES).then(|| format!("{}: {lines} lines", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "engine files over {ENGINE_FILE_MAX_LINES} lines (split by stage): {long:?}"
    );
}

#[test]
fn the_reference_scanner_sees_grouped_and_nested_imports() {
    let text = "use crate::{dashscope::{Model, Size}, store};\n//! see crate::ui\nlet x = crate::engine::connect();";
    let found: Vec<String> = crate_references(text).into_iter().collect();
    assert_eq!(found, ["dashscope", "engine", "store"]);
}
