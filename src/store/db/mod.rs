//! The one way the store talks to its database, whichever it is: an embedded SQLite file
//! or a PostgreSQL server. The store's queries are written once, in the SQL both speak
//! (`?N` placeholders, `ON CONFLICT`, `RETURNING`); where the two differ the store asks
//! `Db::dialect`. Values cross as `Value`, rows come back owned, so no backend type
//! leaks into the store's code.

mod listen;
mod postgres;
mod sqlite;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::StoreError;
use crate::dashscope::Timestamp;

pub use listen::ChangeWatcher;
pub use postgres::PostgresUrl;

/// Where a store lives, as given to `--db` or `[store] url`: a file path, or a
/// `postgres://` / `postgresql://` URL.
#[derive(Debug, Clone, PartialEq)]
pub enum Location {
    File(PathBuf),
    Postgres(PostgresUrl),
}

impl Location {
    /// Reads a `--db` value: a PostgreSQL URL by its scheme, anything else a file path.
    pub fn of(path: &Path) -> Location {
        match path.to_str().and_then(PostgresUrl::parse) {
            Some(url) => Location::Postgres(url),
            None => Location::File(path.to_path_buf()),
        }
    }
}

impl fmt::Display for Location {
    /// A file's path, or the URL without its password: safe for messages and logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Postgres(url) => write!(f, "{url}"),
        }
    }
}

/// The SQL a query may need to spell differently per database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// One value in or out of a query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Int(_) => "integer",
            Value::Real(_) => "real",
            Value::Text(_) => "text",
            Value::Blob(_) => "blob",
        }
    }
}

/// What can be bound to a query parameter.
pub(crate) trait ToValue {
    fn to_value(&self) -> Value;
}

/// What a column can be read as. The error says what was found instead.
pub(crate) trait FromValue: Sized {
    fn from_value(value: &Value) -> Result<Self, String>;
}

impl ToValue for Value {
    fn to_value(&self) -> Value {
        self.clone()
    }
}

impl<T: ToValue + ?Sized> ToValue for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToValue> ToValue for Option<T> {
    fn to_value(&self) -> Value {
        self.as_ref().map_or(Value::Null, ToValue::to_value)
    }
}

impl ToValue for i64 {
    fn to_value(&self) -> Value {
        Value::Int(*self)
    }
}

macro_rules! int_to_value {
    ($($t:ty),*) => {$(
        impl ToValue for $t {
            fn to_value(&self) -> Value {
                Value::Int(i64::from(*self))
            }
        }
    )*};
}
int_to_value!(i32, u32, u8, bool);

impl ToValue for u64 {
    /// Counts and sizes: none comes near 2^63, and a saturated one still compares right.
    fn to_value(&self) -> Value {
        Value::Int(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToValue for f64 {
    fn to_value(&self) -> Value {
        Value::Real(*self)
    }
}

impl ToValue for str {
    fn to_value(&self) -> Value {
        Value::Text(self.to_owned())
    }
}

impl ToValue for String {
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

impl ToValue for [u8] {
    fn to_value(&self) -> Value {
        Value::Blob(self.to_vec())
    }
}

/// Every `*_at` column holds a `Timestamp`'s epoch milliseconds.
impl ToValue for Timestamp {
    fn to_value(&self) -> Value {
        Value::Int(self.as_millis())
    }
}

impl From<Timestamp> for Value {
    fn from(at: Timestamp) -> Self {
        at.to_value()
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Self {
        n.to_value()
    }
}

impl From<i32> for Value {
    fn from(n: i32) -> Self {
        n.to_value()
    }
}

impl FromValue for Value {
    fn from_value(value: &Value) -> Result<Self, String> {
        Ok(value.clone())
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Null => Ok(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl FromValue for i64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Int(n) => Ok(*n),
            other => Err(format!("expected an integer, found {}", other.kind())),
        }
    }
}

macro_rules! int_from_value {
    ($($t:ty),*) => {$(
        impl FromValue for $t {
            fn from_value(value: &Value) -> Result<Self, String> {
                let n = i64::from_value(value)?;
                <$t>::try_from(n).map_err(|_| format!("{n} is out of range"))
            }
        }
    )*};
}
int_from_value!(i32, u32, u64);

impl FromValue for bool {
    fn from_value(value: &Value) -> Result<Self, String> {
        i64::from_value(value).map(|n| n != 0)
    }
}

impl FromValue for f64 {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Real(x) => Ok(*x),
            // SQLite hands a whole REAL back as an integer when it was stored as one.
            Value::Int(n) => Ok(*n as f64),
            other => Err(format!("expected a number, found {}", other.kind())),
        }
    }
}

impl FromValue for String {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Text(s) => Ok(s.clone()),
            other => Err(format!("expected text, found {}", other.kind())),
        }
    }
}

impl FromValue for Vec<u8> {
    fn from_value(value: &Value) -> Result<Self, String> {
        match value {
            Value::Blob(bytes) => Ok(bytes.clone()),
            other => Err(format!("expected bytes, found {}", other.kind())),
        }
    }
}

impl FromValue for Timestamp {
    fn from_value(value: &Value) -> Result<Self, String> {
        i64::from_value(value).map(Timestamp::from_millis)
    }
}

/// Binds each argument as a `Value`: `db.execute(sql, params![id, name])`.
macro_rules! params {
    () => {
        &[] as &[$crate::store::db::Value]
    };
    ($($arg:expr),+ $(,)?) => {
        &[$($crate::store::db::ToValue::to_value(&$arg)),+] as &[$crate::store::db::Value]
    };
}
pub(crate) use params;

/// One result row, owned: the columns' names and values.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    names: Arc<[String]>,
    values: Vec<Value>,
}

