//! What every command needs: the config, where the store and data live, the backend choice.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::dashscope::Region;
use crate::store::{ImageCache, Location};

use super::GlobalArgs;
use super::daily_log::DailyLog;
use super::failure::{CliResult, Failure};

pub struct Context {
    pub config: Config,
    pub db_path: PathBuf,
    /// Images (and the embedded simulator's state) live here.
    pub data_dir: PathBuf,
    /// `$XDG_STATE_HOME/wandash/logs` (the XDG place for logs); `<data dir>/logs` when
    /// `--db` or the config's `data_dir` names where this store's files go.
    pub log_dir: PathBuf,
    /// `--base-url` / `DASHSCOPE_BASE_URL`, else the config's `base_url`.
    pub base_url: Option<String>,
    pub region: Region,
    pub json: bool,
}

impl Context {
    /// This host's cache of images read from the store: `<data dir>/cache`, as large as
    /// `[store] cache_mb` allows.
    pub fn image_cache(&self) -> ImageCache {
        ImageCache::new(&self.data_dir, self.config.store.cache_mb)
    }

    pub fn new(global: &GlobalArgs, region: Option<Region>) -> CliResult<Context> {
        let config =
            Config::load(global.config.as_deref()).map_err(|e| Failure::usage(e.to_string()))?;
        let xdg_data = || {
            directories::ProjectDirs::from("", "", "wandash")
                .map(|d| d.data_dir().to_path_buf())
                .ok_or_else(|| {
                    Failure::usage("no home directory to keep the data in; pass --db PATH")
                })
        };
        let xdg_dirs = || -> Result<(PathBuf, PathBuf), Failure> {
            let dir = xdg_data()?;
            let log_dir = directories::ProjectDirs::from("", "", "wandash")
                .and_then(|d| d.state_dir().map(|state| state.join("logs")))
                // No XDG state directory outside Linux: beside the data, as before.
                .unwrap_or_else(|| dir.join("logs"));
            Ok((dir, log_dir))
        };
        // `--db` wins over `[store] url`; either may name a PostgreSQL server.
        let db = global
            .db
            .clone()
            .or_else(|| config.store.url.clone().map(PathBuf::from));
        let on_server = db
            .as_deref()
            .is_some_and(|db| matches!(Location::of(db), Location::Postgres(_)));
        let (db_path, data_dir, log_dir) = match (db, &config.data_dir) {
            (Some(db), Some(dir)) => (db, dir.clone(), dir.join("logs")),
            // A store on a server has no folder of its own here: this machine's images
            // and logs go where they would for the default store.
            (Some(db), None) if on_server => {
                let (dir, log_dir) = xdg_dirs()?;
                (db, dir, log_dir)
            }
            (Some(db), None) => (db.clone(), parent_dir(&db), parent_dir(&db).join("logs")),
            (None, Some(dir)) => (dir.join("wandash.db"), dir.clone(), dir.join("logs")),
            (None, None) => {
                let (dir, log_dir) = xdg_dirs()?;
                (dir.join("wandash.db"), dir, log_dir)
            }
        };
        let option_base_url = global.base_url.clone().filter(|u| !u.trim().is_empty());
        if let Some(url) = &option_base_url {
            crate::config::check_base_url(url).map_err(|reason| {
                Failure::usage(format!("--base-url (or DASHSCOPE_BASE_URL): {reason}"))
            })?;
        }
        let base_url = option_base_url.or_else(|| config.base_url.clone());
        let mut config = config;
        // `--region` wins over the file everywhere the config is read (prices too).
        config.region = region.unwrap_or(config.region);
        Ok(Context {
            region: config.region,
            config,
            db_path,
            data_dir,
            log_dir,
            base_url,
            json: global.json,
        })
    }

    /// Logs go to `<log dir>/wandash.log`, a file a day (see `DailyLog`), never to the
    /// terminal. The filter comes from `RUST_LOG` (default `info`). Keep the guard alive
    /// until exit: it flushes. The log directory is made 0700 and the files 0600 (prompts
    /// are private); control characters in what is logged (task ids, service messages)
    /// are escaped.
    pub fn init_logging(&self) -> Option<tracing_appender::non_blocking::WorkerGuard> {
        let file = DailyLog::open(&self.log_dir).ok()?;
        let (writer, guard) = tracing_appender::non_blocking(EscapeControls(file));
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .with_ansi(false)
            .try_init()
            .ok()?;
        Some(guard)
    }
}

/// A writer that escapes control characters on their way into the log, so that text from
/// the service (a task id holding `ESC ]52`, say) cannot drive the terminal of whoever
/// reads the log with `cat` or `tail -f`. C0 controls other than newline and tab, DEL and
/// C1 controls become `\x1b`-style escapes; everything else passes unchanged.
struct EscapeControls<W>(W);

impl<W: Write> Write for EscapeControls<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&escape_controls(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The bytes with controls escaped. Works on bytes, not chars, so invalid UTF-8 passes
/// through as it came; a C1 control is its two-byte UTF-8 form, `C2 80` to `C2 9F`.
fn escape_controls(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'\n' | b'\t' => out.push(byte),
            0x00..=0x1f | 0x7f => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
            0xc2 if matches!(bytes.get(i + 1), Some(0x80..=0x9f)) => {
                out.extend_from_slice(format!("\\u{{{:02x}}}", bytes[i + 1]).as_bytes());
                i += 1;
            }
            _ => out.push(byte),
        }
        i += 1;
    }
    out
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_and_text_passes() {
        let line = "task_id=a\u{1b}]52;c;ZXZpbA==\u{7} msg=\u{9b}31m\r ok\t中\n";
        let escaped = String::from_utf8(escape_controls(line.as_bytes())).unwrap();
        assert_eq!(
            escaped,
            "task_id=a\\x1b]52;c;ZXZpbA==\\x07 msg=\\u{9b}31m\\x0d ok\t中\n"
        );
    }
}
