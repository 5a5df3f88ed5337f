//! The store on real SQLite files, through its public API: schema handling, change
//! markers, the spec. The engine's side (claims, transitions, events, paging over the
//! states it writes) is tested inside the crate, in `store::tests`: that side is not
//! public.

use wandash::dashscope::{JobSpec, Model};
use wandash::store::{JobFilter, JobId, JobState, SCHEMA_VERSION, StateFilter, Store, StoreError};

fn spec(prompt: &str) -> JobSpec {
    JobSpec::new(Model::Wanx21T2iTurbo, prompt)
}

fn db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/dir/wandash.db");
    (dir, path)
}

#[test]
fn opening_twice_keeps_data_and_schema_version() {
    let (_dir, path) = db();
    let id = Store::open(&path).unwrap().enqueue(&spec("a fox")).unwrap();
    let store = Store::open(&path).unwrap();
    let job = store.job(id).unwrap().expect("job survives reopening");
    assert_eq!(job.spec.prompt, "a fox");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn a_newer_schema_is_refused_with_a_clear_message() {
    let (_dir, path) = db();
    Store::open(&path).unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 3)
        .unwrap();
    drop(conn);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, known, .. } if found == SCHEMA_VERSION + 3 && known == SCHEMA_VERSION)
    );
    let text = err.to_string();
    assert!(text.contains("created by a newer wandash"), "{text}");
    assert!(
        text.contains(&format!("schema {}", SCHEMA_VERSION + 3)),
        "{text}"
    );
    // Refusing must not have touched the file.
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, SCHEMA_VERSION + 3);
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let (dir, _) = db();
    let path = dir.path().join("notes.txt");
    let content = "this is a text file, not SQLite, and it is long enough to fill a header page.\n"
        .repeat(20);
    std::fs::write(&path, &content).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("not a wandash database"), "{err}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), content);
}

#[test]
fn change_marker_moves_on_commits_from_other_connections() {
    let (_dir, path) = db();
    let reader = Store::open(&path).unwrap();
    let writer = Store::open(&path).unwrap();
    let before = reader.change_marker().unwrap();
    assert_eq!(
        reader.change_marker().unwrap(),
        before,
        "no commit, no change"
    );
    writer.enqueue(&spec("x")).unwrap();
    let after = reader.change_marker().unwrap();
    assert_ne!(after, before);
    reader.enqueue(&spec("y")).unwrap();
    assert_ne!(
        reader.change_marker().unwrap(),
        after,
        "own commits count too"
    );
}

#[test]
fn the_spec_round_trips_and_no_key_is_stored() {
    let (_dir, path) = db();
    let store = Store::open(&path).unwrap();
    let mut s = spec("a bridge");
    s.seed = Some(42);
    s.n = Some(2);
    let id = store.enqueue(&s).unwrap();
    let job = store.job(id).unwrap().unwrap();
    assert_eq!(job.spec, s);
    assert_eq!(job.summary.images_expected, 2);
    assert!("7".parse::<JobId>().is_ok() && "x".parse::<JobId>().is_err());
}