impl Row {
    /// Column `index` as a `T`; a value of another type is a store this build cannot read,
    /// named by its column.
    pub(crate) fn get<T: FromValue>(&self, index: usize) -> Result<T, StoreError> {
        let value = self.values.get(index).ok_or_else(|| {
            StoreError::Database(format!(
                "a query read column {index} of {}",
                self.values.len()
            ))
        })?;
        T::from_value(value).map_err(|why| {
            let name = self.names.get(index).map_or("?", String::as_str);
            StoreError::Corrupt(format!("column `{name}`: {why}"))
        })
    }
}

/// A connection to the store's database.
pub(crate) struct Db {
    backend: Backend,
}

enum Backend {
    Sqlite(sqlite::Connection),
    Postgres(postgres::Connection),
}

impl Db {
    pub(crate) fn sqlite(conn: rusqlite::Connection, path: &Path) -> Db {
        Db {
            backend: Backend::Sqlite(sqlite::Connection::new(conn, path)),
        }
    }

    /// Connects to the PostgreSQL server at `url` (bounded: see `postgres::CONNECT_TIMEOUT`).
    pub(crate) fn postgres(url: &PostgresUrl) -> Result<Db, StoreError> {
        Ok(Db {
            backend: Backend::Postgres(postgres::Connection::open(url)?),
        })
    }

    /// The server's URL with its password (the store's shown path has none), for a
    /// connection of another kind to the same database; `None` on SQLite.
    pub(crate) fn postgres_url(&self) -> Option<PostgresUrl> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(conn) => Some(conn.url().clone()),
        }
    }

    pub(crate) fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// In a write transaction: takes PostgreSQL's advisory lock named `key` until the
    /// transaction ends, `shared` with others taking it shared, else alone. Engines on
    /// other connections that take it wait for this transaction. On SQLite the write
    /// transaction already keeps every other writer out: there is nothing to take.
    pub(crate) fn lock_until_commit(&mut self, key: &str, shared: bool) -> Result<(), StoreError> {
        if self.dialect() == Dialect::Sqlite {
            return Ok(());
        }
        let function = if shared {
            "pg_advisory_xact_lock_shared"
        } else {
            "pg_advisory_xact_lock"
        };
        self.execute(
            &format!("SELECT {function}(hashtext(?1))"),
            &[Value::Text(key.to_string())],
        )?;
        Ok(())
    }

    /// Runs one statement; the number of rows it changed.
    pub(crate) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => conn.execute(sql, params),
            Backend::Postgres(conn) => conn.execute(sql, params),
        }
    }

    /// Runs several statements without parameters (migrations).
    pub(crate) fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => conn.execute_batch(sql),
            Backend::Postgres(conn) => conn.execute_batch(sql),
        }
    }

    /// Every row of a query. Queries that could grow with the store carry a LIMIT.
    pub(crate) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => conn.query(sql, params),
            Backend::Postgres(conn) => conn.query(sql, params),
        }
    }

    pub(crate) fn query_map<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl FnMut(&Row) -> Result<T, StoreError>,
    ) -> Result<Vec<T>, StoreError> {
        self.query(sql, params)?.iter().map(read).collect()
    }

    /// The first row, if any.
    pub(crate) fn query_opt<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<Option<T>, StoreError> {
        self.query(sql, params)?.first().map(read).transpose()
    }

    /// The first row, which must exist (an aggregate, or a row the transaction holds).
    pub(crate) fn query_row<T>(
        &mut self,
        sql: &str,
        params: &[Value],
        read: impl FnOnce(&Row) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.query_opt(sql, params, read)?
            .ok_or_else(|| StoreError::Database(format!("no row for: {}", first_line(sql))))
    }

    /// A transaction that writes: SQLite takes the write lock up front (a deferred one that
    /// reads first fails at once with "database is locked" when another process committed
    /// in between, instead of waiting); PostgreSQL locks rows as they are touched. Dropped
    /// without `commit`, it rolls back.
    pub(crate) fn write_tx(&mut self) -> Result<Tx<'_>, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => conn.execute_batch("BEGIN IMMEDIATE")?,
            Backend::Postgres(conn) => conn.begin()?,
        }
        Ok(Tx {
            db: self,
            open: true,
        })
    }

    /// Runs `work` in a write transaction and commits it; when PostgreSQL aborts the
    /// transaction to break a deadlock or a serialization conflict with another engine's
    /// (`StoreError::Conflict`), runs it again from the start after a short jittered pause,
    /// up to `CONFLICT_ATTEMPTS` runs in all. `work` must therefore do nothing outside the
    /// transaction that a second run would repeat. Returning an error rolls back.
    pub(crate) fn in_write_tx<T>(
        &mut self,
        mut work: impl FnMut(&mut Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut attempt = 1;
        loop {
            let outcome = self.write_tx().and_then(|mut tx| {
                let value = work(&mut tx)?;
                tx.commit()?;
                Ok(value)
            });
            match outcome {
                Err(StoreError::Conflict {
                    sqlstate, message, ..
                }) => match conflict_pause(attempt, fastrand::f64()) {
                    Some(pause) => {
                        tracing::debug!(
                            "store transaction aborted ({message}, SQLSTATE {sqlstate}), run {attempt} of {CONFLICT_ATTEMPTS}; running it again in {pause:?}"
                        );
                        std::thread::sleep(pause);
                        attempt += 1;
                    }
                    None => {
                        return Err(StoreError::Conflict {
                            sqlstate,
                            message,
                            attempts: attempt,
                        });
                    }
                },
                other => return other,
            }
        }
    }

    /// Changes whenever anyone commits to the database: compare two readings to know
    /// whether a refresh is needed. Cheap (no table is read).
    pub(crate) fn change_marker(&mut self) -> Result<i64, StoreError> {
        match &mut self.backend {
            Backend::Sqlite(conn) => conn.change_marker(),
            Backend::Postgres(conn) => conn.change_marker(),
        }
    }
}

