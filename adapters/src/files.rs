//! Files only their owner may read (mode 0600): generated keys and passwords that live on
//! disk, never in the database or a log.

use std::io::Write as _;
use std::path::Path;

/// Creates `path`, which must not exist, with `text`, readable and writable by its owner
/// only, and flushes it to disk.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// Creates `path` with `text` (as [`write_private`]) unless it exists; returns whether this
/// call created it. The file is written whole under a temporary name and linked into place:
/// a reader never sees it partial, and of processes racing to create it, the first wins and
/// the others find its content.
pub fn create_private_once(path: &Path, text: &str) -> std::io::Result<bool> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = path.with_file_name(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    write_private(&temporary, text)?;
    let linked = std::fs::hard_link(&temporary, path);
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}
