//! Reads of a local directory that skip the blocking pool: bytes the OS
//! page cache already holds are read on the caller's thread (Linux
//! `preadv2` with `RWF_NOWAIT`, which fails rather than wait for the
//! disk), through file handles kept open for the objects that never
//! change.
//!
//! Which objects never change is the table store's naming: a sorted table
//! (`<root>/compacted/<ulid>.sst`) is created once under a fresh name and
//! only ever deleted, so a handle opened on it reads what any later open
//! would. Every other object (WAL tables, which a new writer may replace;
//! manifests; files the protocol overwrites) is opened for each read. A
//! handle is dropped when the adapter deletes its object, when the cache
//! of handles is full, and after [`HANDLE_IDLE`] without a read, so a
//! table deleted by another process stops holding disk space soon after
//! its last reader moves on.

use std::fs::File;
use std::sync::Arc;
use std::time::Duration;

use moka::sync::Cache;
use object_store::local::LocalFileSystem;
use object_store::path::Path;

use super::cache::KeyHash;
use super::object::{ByteRange, Fetched};

/// Open handles kept at most.
pub const MAX_HANDLES: u64 = 1024;

/// A handle unused this long is closed.
pub const HANDLE_IDLE: Duration = Duration::from_secs(10);

/// Reads done without waiting on one thread between two yields.
pub const READS_PER_YIELD: u32 = 8;

/// An open object and its size, which cannot change.
#[derive(Debug)]
struct OpenFile {
    file: File,
    size: u64,
}

/// A local directory store, with the handles of its unchanging objects.
#[derive(Debug)]
pub struct LocalFiles {
    fs: Arc<LocalFileSystem>,
    handles: Cache<Path, Arc<OpenFile>, KeyHash>,
}

impl LocalFiles {
    pub fn new(fs: Arc<LocalFileSystem>) -> Self {
        LocalFiles {
            fs,
            handles: Cache::builder()
                .max_capacity(MAX_HANDLES)
                .time_to_idle(HANDLE_IDLE)
                .build_with_hasher(KeyHash),
        }
    }

    /// `range` of the object at `path`, if every byte of it is in the page
    /// cache. `None` when it cannot tell (not cached, a short read, a
    /// missing file, any error, another OS): the caller then reads through
    /// the blocking pool, which also reports the errors.
    pub fn read_cached(&self, path: &Path, range: &ByteRange) -> Option<Fetched> {
        if !never_changes(path) {
            let handle = self.open(path)?;
            return read(&handle.file, handle.size, range);
        }
        let handle = match self.handles.get(path) {
            Some(handle) => handle,
            None => {
                let handle = Arc::new(self.open(path)?);
                self.handles.insert(path.clone(), handle.clone());
                handle
            }
        };
        read(&handle.file, handle.size, range)
    }

    fn open(&self, path: &Path) -> Option<OpenFile> {
        let file = File::open(self.fs.path_to_filesystem(path).ok()?).ok()?;
        let size = file.metadata().ok()?.len();
        Some(OpenFile { file, size })
    }

    /// Closes the handle of `path` (its object is being deleted).
    pub fn forget(&self, path: &Path) {
        self.handles.invalidate(path);
    }

    /// Handles open now (after pending evictions).
    #[cfg(test)]
    pub fn open_handles(&self) -> u64 {
        self.handles.run_pending_tasks();
        self.handles.entry_count()
    }
}

/// Whether the object at `path` is one the engine creates once and never
/// replaces: a sorted table.
fn never_changes(path: &Path) -> bool {
    let name = path.as_ref();
    let mut segments = name.rsplit('/');
    let file = segments.next().unwrap_or_default();
    file.ends_with(super::paths::TABLE_SUFFIX) && segments.next() == Some(super::paths::COMPACTED_DIR)
}

/// `range` of `file` (of `size` bytes), read only if every byte is in the
/// page cache.
#[cfg(target_os = "linux")]
fn read(file: &File, size: u64, range: &ByteRange) -> Option<Fetched> {
    use rustix::io::{ReadWriteFlags, preadv2};
    let wanted = match range {
        ByteRange::All => 0..size,
        ByteRange::Range(range) if range.end <= size => range.clone(),
        ByteRange::Range(_) => return None,
        ByteRange::Suffix(len) => size.saturating_sub(*len)..size,
    };
    let mut bytes = vec![0; usize::try_from(wanted.end - wanted.start).ok()?];
    let mut done = 0;
    while done < bytes.len() {
        let at = wanted.start + done as u64;
        let read = preadv2(
            file,
            &mut [std::io::IoSliceMut::new(&mut bytes[done..])],
            at,
            ReadWriteFlags::NOWAIT,
        )
        .ok()?;
        if read == 0 {
            return None;
        }
        done += read;
    }
    Some(Fetched {
        bytes: bytes.into(),
        offset: wanted.start,
        object_size: size,
    })
}

#[cfg(not(target_os = "linux"))]
fn read(_file: &File, _size: u64, _range: &ByteRange) -> Option<Fetched> {
    None
}

std::thread_local! {
    static SINCE_YIELD: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// Counts a read done without waiting; true every `READS_PER_YIELD`th.
pub fn due_to_yield() -> bool {
    SINCE_YIELD.with(|count| {
        let next = count.get() + 1;
        count.set(next % READS_PER_YIELD);
        next == READS_PER_YIELD
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sorted_tables_count_as_unchanging() {
        assert!(never_changes(&Path::from(
            "db/compacted/01JABCDEFGHJKMNPQRSTVWXYZ0.sst"
        )));
        assert!(never_changes(&Path::from("compacted/x.sst")));
        assert!(!never_changes(&Path::from("db/wal/00000000000000000001.sst")));
        assert!(!never_changes(&Path::from("db/manifest/00000000000000000001.manifest")));
        assert!(!never_changes(&Path::from("db/compacted/notes.txt")));
        assert!(!never_changes(&Path::from("db/compacted")));
    }
}
