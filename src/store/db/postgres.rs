//! The team backend: a PostgreSQL server that several wandash processes, on several
//! hosts, share.
//!
//! The `postgres` client blocks on a Tokio runtime of its own, which must not run inside
//! another one (the engine's, the dashboard's); so each connection lives on a thread of
//! its own, and the store's calls reach it over a channel. A connection that dropped is
//! made again on the next call outside a transaction, after a growing pause; inside one,
//! the transaction fails as a whole (nothing of it was applied) and the caller sees why.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, Statement};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::{Row, Value};
use crate::store::StoreError;

/// How long a connection attempt may take before the store says the server is unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Like SQLite's busy timeout: how long a statement waits for another engine's row lock.
const LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// No store statement runs for long; one that does is a server in trouble, said out loud.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Reconnection waits grow from the first to the last of these.
pub(super) const RECONNECT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(250), Duration::from_secs(8));

/// A `postgres://` URL. The password is kept for connecting and never shown: `Display`
/// and `Debug` print the URL without it.
#[derive(Clone, PartialEq)]
pub struct PostgresUrl {
    full: String,
}

impl PostgresUrl {
    /// `Some` for a `postgres://` or `postgresql://` URL.
    pub fn parse(text: &str) -> Option<PostgresUrl> {
        let lower = text.get(..13).unwrap_or(text).to_ascii_lowercase();
        (lower.starts_with("postgres://") || lower.starts_with("postgresql://")).then(|| {
            PostgresUrl {
                full: text.to_owned(),
            }
        })
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.full))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgresUrl({self})")
    }
}

/// The URL with any password taken out, from the user part (`user:secret@`) and from the
/// query (`password=`): what messages and logs may name.
pub(crate) fn redact_url(url: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((user_info, host)) => {
                    let user = user_info.split_once(':').map_or(user_info, |(u, _)| u);
                    format!("{scheme}://{user}@{host}{path}")
                }
                None => base.to_owned(),
            }
        }
        None => base.to_owned(),
    };
    match query {
        Some(query) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.to_ascii_lowercase().starts_with("password="))
                .collect();
            if kept.is_empty() {
                base
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        }
        None => base,
    }
}

/// The store writes `?N` (and bare `?`) placeholders, SQLite's; PostgreSQL numbers them
/// `$N`. Quoted strings, quoted names and comments are left as they are.
pub(crate) fn dollar_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut highest = 0u32;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    // A doubled quote inside reopens at once, which this loop also handles.
                    if inner == c {
                        break;
                    }
                }
            }
            '-' if chars.peek() == Some(&'-') => {
                out.push(c);
                for inner in chars.by_ref() {
                    out.push(inner);
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '?' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                // SQLite's rule: a bare `?` takes the number after the highest so far.
                let number = digits.parse().unwrap_or(highest + 1);
                highest = highest.max(number);
                out.push('$');
                out.push_str(&number.to_string());
            }
            other => out.push(other),
        }
    }
    out
}

