//! The log file, one a day: `wandash.log` is today's (what `tail -f` follows), earlier
//! days are `wandash.log.YYYY-MM-DD` (UTC, like the log's timestamps), and only the
//! newest few of those are kept. Files are created 0600 in a 0700 directory.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use time::{Date, OffsetDateTime};

/// Today's log file's name; earlier days add `.YYYY-MM-DD`.
pub const LOG_FILE: &str = "wandash.log";
/// Days of logs kept besides today's.
const KEPT_DAYS: usize = 7;

pub struct DailyLog {
    dir: PathBuf,
    file: File,
    day: Date,
}

impl DailyLog {
    /// Opens today's log in `dir` (made private if missing), first moving aside a log of
    /// an earlier day and deleting days beyond the kept ones.
    pub fn open(dir: &Path) -> io::Result<DailyLog> {
        crate::files::create_private_dir(dir)?;
        let day = today();
        set_aside_earlier_day(dir, day);
        delete_old_days(dir);
        Ok(DailyLog {
            dir: dir.to_path_buf(),
            file: crate::files::open_private_append(&dir.join(LOG_FILE))?,
            day,
        })
    }

    /// A worker runs for days: the first line after midnight starts the new day's file.
    fn follow_the_day(&mut self) -> io::Result<()> {
        let day = today();
        if day == self.day {
            return Ok(());
        }
        self.file.flush()?;
        set_aside_earlier_day(&self.dir, day);
        delete_old_days(&self.dir);
        self.file = crate::files::open_private_append(&self.dir.join(LOG_FILE))?;
        self.day = day;
        Ok(())
    }
}

impl Write for DailyLog {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.follow_the_day()?;
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// Renames `wandash.log` to `wandash.log.<its day>` when it was last written before
/// `today`. Several wandash processes may share the directory: a hard link and a removal
/// stand for a rename because the link never replaces a day's file that another process
/// set aside first, and a process that finds the file already fresh leaves it be.
fn set_aside_earlier_day(dir: &Path, today: Date) {
    let live = dir.join(LOG_FILE);
    let Some(written) = fs::metadata(&live).and_then(|m| m.modified()).ok() else {
        return;
    };
    let day = OffsetDateTime::from(written).date();
    if day >= today {
        return;
    }
    if fs::hard_link(&live, dir.join(format!("{LOG_FILE}.{day}"))).is_ok() {
        fs::remove_file(&live).ok();
    }
}

/// Deletes the `wandash.log.YYYY-MM-DD` files beyond the newest `KEPT_DAYS`.
fn delete_old_days(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let mut days: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| dated_day(name).is_some())
        .collect();
    // ISO dates sort by name.
    days.sort_unstable_by(|a, b| b.cmp(a));
    for name in days.iter().skip(KEPT_DAYS) {
        fs::remove_file(dir.join(name)).ok();
    }
}

/// The day of a set-aside log's name, `None` for any other file.
fn dated_day(name: &str) -> Option<Date> {
    let suffix = name.strip_prefix(LOG_FILE)?.strip_prefix('.')?;
    Date::parse(
        suffix,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_day_is_set_aside_and_only_the_newest_days_kept() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        for day in 1..=9 {
            std::fs::write(logs.join(format!("wandash.log.2020-01-0{day}")), "old").unwrap();
        }
        std::fs::write(logs.join("notes.txt"), "mine").unwrap();
        let yesterday = today().previous_day().unwrap();
        let live = File::create(logs.join(LOG_FILE)).unwrap();
        live.set_modified(std::time::SystemTime::from(
            yesterday.midnight().assume_utc(),
        ))
        .unwrap();
        drop(live);

        let mut log = DailyLog::open(&logs).unwrap();
        log.write_all(b"today\n").unwrap();

        let mut names: Vec<String> = std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut expected = vec![
            "notes.txt".to_string(),
            LOG_FILE.to_string(),
            format!("{LOG_FILE}.{yesterday}"),
        ];
        expected.extend((4..=9).map(|day| format!("wandash.log.2020-01-0{day}")));
        expected.sort();
        assert_eq!(names, expected);
        assert_eq!(
            std::fs::read_to_string(logs.join(LOG_FILE)).unwrap(),
            "today\n"
        );
    }
}
