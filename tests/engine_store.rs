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
        "ALTER TABLE jobs DROP COLUMN sync_answer;
         DROP INDEX jobs_queue_order; DROP INDEX jobs_by_state_queue; DROP TRIGGER jobs_queue_pos;
         ALTER TABLE jobs DROP COLUMN queue_pos; DROP TABLE paused; DROP INDEX jobs_money;
         DROP INDEX images_starred; ALTER TABLE images DROP COLUMN starred; ALTER TABLE jobs DROP COLUMN parent_job_id;
         DROP TRIGGER state_counts_insert; DROP TRIGGER state_counts_delete; DROP TRIGGER state_counts_update;
         DROP TABLE state_counts; DROP TABLE task_durations; PRAGMA user_version = 1;",
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
    };
    assert_eq!(store.count(&active).unwrap(), 4);
    assert_eq!(store.count(&JobFilter::default()).unwrap(), 4);
}

#[path = "support/postgres.rs"]
mod test_postgres;

/// The PostgreSQL side: the throwaway server the store's PostgreSQL tests run on.
mod pg {
    use postgres::{Client, NoTls};

    use super::test_postgres;

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

    #[test]
    fn a_restarted_server_keeps_its_data_and_ends_old_connections() {
        let Some(mut server) = test_postgres::own_server() else {
            return;
        };
        let url = server.fresh_database();
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
        server.restart();
        assert_eq!(
            connect(&url)
                .query("SELECT x FROM kept", &[])
                .unwrap()
                .len(),
            1
        );
    }
}