impl ToSql for Value {
    /// Binds to whatever type the server inferred for the parameter: the store's values
    /// are few in kind, and a column's type decides (an `i64` id to an `int4` literal's
    /// place, a count to a text comparison) without a cast in every query.
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn StdError + Sync + Send>> {
        let text_like = matches!(
            *ty,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
        );
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(n) => match *ty {
                Type::INT8 => n.to_sql(ty, out),
                Type::INT4 => i32::try_from(*n)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*n)?.to_sql(ty, out),
                Type::FLOAT8 => (*n as f64).to_sql(ty, out),
                Type::FLOAT4 => (*n as f32).to_sql(ty, out),
                Type::BOOL => (*n != 0).to_sql(ty, out),
                _ if text_like => n.to_string().to_sql(&Type::TEXT, out),
                _ => Err(format!("an integer cannot be bound as {ty}").into()),
            },
            Value::Real(x) => match *ty {
                Type::FLOAT8 => x.to_sql(ty, out),
                Type::FLOAT4 => (*x as f32).to_sql(ty, out),
                _ if text_like => x.to_string().to_sql(&Type::TEXT, out),
                _ => Err(format!("a real number cannot be bound as {ty}").into()),
            },
            Value::Text(s) if text_like => s.as_str().to_sql(&Type::TEXT, out),
            Value::Text(_) => Err(format!("text cannot be bound as {ty}").into()),
            Value::Blob(b) if *ty == Type::BYTEA => b.as_slice().to_sql(ty, out),
            Value::Blob(_) => Err(format!("bytes cannot be bound as {ty}").into()),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// One column of a result, whatever its type, as a `Value`.
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        let value = match *ty {
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Real(f64::from(f32::from_sql(ty, raw)?)),
            Type::FLOAT8 => Value::Real(f64::from_sql(ty, raw)?),
            Type::NUMERIC => numeric(raw)?,
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                Value::Text(String::from_sql(ty, raw)?)
            }
            Type::BYTEA => Value::Blob(raw.to_vec()),
            _ => return Err(format!("the store reads no column of type {ty}").into()),
        };
        Ok(Cell(value))
    }

    fn from_sql_null(_: &Type) -> Result<Self, Box<dyn StdError + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// PostgreSQL's binary NUMERIC (what `SUM` of a BIGINT column gives): base-10000 digits
/// with a weight. A whole number that fits is an integer, anything else a real.
fn numeric(raw: &[u8]) -> Result<Value, Box<dyn StdError + Sync + Send>> {
    let word = |i: usize| -> Result<i16, String> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| i16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "a NUMERIC value is cut short".to_string())
    };
    let digits = usize::try_from(word(0)?).map_err(|_| "a NUMERIC value has no digits")?;
    let weight = i32::from(word(1)?);
    let sign = word(2)? as u16;
    let scale = word(3)?;
    if sign == 0xC000 {
        return Ok(Value::Real(f64::NAN));
    }
    let mut whole: Option<i64> = (scale == 0).then_some(0);
    let mut real = 0f64;
    for i in 0..digits {
        let digit = word(4 + i)?;
        let power = weight - i as i32;
        real += f64::from(digit) * 10000f64.powi(power);
        whole = whole.and_then(|w| {
            let place = 10000i64.checked_pow(u32::try_from(power).ok()?)?;
            w.checked_add(i64::from(digit).checked_mul(place)?)
        });
    }
    let negative = sign == 0x4000;
    Ok(match whole {
        Some(n) if negative => Value::Int(-n),
        Some(n) => Value::Int(n),
        None if negative => Value::Real(-real),
        None => Value::Real(real),
    })
}

type Job = Box<dyn FnOnce(&mut Session) + Send>;

/// The store's side: sends each call to the connection's thread and waits for its answer.
pub(super) struct Connection {
    jobs: mpsc::Sender<Job>,
    url: PostgresUrl,
}

/// The thread's side: the client, its prepared statements, and how reconnecting goes.
struct Session {
    url: PostgresUrl,
    config: Config,
    tls: MakeRustlsConnect,
    client: Option<Client>,
    statements: HashMap<String, Statement>,
    in_transaction: bool,
    next_connect: Option<(Instant, Duration)>,
}

impl Connection {
    /// Connects once before returning, so a wrong URL, password or database is reported
    /// at open, naming the URL without its password.
    pub(super) fn open(url: &PostgresUrl) -> Result<Connection, StoreError> {
        let config = client_config(url)?;
        let mut session = Session {
            url: url.clone(),
            config,
            tls: tls_connector().map_err(|message| StoreError::Server {
                url: url.to_string(),
                message,
            })?,
            client: None,
            statements: HashMap::new(),
            in_transaction: false,
            next_connect: None,
        };
        let (jobs, inbox) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("wandash-postgres".into())
            .spawn(move || {
                for job in inbox {
                    job(&mut session);
                }
            })
            .map_err(|e| StoreError::Server {
                url: url.to_string(),
                message: format!("cannot start the connection's thread: {e}"),
            })?;
        let connection = Connection {
            jobs,
            url: url.clone(),
        };
        // On the connection's thread too: the client may not block inside the caller's runtime.
        connection.call(|s| s.client().map(|_| ()))?;
        Ok(connection)
    }

    fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut Session) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, reply) = mpsc::sync_channel(1);
        let stopped = || StoreError::Server {
            url: self.url.to_string(),
            message: "the connection's thread stopped".into(),
        };
        self.jobs
            .send(Box::new(move |session| {
                let _ = answer.send(work(session));
            }))
            .map_err(|_| stopped())?;
        reply.recv().map_err(|_| stopped())?
    }

    pub(super) fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.call(move |s| s.execute(&sql, &params))
    }

    pub(super) fn execute_batch(&mut self, sql: &str) -> Result<(), StoreError> {
        let sql = sql.to_owned();
        self.call(move |s| {
            let result = s.client()?.batch_execute(&sql);
            result.map_err(|e| s.fail(&e))
        })
    }

    pub(super) fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let (sql, params) = (sql.to_owned(), params.to_vec());
        self.call(move |s| s.query(&sql, &params))
    }

    pub(super) fn begin(&mut self) -> Result<(), StoreError> {
        self.call(|s| {
            let result = s.client()?.batch_execute("BEGIN");
            result.map_err(|e| s.fail(&e))?;
            s.in_transaction = true;
            Ok(())
        })
    }

    pub(super) fn commit(&mut self) -> Result<(), StoreError> {
        self.call(|s| s.end_transaction("COMMIT"))
    }

    pub(super) fn rollback(&mut self) -> Result<(), StoreError> {
        self.call(|s| s.end_transaction("ROLLBACK"))
    }

    pub(super) fn url(&self) -> &PostgresUrl {
        &self.url
    }

    /// The server's WAL position moves with every commit, anyone's.
    pub(super) fn change_marker(&mut self) -> Result<i64, StoreError> {
        let rows = self.query(
            "SELECT CAST(pg_current_wal_insert_lsn() - '0/0' AS BIGINT)",
            &[],
        )?;
        rows.first()
            .ok_or_else(|| StoreError::Database("no WAL position".into()))?
            .get(0)
    }
}

/// How every connection of the store connects: timeouts, keepalives, and its name on the
/// server.
pub(super) fn client_config(url: &PostgresUrl) -> Result<Config, StoreError> {
    let mut config: Config = url.full.parse().map_err(|e| StoreError::Server {
        url: url.to_string(),
        message: format!("not a PostgreSQL URL: {}", describe(&e)),
    })?;
    config
        .connect_timeout(CONNECT_TIMEOUT)
        .keepalives(true)
        .keepalives_idle(Duration::from_secs(30))
        .application_name("wandash")
        .options(&format!(
            "-c lock_timeout={} -c statement_timeout={}",
            LOCK_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis()
        ));
    Ok(config)
}

impl Session {
    /// The connected client, connecting (again) when there is none or it dropped. Inside
    /// a transaction a dropped connection is the transaction's end, not a reconnect.
    fn client(&mut self) -> Result<&mut Client, StoreError> {
        let usable = self.client.as_ref().is_some_and(|c| !c.is_closed());
        if !usable {
            if self.in_transaction {
                self.client = None;
                return Err(self.lost(
                    "the connection dropped in the middle of a transaction; none of it was applied",
                ));
            }
            self.reconnect()?;
        }
        self.client
            .as_mut()
            .ok_or_else(|| StoreError::Database("no connection".into()))
    }

    fn reconnect(&mut self) -> Result<(), StoreError> {
        if let Some((not_before, _)) = self.next_connect
            && Instant::now() < not_before
        {
            return Err(self.lost("the server is unreachable; wandash tries again shortly"));
        }
        self.statements.clear();
        match self.config.connect(self.tls.clone()) {
            Ok(client) => {
                self.client = Some(client);
                self.next_connect = None;
                Ok(())
            }
            Err(e) => {
                let wait = self.next_connect.map_or(RECONNECT_BACKOFF.0, |(_, last)| {
                    (last * 2).min(RECONNECT_BACKOFF.1)
                });
                self.next_connect = Some((Instant::now() + wait, wait));
                Err(self.lost(&describe(&e)))
            }
        }
    }

