//! The embedded backend: one SQLite file, opened by `schema::open`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::{params_from_iter, types::ToSqlOutput};

use super::{Row, Value};
use crate::store::StoreError;
use crate::store::schema::classify;

pub(super) struct Connection {
    conn: rusqlite::Connection,
    path: PathBuf,
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null => ToSqlOutput::Owned(SqlValue::Null),
            Value::Int(n) => ToSqlOutput::Owned(SqlValue::Integer(*n)),
            Value::Real(x) => ToSqlOutput::Owned(SqlValue::Real(*x)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

fn value_of(cell: ValueRef<'_>) -> Value {
    match cell {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(n) => Value::Int(n),
        ValueRef::Real(x) => Value::Real(x),
        // Text that is not UTF-8 (a store written by another program) reads as a blob,
        // so the row is named as unreadable instead of failing the whole query.
        ValueRef::Text(t) => match std::str::from_utf8(t) {
            Ok(s) => Value::Text(s.to_owned()),
            Err(_) => Value::Blob(t.to_vec()),
        },
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl Connection {
    pub(super) fn new(conn: rusqlite::Connection, path: &Path) -> Connection {
        Connection {
            conn,
            path: path.to_path_buf(),
        }
    }

    fn fail(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    pub(super) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.fail(e))?;
        stmt.execute(params_from_iter(params))
            .map_err(|e| classify(&self.path, e))
    }

    pub(super) fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn.execute_batch(sql).map_err(|e| self.fail(e))
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let path = &self.path;
        let mut stmt = self
            .conn
            .prepare_cached(sql)
            .map_err(|e| classify(path, e))?;
        let names: Arc<[String]> = stmt.column_names().map(String::from).collect();
        let width = names.len();
        let mut rows = stmt
            .query(params_from_iter(params))
            .map_err(|e| classify(path, e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| classify(path, e))? {
            let values = (0..width)
                .map(|i| row.get_ref(i).map(value_of))
                .collect::<Result<_, _>>()
                .map_err(|e| classify(path, e))?;
            out.push(Row {
                names: names.clone(),
                values,
            });
        }
        Ok(out)
    }

    /// `data_version` moves on other connections' commits, `total_changes` on our own.
    pub(super) fn change_marker(&mut self) -> Result<i64, StoreError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |row| row.get(0))
            .map_err(|e| self.fail(e))?;
        Ok(version
            .wrapping_mul(1 << 32)
            .wrapping_add(self.conn.total_changes() as i64))
    }
}
