//! List-page query time at 100 and at 100 000 jobs: a window costs the same either way;
//! the money figures (`stats`, a budget check) are timed beside them. The same queries run
//! on an SQLite file and on a PostgreSQL database (a throwaway server, as the tests start,
//! or the one at `WANDASH_TEST_POSTGRES`; skipped, said, without PostgreSQL): what a
//! dashboard's reload costs on either store.
//! `cargo bench --bench store` prints medians; nothing here fails on time.

mod measure;
#[path = "../tests/support/postgres.rs"]
mod test_postgres;

use measure::median;

use std::time::{Duration, Instant};

use wandash::dashscope::{JobSpec, Model, Region, Timestamp};
use wandash::store::{JobFilter, JobState, Periods, StateFilter, Store};

const PAGE: u64 = 50;
const RUNS: usize = 41;

/// Where the bench's stores live.
#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres(&'static test_postgres::TestServer),
}

const SPREAD_STATES: &str = "UPDATE jobs SET
         state = CASE
             WHEN id % 10 < 7 THEN 'succeeded'
             WHEN id % 10 = 7 THEN 'failed'
             WHEN id % 10 = 8 THEN 'cancelled'
             ELSE state END,
         task_id = CASE WHEN id % 10 < 7 THEN 'task-' || id END,
         task_status = CASE WHEN id % 10 < 7 THEN 'SUCCEEDED' END,
         ended_at = CASE WHEN id % 10 < 9 THEN created_at END,
         error_code = CASE WHEN id % 10 = 7 THEN 'InvalidParameter' END,
         error_message = CASE WHEN id % 10 = 7 THEN 'refused by the bench' END;
     ANALYZE;";

fn fill(store: &Store, db: &str, backend: Backend, jobs: usize) {
    let models = [
        Model::Wanx21T2iTurbo,
        Model::Wanx21T2iPlus,
        Model::Wanx20T2iTurbo,
    ];
    let specs: Vec<JobSpec> = (0..jobs)
        .map(|i| {
            JobSpec::new(
                models[i % 3],
                format!(
                    "a {} lighthouse at dusk, study {i}",
                    ["red", "blue", "green", "amber"][i % 4]
                ),
            )
        })
        .collect();
    for chunk in specs.chunks(10_000) {
        store.enqueue_batch(chunk, Some("bench")).unwrap();
    }
    // Spread the states the way a long-running store looks: mostly finished, each
    // finished job with what its state carries (a task, an end time, an error).
    match backend {
        Backend::Sqlite => rusqlite::Connection::open(db)
            .unwrap()
            .execute_batch(SPREAD_STATES)
            .unwrap(),
        // The `postgres` client blocks on a runtime of its own: fine here, no runtime runs.
        Backend::Postgres(_) => postgres::Client::connect(db, postgres::NoTls)
            .unwrap()
            .batch_execute(SPREAD_STATES)
            .unwrap(),
    }
}

fn time<T>(mut call: impl FnMut() -> T) -> Duration {
    call(); // warm the page cache and the statement cache
    median(
        &mut (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                std::hint::black_box(call());
                start.elapsed()
            })
            .collect::<Vec<_>>(),
    )
}

fn main() {
    let cases: Vec<(&str, JobFilter, u64)> = vec![
        ("all, first page", JobFilter::default(), 0),
        ("all, page at offset 1000", JobFilter::default(), 1000),
        (
            "succeeded",
            JobFilter {
                state: Some(StateFilter::Only(JobState::Succeeded)),
                search: None,
                submitted_by: None,
            },
            0,
        ),
        (
            "queued",
            JobFilter {
                state: Some(StateFilter::Only(JobState::Queued)),
                search: None,
                submitted_by: None,
            },
            0,
        ),
        (
            "problems (failed/expired/needs_attention)",
            JobFilter {
                state: Some(StateFilter::Problems),
                search: None,
                submitted_by: None,
            },
            0,
        ),
        (
            "search \"amber\"",
            JobFilter {
                state: None,
                search: Some("amber".into()),
                submitted_by: None,
            },
            0,
        ),
    ];
    let mut backends = vec![("SQLite", Backend::Sqlite)];
    if let Some(server) = test_postgres::server() {
        backends.push(("PostgreSQL", Backend::Postgres(server)));
    }
    for (name, backend) in backends {
        measure(name, backend, &cases);
    }
}

fn measure(name: &str, backend: Backend, cases: &[(&str, JobFilter, u64)]) {
    let mut results: Vec<Vec<Duration>> = Vec::new();
    for jobs in [100usize, 100_000] {
        let dir = tempfile::tempdir().unwrap();
        let db = match backend {
            Backend::Sqlite => dir.path().join("bench.db").display().to_string(),
            Backend::Postgres(server) => server.fresh_database(),
        };
        let store = Store::open(std::path::Path::new(&db)).unwrap();
        let filled = Instant::now();
        fill(&store, &db, backend, jobs);
        println!(
            "{name}: {jobs} jobs stored in {:.2} s",
            filled.elapsed().as_secs_f64()
        );
        let mut row = Vec::new();
        for (_, filter, offset) in cases {
            // At 100 jobs an offset of 1000 is past the end; keep the same shape of query.
            let offset = (*offset).min(jobs as u64 / 2);
            row.push(time(|| store.list(filter, offset, PAGE).unwrap()));
        }
        row.push(time(|| store.counts_by_state().unwrap()));
        row.push(time(|| store.change_marker().unwrap()));
        row.push(time(|| {
            store
                .money_stats_now(Region::Beijing, None, Model::default_price_cny)
                .unwrap()
        }));
        let periods = Periods::now_local(Timestamp::from_millis(0));
        row.push(time(|| store.money_rows(&periods, periods.month).unwrap()));
        results.push(row);
    }
    println!("\n{name}: median of {RUNS} runs, {PAGE}-row pages (list-page query time):");
    println!(
        "{:<44} {:>12} {:>12} {:>8}",
        "query", "100 jobs", "100000 jobs", "ratio"
    );
    let names = cases.iter().map(|c| c.0).chain([
        "counts_by_state (header)",
        "change_marker",
        "money_stats_now (stats, all time)",
        "money_rows since the month (budget check)",
    ]);
    for (i, query) in names.enumerate() {
        let (small, large) = (results[0][i], results[1][i]);
        println!(
            "{query:<44} {:>9.1} µs {:>9.1} µs {:>8.2}",
            small.as_secs_f64() * 1e6,
            large.as_secs_f64() * 1e6,
            large.as_secs_f64() / small.as_secs_f64()
        );
    }
}
