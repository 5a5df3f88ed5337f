//! `--state FILE`: tasks, their PNGs and uploaded objects in SQLite, written through as
//! they change, so a restarted simulator still answers for its tasks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, params};

use super::SimError;
use super::state::Upload;
use super::tasks::Task;
use crate::dashscope::Model;

pub struct Store {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

/// What a state file held when it was opened.
pub struct Loaded {
    pub tasks: Vec<Task>,
    pub images: HashMap<(String, u32), Arc<Vec<u8>>>,
    pub uploads: HashMap<String, Upload>,
}

const SCHEMA: &str = "
    PRAGMA journal_mode = WAL;
    CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, record TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS images (task_id TEXT NOT NULL, idx INTEGER NOT NULL, png BLOB NOT NULL,
        PRIMARY KEY (task_id, idx));
    CREATE TABLE IF NOT EXISTS uploads (key TEXT PRIMARY KEY, model TEXT NOT NULL, created_ms INTEGER NOT NULL,
        bytes BLOB NOT NULL);
";

impl Store {
    pub async fn open(path: PathBuf) -> Result<(Store, Loaded), SimError> {
        let at = path.clone();
        let fail = move |e: String| SimError::State {
            path: at.clone(),
            message: e,
        };
        let opened = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || -> Result<(Connection, Loaded), String> {
                let conn = Connection::open(&path).map_err(|e| e.to_string())?;
                conn.execute_batch(SCHEMA).map_err(|e| e.to_string())?;
                let loaded = load(&conn).map_err(|e| e.to_string())?;
                Ok((conn, loaded))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
        };
        let (conn, loaded) = opened.map_err(fail)?;
        Ok((
            Store {
                path,
                conn: Arc::new(Mutex::new(conn)),
            },
            loaded,
        ))
    }

    pub async fn save_task(&self, task: Task) {
        let record = match serde_json::to_string(&task) {
            Ok(record) => record,
            Err(e) => return tracing::error!("cannot serialise task {}: {e}", task.id),
        };
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO tasks (id, record) VALUES (?1, ?2)",
                params![task.id, record],
            )
            .map(drop)
        })
        .await;
    }

    pub async fn save_images(&self, task_id: String, pngs: Vec<(u32, Arc<Vec<u8>>)>) {
        self.write(move |conn| {
            let tx = conn.unchecked_transaction()?;
            for (idx, png) in &pngs {
                tx.execute(
                    "INSERT OR REPLACE INTO images (task_id, idx, png) VALUES (?1, ?2, ?3)",
                    params![task_id, idx, png.as_slice()],
                )?;
            }
            tx.commit()
        })
        .await;
    }

    pub async fn save_upload(&self, key: String, upload: Upload) {
        self.write(move |conn| {
            conn.execute(
                "INSERT OR REPLACE INTO uploads (key, model, created_ms, bytes) VALUES (?1, ?2, ?3, ?4)",
                params![key, upload.model.id(), upload.created_ms, upload.bytes.as_slice()],
            )
            .map(drop)
        })
        .await;
    }

    /// Runs one write off the async threads. A failed write is logged, not fatal: the
    /// simulator keeps answering from memory.
    async fn write(&self, op: impl FnOnce(&Connection) -> rusqlite::Result<()> + Send + 'static) {
        let conn = Arc::clone(&self.conn);
        let result = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            op(&conn)
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("state file {}: write failed: {e}", self.path.display()),
            Err(e) => tracing::error!("state file {}: writer crashed: {e}", self.path.display()),
        }
    }
}

fn load(conn: &Connection) -> rusqlite::Result<Loaded> {
    let mut tasks = Vec::new();
    let mut stmt = conn.prepare("SELECT id, record FROM tasks")?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (id, record) = row?;
        match serde_json::from_str::<Task>(&record) {
            Ok(task) => tasks.push(task),
            Err(e) => tracing::warn!("state file: skipping unreadable task {id}: {e}"),
        }
    }
    let mut images = HashMap::new();
    let mut stmt = conn.prepare("SELECT task_id, idx, png FROM images")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, u32>(1)?,
            row.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    for row in rows {
        let (task_id, idx, png) = row?;
        images.insert((task_id, idx), Arc::new(png));
    }
    let mut uploads = HashMap::new();
    let mut stmt = conn.prepare("SELECT key, model, created_ms, bytes FROM uploads")?;
    let rows = stmt.query_map([], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get::<_, String>(1)?,
            row.get::<_, i64>(2)?,
            row.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    for row in rows {
        let (key, model, created_ms, bytes) = row?;
        match Model::from_str(&model) {
            Ok(model) => {
                uploads.insert(
                    key,
                    Upload {
                        model,
                        bytes: Arc::new(bytes),
                        created_ms,
                    },
                );
            }
            Err(e) => tracing::warn!("state file: skipping upload {key}: {e}"),
        }
    }
    Ok(Loaded {
        tasks,
        images,
        uploads,
    })
}
