//! The two ends of wandash's file I/O that outside input can abuse.
//!
//! Reading: a path the user (or an assistant, or a batch file) names may be a device, a
//! FIFO or a huge file. `read_regular_file` opens it without blocking, accepts only a
//! regular file and reads at most a bound, so `/dev/zero` costs nothing.
//!
//! Writing: prompts and images are private. `create_private_dir` and `create_private_file`
//! make directories 0700 and files 0600 whatever the umask, and a file is only ever
//! created new (`O_EXCL`), so a symlink planted where it goes is never followed.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Directories wandash creates for its data: the owner only.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Files wandash writes (store, logs, images, exports): the owner only.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// `O_NONBLOCK`, which std does not name: opening a FIFO for reading otherwise waits for a
/// writer, forever. Regular files ignore it.
#[cfg(any(target_os = "linux", target_os = "android"))]
const O_NONBLOCK: i32 = 0o4000;
#[cfg(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd"
))]
const O_NONBLOCK: i32 = 0x0004;

/// Why an input file was refused; `Display` names the rule, the caller adds the field.
#[derive(Debug)]
pub enum ReadRefused {
    /// It could not be opened or read (missing, no permission...).
    Io(io::Error),
    /// A directory, FIFO, socket or device: never an input.
    NotRegular { kind: &'static str },
    /// Larger than the limit: `length` is the file's stated length, `None` when it stated
    /// one within the limit but more than `limit` bytes came out of it.
    TooLarge { length: Option<u64>, limit: u64 },
}

impl std::fmt::Display for ReadRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadRefused::Io(e) => write!(f, "cannot be read: {e}"),
            ReadRefused::NotRegular { kind } => write!(f, "is {kind}, not a regular file"),
            ReadRefused::TooLarge {
                length: Some(length),
                limit,
            } => write!(f, "is {length} bytes, over the limit of {limit} bytes"),
            ReadRefused::TooLarge {
                length: None,
                limit,
            } => write!(f, "holds more than the limit of {limit} bytes"),
        }
    }
}

/// Reads a regular file of at most `limit` bytes. A FIFO, device, socket or directory is
/// refused without blocking and without reading; a file that grows while read is cut at
/// `limit + 1` bytes and refused.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadRefused> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(O_NONBLOCK)
        .open(path)
        .map_err(ReadRefused::Io)?;
    // The opened handle's type, not the path's: the path may be swapped after a check.
    let meta = file.metadata().map_err(ReadRefused::Io)?;
    let file_type = meta.file_type();
    if !file_type.is_file() {
        return Err(ReadRefused::NotRegular {
            kind: describe_file_type(&file_type),
        });
    }
    if meta.len() > limit {
        return Err(ReadRefused::TooLarge {
            length: Some(meta.len()),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadRefused::Io)?;
    if bytes.len() as u64 > limit {
        return Err(ReadRefused::TooLarge {
            length: None,
            limit,
        });
    }
    Ok(bytes)
}

fn describe_file_type(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

/// Creates `dir` and any missing parents, each 0700 whatever the umask. Directories that
/// already exist are left as they are: they may be the user's own (`--to ~/Pictures`).
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    // Only a missing parent is made: one that is there but not a directory makes the
    // create below fail with the OS's own reason ("Not a directory").
    if let Some(parent) = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty() && !p.exists())
    {
        create_private_dir(parent)?;
    }
    match DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => std::fs::set_permissions(dir, Permissions::from_mode(PRIVATE_DIR_MODE)),
        // Another process made it between the check and here.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates a new file 0600 for writing. Fails if anything is at `path`, a symlink
/// included (`O_EXCL` does not follow links), so nothing outside is written through it.
pub fn create_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?;
    // The mode above is cut by the umask; this is not.
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE_MODE))?;
    Ok(file)
}

/// Opens a file for appending (a log), creating it 0600; an existing file is made 0600 too.
pub fn open_private_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)?;
    file.set_permissions(Permissions::from_mode(PRIVATE_FILE_MODE))?;
    Ok(file)
}

/// Takes group and other access away from an existing file of ours (the store and its
/// `-wal` / `-shm`, which SQLite creates with the umask's mode).
pub fn restrict_to_owner(path: &Path) -> io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode();
    if mode & 0o077 == 0 {
        return Ok(());
    }
    std::fs::set_permissions(path, Permissions::from_mode(mode & 0o700))
}