    fn lost(&self, message: &str) -> StoreError {
        StoreError::Server {
            url: self.url.to_string(),
            message: message.to_owned(),
        }
    }

    /// A failed statement: the server's own message, with the URL when the connection
    /// itself is the problem.
    fn fail(&mut self, e: &postgres::Error) -> StoreError {
        match e.as_db_error() {
            // The server going away (shutdown 57P0x, connection failures 08xxx) is a
            // connection lost, not a statement's fault: named by server, reconnected next time.
            Some(db) if is_connection_loss(db.code().code()) => {
                self.client = None;
                self.lost(db.message())
            }
            Some(db) if is_transient_conflict(db.code().code()) => StoreError::Conflict {
                sqlstate: db.code().code().to_owned(),
                message: db.message().to_owned(),
                attempts: 1,
            },
            Some(db) if db.code().code() == "55P03" => StoreError::Database(format!(
                "another engine held a row this needs for over {} s; try again when it is done",
                LOCK_TIMEOUT.as_secs()
            )),
            Some(db) => StoreError::Database(format!("{} ({})", db.message(), db.code().code())),
            None => {
                if self.client.as_ref().is_some_and(Client::is_closed) {
                    self.client = None;
                }
                self.lost(&describe(e))
            }
        }
    }

    fn statement(&mut self, sql: &str) -> Result<Statement, StoreError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let prepared = self.client()?.prepare(&dollar_placeholders(sql));
        let statement = prepared.map_err(|e| self.fail(&e))?;
        self.statements.insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }

    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<usize, StoreError> {
        let statement = self.statement(sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        let result = self.client()?.execute(&statement, &args);
        let changed = result.map_err(|e| self.fail(&e))?;
        Ok(usize::try_from(changed).unwrap_or(usize::MAX))
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>, StoreError> {
        let statement = self.statement(sql)?;
        let args: Vec<&(dyn ToSql + Sync)> = params.iter().map(|v| v as _).collect();
        let result = self.client()?.query(&statement, &args);
        let rows = result.map_err(|e| self.fail(&e))?;
        let names: Arc<[String]> = statement
            .columns()
            .iter()
            .map(|c| c.name().to_owned())
            .collect();
        rows.iter()
            .map(|row| {
                let values = (0..names.len())
                    .map(|i| row.try_get::<_, Cell>(i).map(|cell| cell.0))
                    .collect::<Result<_, _>>()
                    .map_err(|e| StoreError::Corrupt(describe(&e)))?;
                Ok(Row {
                    names: names.clone(),
                    values,
                })
            })
            .collect()
    }

    fn end_transaction(&mut self, verb: &str) -> Result<(), StoreError> {
        let result = match self.client.as_mut().filter(|c| !c.is_closed()) {
            Some(client) => client.batch_execute(verb),
            None => {
                self.in_transaction = false;
                return Err(self.lost(&format!(
                    "{verb} failed (the connection dropped); the transaction was not applied"
                )));
            }
        };
        self.in_transaction = false;
        result.map_err(|e| match e.as_db_error() {
            // A commit may be where a serializable transaction learns of its conflict.
            Some(db) if is_transient_conflict(db.code().code()) => StoreError::Conflict {
                sqlstate: db.code().code().to_owned(),
                message: db.message().to_owned(),
                attempts: 1,
            },
            _ => self.lost(&format!(
                "{verb} failed ({e}); the transaction was not applied"
            )),
        })
    }
}

/// SQLSTATEs that mean the connection, not the statement, failed.
fn is_connection_loss(code: &str) -> bool {
    code.starts_with("08") || code.starts_with("57P")
}

/// SQLSTATEs of a transaction the server aborted so that a concurrent one could go on:
/// deadlock_detected and serialization_failure. Nothing of it was applied; run again, it
/// usually succeeds.
pub(super) fn is_transient_conflict(code: &str) -> bool {
    matches!(code, "40P01" | "40001")
}

/// TLS as the URL's `sslmode` asks (`prefer` by default: TLS where the server offers it;
/// `require` refuses a server without it), with the server's certificate checked against
/// the system's roots, as the HTTPS client does.
fn tls_connector() -> Result<MakeRustlsConnect, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(BuilderVerifierExt::with_platform_verifier)
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// An error with its causes, which hold the useful part ("password authentication failed").
pub(super) fn describe(e: &dyn StdError) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(inner) = cause {
        let more = inner.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_for_postgres_outside_quotes_and_comments() {
        assert_eq!(
            dollar_placeholders("SELECT a FROM t WHERE b = ?1 AND c = ?2 OR d = ?1"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 OR d = $1"
        );
        assert_eq!(
            dollar_placeholders("UPDATE t SET a = ?, b = ? WHERE id = ?"),
            "UPDATE t SET a = $1, b = $2 WHERE id = $3"
        );
        assert_eq!(
            dollar_placeholders("SELECT '?1', \"a?\" -- what?\n FROM t WHERE x LIKE ? ESCAPE '\\'"),
            "SELECT '?1', \"a?\" -- what?\n FROM t WHERE x LIKE $1 ESCAPE '\\'"
        );
        assert_eq!(
            dollar_placeholders("SELECT 'it''s ?' , ?3, ?"),
            "SELECT 'it''s ?' , $3, $4"
        );
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            redact_url("postgres://team:s3cr3t@db.example:5432/wandash"),
            "postgres://team@db.example:5432/wandash"
        );
        assert_eq!(
            redact_url("postgresql://db.example/wandash?user=team&password=s3cr3t&sslmode=require"),
            "postgresql://db.example/wandash?user=team&sslmode=require"
        );
        assert_eq!(redact_url("postgres://team@db/w"), "postgres://team@db/w");
        let url = PostgresUrl::parse("postgres://team:s3cr3t@db/w").unwrap();
        assert!(!format!("{url} {url:?}").contains("s3cr3t"));
        assert_eq!(PostgresUrl::parse("/home/me/wandash.db"), None);
        assert!(PostgresUrl::parse("PostgreSQL://db/w").is_some());
    }

    #[test]
    fn a_shutdown_or_broken_link_is_a_lost_connection_and_a_bad_statement_is_not() {
        assert!(is_connection_loss("57P01"), "admin shutdown");
        assert!(is_connection_loss("08006"), "connection failure");
        assert!(!is_connection_loss("23505"), "unique violation");
        assert!(!is_connection_loss("55P03"), "lock timeout");
    }

    #[test]
    fn a_deadlock_or_serialization_failure_is_worth_retrying_and_other_errors_are_not() {
        assert!(is_transient_conflict("40P01"), "deadlock detected");
        assert!(is_transient_conflict("40001"), "serialization failure");
        assert!(
            !is_transient_conflict("40002"),
            "integrity constraint at commit"
        );
        assert!(
            !is_transient_conflict("40003"),
            "statement completion unknown"
        );
        assert!(!is_transient_conflict("23505"), "unique violation");
        assert!(
            !is_transient_conflict("55P03"),
            "lock timeout: already waited long"
        );
        assert!(!is_transient_conflict("57P01"), "admin shutdown");
    }

    #[test]
    fn numeric_sums_read_as_integers_or_reals() {
        // 123456789: digits 1, 2345, 6789 with weight 2.
        let mut raw = Vec::new();
        for word in [3i16, 2, 0, 0, 1, 2345, 6789] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        assert_eq!(numeric(&raw).unwrap(), Value::Int(123_456_789));
        // -0.5: one digit 5000 at weight -1, scale 1.
        let mut raw = Vec::new();
        for word in [1i16, -1, 0x4000, 1, 5000] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        assert_eq!(numeric(&raw).unwrap(), Value::Real(-0.5));
        // Zero has no digits.
        let mut raw = Vec::new();
        for word in [0i16, 0, 0, 0] {
            raw.extend_from_slice(&word.to_be_bytes());
        }
        assert_eq!(numeric(&raw).unwrap(), Value::Int(0));
        assert!(numeric(&[0, 1]).is_err());
    }
}
