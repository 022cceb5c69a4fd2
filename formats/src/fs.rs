//! The file-system operations the checkpoint protocol needs, as a trait, so the same
//! protocol code runs against the real file system ([`StdFs`]) and against the simulated
//! one of the crash-image tests (`formats::simfs`, feature `sim`).
use std::io;
use std::path::Path;

pub trait Fs {
    /// Creates one directory; its parent must exist.
    fn create_dir(&mut self, p: &Path) -> io::Result<()>;
    /// Creates or truncates `p` and writes `data` (not durable until [`Fs::sync_file`]).
    fn write(&mut self, p: &Path, data: &[u8]) -> io::Result<()>;
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
}