/// Counts from the trigger-kept table agree with counting the jobs themselves.
fn assert_counts_match(store: &Store, path: &std::path::Path) {
    let conn = rusqlite::Connection::open(path).unwrap();
    let counts = store.counts_by_state().unwrap();
    for state in JobState::ALL {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM jobs WHERE state = ?1",
                [state.as_str()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(counts.get(state), n as u64, "{state}");
    }
}

#[test]
fn an_older_schema_is_upgraded_with_its_data_and_counts_follow_every_change() {
    let (_dir, path) = db();
    let store = Store::open(&path).unwrap();
    let ids = store
        .enqueue_batch(&[spec("a"), spec("b"), spec("c"), spec("d")], None)
        .unwrap();
    store.request_cancel(ids[0]).unwrap();
    drop(store);
    // Turn the file back into a schema-1 database, as an older wandash left it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "DROP TABLE job_inputs; DROP TABLE reconciling; ALTER TABLE jobs DROP COLUMN adopted_unanswered;
         DROP TABLE engines; DROP TABLE rate_buckets; DROP INDEX jobs_by_engine;
         ALTER TABLE jobs DROP COLUMN engine_id;
         DROP INDEX images_by_path; DROP TABLE image_blobs;
         ALTER TABLE jobs DROP COLUMN sync_answer;
         DROP INDEX jobs_queue_order; DROP INDEX jobs_by_state_queue; DROP TRIGGER jobs_queue_pos;
         ALTER TABLE jobs DROP COLUMN queue_pos; DROP TABLE paused; DROP INDEX jobs_money;
         DROP INDEX images_starred; ALTER TABLE images DROP COLUMN starred; ALTER TABLE jobs DROP COLUMN parent_job_id;
         DROP TRIGGER state_counts_insert; DROP TRIGGER state_counts_delete; DROP TRIGGER state_counts_update;
         DROP TABLE state_counts; DROP TABLE task_durations;
         DROP INDEX jobs_by_submitter; ALTER TABLE jobs DROP COLUMN submitted_by; PRAGMA user_version = 1;",
    )
    .unwrap();
    drop(conn);

    let store = Store::open(&path).unwrap();
    assert_eq!(store.job(ids[1]).unwrap().unwrap().spec.prompt, "b");
    assert_counts_match(&store, &path);
    // What the engine's claim does to the row (the engine's writes are not public).
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE jobs SET state = 'submitting', attempts = attempts + 1 WHERE id = ?1",
            [ids[1].0],
        )
        .unwrap();
    store.retry(ids[0]).unwrap();
    store.request_cancel(ids[2]).unwrap();
    store.delete(ids[2]).unwrap();
    store.enqueue(&spec("e")).unwrap();
    assert_counts_match(&store, &path);
    let active = JobFilter {
        state: Some(StateFilter::Active),
        search: None,
        submitted_by: None,
    };
    assert_eq!(store.count(&active).unwrap(), 4);
    assert_eq!(store.count(&JobFilter::default()).unwrap(), 4);
}

#[path = "support/postgres.rs"]
mod test_postgres;

#[path = "../src/store/postgres_schema.rs"]
mod postgres_schema;

/// The PostgreSQL side: the throwaway server the store's PostgreSQL tests run on, and the
/// schema in PostgreSQL's dialect checked against SQLite's.
mod pg {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use postgres::{Client, NoTls};
    use wandash::store::{SCHEMA_VERSION, Store};

    use super::postgres_schema::{MIGRATION_LOCK, MIGRATIONS, VERSION_TABLE};
    use super::{spec, test_postgres};

    fn connect(url: &str) -> Client {
        Client::connect(url, NoTls).unwrap_or_else(|e| panic!("cannot connect to {url}: {e}"))
    }

    #[test]
    fn fresh_databases_are_distinct_and_reachable_by_password_only() {
        let Some(server) = test_postgres::server() else {
            return;
        };
        let (first, second) = (server.fresh_database(), server.fresh_database());
        assert_ne!(first, second);
        let mut a = connect(&first);
        let mut b = connect(&second);
        a.batch_execute("CREATE TABLE only_here (x BIGINT)")
            .unwrap();
        let tables = |client: &mut Client| -> i64 {
            client
                .query_one(
                    "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()",
                    &[],
                )
                .unwrap()
                .get(0)
        };
        assert_eq!((tables(&mut a), tables(&mut b)), (1, 0));

        let refused = Client::connect(&server.with_wrong_password(&first), NoTls)
            .err()
            .expect("a wrong password is refused");
        assert_eq!(
            refused.code(),
            Some(&postgres::error::SqlState::INVALID_PASSWORD),
            "{refused}"
        );
    }