/// How many times in a row a transaction the database aborted for a conflict is run
/// before the caller gets the error: a deadlock between two engines resolves in one
/// retry; several in a row are a hot spot worth hearing about.
pub(crate) const CONFLICT_ATTEMPTS: u32 = 4;
/// The pause before the second run; it doubles with each further one.
const CONFLICT_FIRST_PAUSE: Duration = Duration::from_millis(20);

/// The pause after run `attempt` (from 1) ended in a conflict, or `None` when that was
/// the last run allowed. `jitter` (in [0, 1)) spreads the pause over half to one and a
/// half times its base, so that two engines that collided do not collide again in step.
fn conflict_pause(attempt: u32, jitter: f64) -> Option<Duration> {
    if attempt >= CONFLICT_ATTEMPTS {
        return None;
    }
    let base = CONFLICT_FIRST_PAUSE * 2u32.pow(attempt.saturating_sub(1));
    Some(base.mul_f64(0.5 + jitter.clamp(0.0, 1.0)))
}

fn first_line(sql: &str) -> &str {
    sql.trim().lines().next().unwrap_or_default()
}

/// An open write transaction; derefs to the connection it runs on.
pub(crate) struct Tx<'a> {
    db: &'a mut Db,
    open: bool,
}

impl Tx<'_> {
    pub(crate) fn commit(mut self) -> Result<(), StoreError> {
        match &mut self.db.backend {
            Backend::Sqlite(conn) => conn.execute_batch("COMMIT")?,
            Backend::Postgres(conn) => conn.commit()?,
        }
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open {
            // Nothing of an abandoned transaction may stay; a failed rollback (a connection
            // already gone) has nothing left to undo.
            let _ = match &mut self.db.backend {
                Backend::Sqlite(conn) => conn.execute_batch("ROLLBACK"),
                Backend::Postgres(conn) => conn.rollback(),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_is_retried_after_growing_jittered_pauses_then_given_up() {
        assert_eq!(conflict_pause(1, 0.5), Some(Duration::from_millis(20)));
        assert_eq!(conflict_pause(2, 0.5), Some(Duration::from_millis(40)));
        assert_eq!(conflict_pause(3, 0.5), Some(Duration::from_millis(80)));
        assert_eq!(conflict_pause(CONFLICT_ATTEMPTS, 0.5), None, "the last run");
        assert_eq!(conflict_pause(CONFLICT_ATTEMPTS + 1, 0.5), None);
        // The jitter spans half to one and a half times the base.
        assert_eq!(conflict_pause(1, 0.0), Some(Duration::from_millis(10)));
        assert_eq!(
            conflict_pause(1, 0.999_999).map(|d| d.as_millis()),
            Some(29)
        );
        assert_eq!(
            conflict_pause(1, 7.0),
            Some(Duration::from_millis(30)),
            "clamped"
        );
    }
}
