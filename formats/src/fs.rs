//! The file-system operations the checkpoint protocol needs, as a trait, so the same
//! protocol code runs against the real file system ([`StdFs`]) and against the simulated
//! one of the crash-image tests (`formats::simfs`, feature `sim`).
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub trait Fs {
    /// Creates one directory; its parent must exist.
    fn create_dir(&mut self, p: &Path) -> io::Result<()>;
    /// Creates or truncates `p` and writes `data` (not durable until [`Fs::sync_file`]).
    fn write(&mut self, p: &Path, data: &[u8]) -> io::Result<()>;
    /// Appends `data` to the existing file `p` (not durable until [`Fs::sync_file`]):
    /// how a large file is written in bounded pieces.
    fn append(&mut self, p: &Path, data: &[u8]) -> io::Result<()>;
    /// Reads `p` as a stream, for files too large to hold in memory.
    fn open_read(&self, p: &Path) -> io::Result<Box<dyn Read>>;
    /// Makes `to` (new) hold `from`'s content: a hard link where the file system allows
    /// one (checkpoint files are immutable), else a copy. Not durable: for scratch
    /// copies a process rebuilds when it needs them.
    fn link_or_copy(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    fn sync_file(&mut self, p: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&mut self, p: &Path) -> io::Result<()>;
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()>;
    fn remove_file(&mut self, p: &Path) -> io::Result<()>;
    fn remove_dir_all(&mut self, p: &Path) -> io::Result<()>;
    fn read(&self, p: &Path) -> io::Result<Vec<u8>>;
    fn size(&self, p: &Path) -> io::Result<u64>;
    /// Names in a directory, sorted.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    fn is_dir(&self, p: &Path) -> bool;
    fn exists(&self, p: &Path) -> bool;
    /// Whether paths name files of the real file system, which a reader may then map
    /// into memory instead of reading them through [`Fs::read`] (`reader` maps snapshot
    /// files). False unless a file system says so: a simulated one holds no real files.
    fn is_real(&self) -> bool {
        false
    }
}

/// Creates `dir` and every missing ancestor durably: one `create_dir` each, then an
/// fsync of its parent, so a power loss cannot take back a directory that later files
/// (a checkpoint root, and the checkpoints in it) rely on. Through `fs`, so the
/// simulated file system and fault seams see every step.
pub fn create_dir_all(fs: &mut dyn Fs, dir: &Path) -> io::Result<()> {
    if dir.as_os_str().is_empty() || fs.is_dir(dir) {
        return Ok(());
    }
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent {
        create_dir_all(fs, parent)?;
    }
    match fs.create_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && fs.is_dir(dir) => return Ok(()),
        r => r?,
    }
    fs.sync_dir(parent.unwrap_or(Path::new(".")))
}

/// One file system shared by several owners (a test and the writer it hands it to):
/// every call locks it.
#[derive(Debug, Default)]
pub struct SharedFs<F>(pub Arc<std::sync::Mutex<F>>);

impl<F> Clone for SharedFs<F> {
    fn clone(&self) -> Self {
        SharedFs(self.0.clone())
    }
}