    /// Also: a dashboard's change watcher, its connection ended by the restart, connects
    /// again and wakes once (what was committed meanwhile was not notified to it), then
    /// hears later commits as before.
    #[test]
    fn a_restarted_server_keeps_its_data_and_ends_old_connections() {
        let Some(mut server) = test_postgres::own_server() else {
            return;
        };
        let url = server.fresh_database();
        let store_path = std::path::PathBuf::from(&url);
        let dashboard = Store::open(&store_path).unwrap();
        let watcher = dashboard.watch_changes().unwrap().expect("a watcher");
        let mut before = connect(&url);
        before
            .batch_execute("CREATE TABLE kept (x BIGINT); INSERT INTO kept VALUES (7)")
            .unwrap();
        server.stop();
        assert!(
            Client::connect(&url, NoTls).is_err(),
            "a stopped server answers"
        );
        server.start();
        assert!(before.query_one("SELECT 1", &[]).is_err());
        let x: i64 = connect(&url)
            .query_one("SELECT x FROM kept", &[])
            .unwrap()
            .get(0);
        assert_eq!(x, 7);
        assert!(
            watcher.wait(Duration::from_secs(10)),
            "no wake after reconnecting"
        );
        assert!(!watcher.wait(Duration::from_millis(300)), "woken again");
        Store::open(&store_path)
            .unwrap()
            .enqueue(&spec("a fox"))
            .unwrap();
        assert!(
            watcher.wait(Duration::from_secs(10)),
            "no wake from a commit after reconnecting"
        );
        server.restart();
        assert_eq!(
            connect(&url)
                .query("SELECT x FROM kept", &[])
                .unwrap()
                .len(),
            1
        );
    }

    /// Brings the database to `target` as `postgres_schema`'s doc says the store will:
    /// under the advisory lock, each migration committed with its version bump.
    fn migrate_to(client: &mut Client, target: usize) {
        loop {
            let mut transaction = client.transaction().unwrap();
            transaction
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .unwrap();
            transaction.batch_execute(VERSION_TABLE).unwrap();
            let version: i64 = transaction
                .query_one("SELECT version FROM wandash_schema", &[])
                .unwrap()
                .get(0);
            if version as usize >= target {
                return;
            }
            transaction
                .batch_execute(MIGRATIONS[version as usize])
                .unwrap();
            transaction
                .execute("UPDATE wandash_schema SET version = version + 1", &[])
                .unwrap();
            transaction.commit().unwrap();
        }
    }

    fn add_job(client: &mut Client, state: &str) -> i64 {
        client
            .query_one(
                "INSERT INTO jobs (created_at, model, prompt, spec, state, images_expected)
                 VALUES (0, 'wanx2.1-t2i-turbo', 'a fox', '{}', $1, 1) RETURNING id",
                &[&state],
            )
            .unwrap()
            .get(0)
    }

