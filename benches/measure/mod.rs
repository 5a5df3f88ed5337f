//! What every benchmark measures with: medians, milliseconds, sizes from the environment.
//! Each bench uses part of it.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// The median of `runs` timed calls, after one untimed call that warms caches.
pub fn median_of(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    median(&mut times)
}

pub fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

/// A comma-separated list of counts from an environment variable, e.g. `50,500`; an
/// empty value is an empty list.
pub fn env_list(name: &str, default: &str) -> Vec<usize> {
    let text = std::env::var(name).unwrap_or_else(|_| default.to_string());
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            part.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{name}: {part:?} is not a count"))
        })
        .collect()
}