impl<F: Fs> SharedFs<F> {
    fn with<R>(&self, f: impl FnOnce(&mut F) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

impl<F: Fs> Fs for SharedFs<F> {
    fn create_dir(&mut self, p: &Path) -> io::Result<()> {
        self.with(|f| f.create_dir(p))
    }
    fn write(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        self.with(|f| f.write(p, data))
    }
    fn append(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        self.with(|f| f.append(p, data))
    }
    fn open_read(&self, p: &Path) -> io::Result<Box<dyn Read>> {
        // Read whole under the lock, so the stream does not hold it.
        self.with(|f| f.read(p)).map(|b| Box::new(io::Cursor::new(b)) as Box<dyn Read>)
    }
    fn link_or_copy(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.with(|f| f.link_or_copy(from, to))
    }
    fn sync_file(&mut self, p: &Path) -> io::Result<()> {
        self.with(|f| f.sync_file(p))
    }
    fn sync_dir(&mut self, p: &Path) -> io::Result<()> {
        self.with(|f| f.sync_dir(p))
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.with(|f| f.rename(from, to))
    }
    fn remove_file(&mut self, p: &Path) -> io::Result<()> {
        self.with(|f| f.remove_file(p))
    }
    fn remove_dir_all(&mut self, p: &Path) -> io::Result<()> {
        self.with(|f| f.remove_dir_all(p))
    }
    fn read(&self, p: &Path) -> io::Result<Vec<u8>> {
        self.with(|f| f.read(p))
    }
    fn size(&self, p: &Path) -> io::Result<u64> {
        self.with(|f| f.size(p))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.with(|f| f.list(dir))
    }
    fn is_dir(&self, p: &Path) -> bool {
        self.with(|f| f.is_dir(p))
    }
    fn exists(&self, p: &Path) -> bool {
        self.with(|f| f.exists(p))
    }
    fn is_real(&self) -> bool {
        self.with(|f| f.is_real())
    }
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

impl Fs for StdFs {
    fn create_dir(&mut self, p: &Path) -> io::Result<()> {
        std::fs::create_dir(p)
    }
    fn write(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        std::fs::write(p, data)
    }
    fn append(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(p)?.write_all(data)
    }
    fn open_read(&self, p: &Path) -> io::Result<Box<dyn Read>> {
        Ok(Box::new(std::fs::File::open(p)?))
    }
    fn link_or_copy(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if std::fs::hard_link(from, to).is_ok() {
            return Ok(());
        }
        std::fs::copy(from, to).map(|_| ())
    }
    fn sync_file(&mut self, p: &Path) -> io::Result<()> {
        std::fs::File::open(p)?.sync_all()
    }
    fn sync_dir(&mut self, p: &Path) -> io::Result<()> {
        std::fs::File::open(p)?.sync_all()
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&mut self, p: &Path) -> io::Result<()> {
        std::fs::remove_file(p)
    }
    fn remove_dir_all(&mut self, p: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(p)
    }
    fn read(&self, p: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(p)
    }
    fn size(&self, p: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(p)?.len())
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(dir)? {
            v.push(e?.file_name().to_string_lossy().into_owned());
        }
        v.sort();
        Ok(v)
    }
    fn is_dir(&self, p: &Path) -> bool {
        p.is_dir()
    }
    fn exists(&self, p: &Path) -> bool {
        p.exists()
    }
    fn is_real(&self) -> bool {
        true
    }
}

/// The kinds of mutating operation a [`FaultFs`] can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultOp {
    /// `write` or `append`.
    Write,
    /// `sync_file` or `sync_dir`.
    Sync,
    Rename,
}

/// A fault seam over another file system: the n-th operation (0-based, counted across
/// every `FaultFs` sharing the counter) of one kind fails with an I/O error, as a full
/// disk or a dying device would; every other operation passes through. Engine tests
/// inject it into the checkpoint writer (`CheckpointConfig::fs`).
#[derive(Debug)]
pub struct FaultFs<F> {
    inner: F,
    op: FaultOp,
    fail_at: usize,
    seen: Arc<AtomicUsize>,
}

impl<F: Fs> FaultFs<F> {
    /// Fails the `fail_at`-th operation of kind `op`, counting in `seen` (share one
    /// counter between the file systems of successive writers to fail only once).
    pub fn new(inner: F, op: FaultOp, fail_at: usize, seen: Arc<AtomicUsize>) -> Self {
        FaultFs { inner, op, fail_at, seen }
    }

    fn check(&self, op: FaultOp, p: &Path) -> io::Result<()> {
        if op == self.op && self.seen.fetch_add(1, Ordering::SeqCst) == self.fail_at {
            return Err(io::Error::other(format!("injected {op:?} failure on {}", p.display())));
        }
        Ok(())
    }
}

impl<F: Fs> Fs for FaultFs<F> {
    fn create_dir(&mut self, p: &Path) -> io::Result<()> {
        self.inner.create_dir(p)
    }
    fn write(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        self.check(FaultOp::Write, p)?;
        self.inner.write(p, data)
    }
    fn append(&mut self, p: &Path, data: &[u8]) -> io::Result<()> {
        self.check(FaultOp::Write, p)?;
        self.inner.append(p, data)
    }
    fn open_read(&self, p: &Path) -> io::Result<Box<dyn Read>> {
        self.inner.open_read(p)
    }
    fn link_or_copy(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultOp::Write, to)?;
        self.inner.link_or_copy(from, to)
    }
    fn sync_file(&mut self, p: &Path) -> io::Result<()> {
        self.check(FaultOp::Sync, p)?;
        self.inner.sync_file(p)
    }
    fn sync_dir(&mut self, p: &Path) -> io::Result<()> {
        self.check(FaultOp::Sync, p)?;
        self.inner.sync_dir(p)
    }
    fn rename(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FaultOp::Rename, to)?;
        self.inner.rename(from, to)
    }
    fn remove_file(&mut self, p: &Path) -> io::Result<()> {
        self.inner.remove_file(p)
    }
    fn remove_dir_all(&mut self, p: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(p)
    }
    fn read(&self, p: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(p)
    }
    fn size(&self, p: &Path) -> io::Result<u64> {
        self.inner.size(p)
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }
    fn is_dir(&self, p: &Path) -> bool {
        self.inner.is_dir(p)
    }
    fn exists(&self, p: &Path) -> bool {
        self.inner.exists(p)
    }
    fn is_real(&self) -> bool {
        self.inner.is_real()
    }
}