    /// The trigger-kept counts, without the states no job is in any more.
    fn kept_counts(client: &mut Client) -> BTreeMap<String, i64> {
        client
            .query("SELECT state, n FROM state_counts WHERE n <> 0", &[])
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    fn recounted(client: &mut Client) -> BTreeMap<String, i64> {
        client
            .query("SELECT state, COUNT(*) FROM jobs GROUP BY state", &[])
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect()
    }

    #[test]
    fn the_schema_migrates_with_its_data_and_its_triggers_keep_counts_and_queue_order() {
        let Some(server) = test_postgres::server() else {
            return;
        };
        let mut client = connect(&server.fresh_database());
        // Jobs an older wandash wrote at version 1 are counted and queued by the rest.
        migrate_to(&mut client, 1);
        let old = [
            add_job(&mut client, "queued"),
            add_job(&mut client, "queued"),
            add_job(&mut client, "running"),
        ];
        migrate_to(&mut client, MIGRATIONS.len());
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
        let expected = BTreeMap::from([("queued".to_owned(), 2), ("running".to_owned(), 1)]);
        assert_eq!(kept_counts(&mut client), expected);

        let new = add_job(&mut client, "queued");
        let placed: i64 = client
            .query_one(
                "INSERT INTO jobs (created_at, model, prompt, spec, state, images_expected, queue_pos)
                 VALUES (0, 'wanx2.1-t2i-turbo', 'first', '{}', 'queued', 1, -1) RETURNING id",
                &[],
            )
            .unwrap()
            .get(0);
        let positions: Vec<(i64, i64)> = client
            .query("SELECT id, queue_pos FROM jobs ORDER BY id", &[])
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1)))
            .collect();
        let expected_positions = [old[0], old[1], old[2], new]
            .map(|id| (id, id))
            .into_iter()
            .chain([(placed, -1)])
            .collect::<Vec<_>>();
        assert_eq!(positions, expected_positions);

        client
            .execute(
                "UPDATE jobs SET state = 'running' WHERE id = $1",
                &[&old[0]],
            )
            .unwrap();
        // A write that leaves the state alone leaves the counts alone.
        client
            .execute(
                "UPDATE jobs SET state = state, attempts = 2 WHERE id = $1",
                &[&old[1]],
            )
            .unwrap();
        client
            .execute(
                "INSERT INTO images (job_id, idx, url) VALUES ($1, 0, 'https://x')",
                &[&old[2]],
            )
            .unwrap();
        client
            .execute("DELETE FROM jobs WHERE id = $1", &[&old[2]])
            .unwrap();
        let expected = BTreeMap::from([("queued".to_owned(), 3), ("running".to_owned(), 1)]);
        assert_eq!(kept_counts(&mut client), expected);
        assert_eq!(recounted(&mut client), expected);
        let images: i64 = client
            .query_one("SELECT COUNT(*) FROM images", &[])
            .unwrap()
            .get(0);
        assert_eq!(images, 0, "a deleted job's images go with it");

        // Opening again migrates nothing.
        migrate_to(&mut client, MIGRATIONS.len());
        let versions: Vec<i64> = client
            .query("SELECT version FROM wandash_schema", &[])
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        assert_eq!(versions, [SCHEMA_VERSION]);
    }

    #[test]
    fn engines_changing_states_at_once_lose_no_count() {
        let Some(server) = test_postgres::server() else {
            return;
        };
        let url = server.fresh_database();
        migrate_to(&mut connect(&url), MIGRATIONS.len());
        // Two engines moving jobs in opposite directions, each change in a transaction of
        // its own with its event, as the engine's transitions are.
        let engine = |from: &'static str, to: &'static str| {
            let url = url.clone();
            std::thread::spawn(move || {
                let mut client = connect(&url);
                for _ in 0..100 {
                    let id = add_job(&mut client, from);
                    let mut transaction = client.transaction().unwrap();
                    transaction
                        .execute("UPDATE jobs SET state = $1 WHERE id = $2", &[&to, &id])
                        .unwrap();
                    transaction
                        .execute(
                            "INSERT INTO events (job_id, at, from_state, to_state) VALUES ($1, 0, $2, $3)",
                            &[&id, &from, &to],
                        )
                        .unwrap();
                    transaction.commit().unwrap();
                }
            })
        };
        let engines = [engine("queued", "running"), engine("running", "queued")];
        for engine in engines {
            engine.join().unwrap();
        }
        let mut client = connect(&url);
        let expected = BTreeMap::from([("queued".to_owned(), 100), ("running".to_owned(), 100)]);
        assert_eq!(kept_counts(&mut client), expected);
        assert_eq!(recounted(&mut client), expected);
    }

    /// Tables with their columns (name, type, NOT NULL), indexes with their columns and
    /// whether partial, and triggers: what "the same schema" means across the two.
    #[derive(Debug, PartialEq)]
    struct Shape {
        tables: BTreeMap<String, Vec<(String, String, bool)>>,
        indexes: BTreeMap<String, (Vec<String>, bool)>,
        triggers: BTreeSet<String>,
    }

    fn sqlite_shape(path: &std::path::Path) -> Shape {
        let conn = rusqlite::Connection::open(path).unwrap();
        let names = |kind: &str| -> Vec<String> {
            let mut statement = conn
                .prepare("SELECT name FROM sqlite_schema WHERE type = ?1 AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%'")
                .unwrap();
            statement
                .query_map([kind], |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let in_postgres = |declared: String| match declared.as_str() {
            "INTEGER" => "bigint".to_owned(),
            "REAL" => "double precision".to_owned(),
            "TEXT" => "text".to_owned(),
            "BLOB" => "bytea".to_owned(),
            other => panic!("a column type this test does not map: {other}"),
        };
        let tables = names("table")
            .into_iter()
            .map(|table| {
                let mut statement = conn
                    .prepare(&format!("SELECT name, type, \"notnull\", pk FROM pragma_table_info('{table}') ORDER BY name"))
                    .unwrap();
                let columns = statement
                    .query_map([], |row| {
                        let (not_null, key): (bool, i64) = (row.get(2)?, row.get(3)?);
                        Ok((row.get(0)?, in_postgres(row.get(1)?), not_null || key > 0))
                    })
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                (table, columns)
            })
            .collect();
        let indexes = names("index")
            .into_iter()
            .map(|index| {
                let mut statement = conn
                    .prepare(&format!(
                        "SELECT name FROM pragma_index_info('{index}') ORDER BY seqno"
                    ))
                    .unwrap();
                let columns = statement
                    .query_map([], |row| row.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let sql: String = conn
                    .query_row(
                        "SELECT sql FROM sqlite_schema WHERE name = ?1",
                        [&index],
                        |row| row.get(0),
                    )
                    .unwrap();
                (index, (columns, sql.contains(" WHERE ")))
            })
            .collect();
        Shape {
            tables,
            indexes,
            triggers: names("trigger").into_iter().collect(),
        }
    }

    fn postgres_shape(client: &mut Client) -> Shape {
        let mut tables: BTreeMap<String, Vec<(String, String, bool)>> = BTreeMap::new();
        for row in client
            .query(
                "SELECT table_name::text, column_name::text, data_type::text, is_nullable = 'NO'
                 FROM information_schema.columns
                 WHERE table_schema = current_schema() AND table_name <> 'wandash_schema'
                 ORDER BY table_name, column_name",
                &[],
            )
            .unwrap()
        {
            tables
                .entry(row.get(0))
                .or_default()
                .push((row.get(1), row.get(2), row.get(3)));
        }
        // Indexes made by hand, not those behind a primary key or UNIQUE constraint.
        let indexes = client
            .query(
                "SELECT i.relname::text,
                        array_agg(a.attname::text ORDER BY k.position),
                        x.indpred IS NOT NULL
                 FROM pg_index x
                 JOIN pg_class i ON i.oid = x.indexrelid
                 JOIN pg_class t ON t.oid = x.indrelid
                 CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, position)
                 JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum
                 WHERE t.relnamespace = current_schema()::regnamespace
                   AND t.relname <> 'wandash_schema'
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
                 GROUP BY i.relname, x.indpred IS NOT NULL",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect();
        let triggers = client
            .query(
                "SELECT tgname::text FROM pg_trigger
                 WHERE NOT tgisinternal
                   AND tgrelid::regclass::text IN (SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema())",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        Shape {
            tables,
            indexes,
            triggers,
        }
    }

    #[test]
    fn the_schema_has_sqlite_s_tables_columns_indexes_and_triggers() {
        let Some(server) = test_postgres::server() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("wandash.db");
        Store::open(&path).unwrap();
        let mut client = connect(&server.fresh_database());
        migrate_to(&mut client, MIGRATIONS.len());
        let mut shape = postgres_shape(&mut client);
        // PostgreSQL alone notifies commits to dashboards on other hosts; a dashboard on an
        // SQLite file polls its change marker instead.
        for notify in [
            "events_notify",
            "images_notify",
            "jobs_notify",
            "paused_notify",
        ] {
            assert!(shape.triggers.remove(notify), "{notify} in {shape:?}");
        }
        assert_eq!(shape, sqlite_shape(&path));
    }
}
