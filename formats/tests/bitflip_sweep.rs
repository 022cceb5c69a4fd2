//! Pins invariants 8.2, 8.3, 11.2, 13.1 over every metadata file kind of the committed
//! fixtures: each mutation of a file (every bit flipped, every byte set to 0x00 and to
//! 0xFF, every truncation, 1, 7 and 4096 garbage bytes appended, the same kind of file
//! from another fixture swapped in) is detected, as a typed `FormatError` naming the
//! file (`File` or `Io`, with the offset inside the file where the error has one); no
//! mutation panics, and no single allocation exceeds 16 MiB (a counting global
//! allocator). Prints the counts per file kind (`--nocapture`).
//!
//! File kinds: checkpoint manifests (v1, v2), savepoint metadata (v3 canonical, native),
//! snapshot files (v1, v3 shard 0 and 1: footer, index envelope, block headers and
//! payloads, read by the whole snapshot reader). Snapshot mutations other than swaps
//! must be caught by the snapshot reader alone; a swapped-in snapshot file is a valid
//! file, caught by its manifest entry (size, crc32).
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use formats::checkpoint::{self, Verify};
use formats::fs::Fs;
use formats::keygroup::KeyGroupRange;
use formats::manifest::CheckpointId;
use formats::savepoint;
use formats::snapshot::SnapshotReader;
use formats::FormatError;

/// The largest single allocation any decoder may make for these inputs.
const ALLOCATION_MAX_BYTES: usize = 16 << 20;

/// Tracks the largest single allocation request of this test binary.
struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

#[allow(unsafe_code)]
// SAFETY: every call is forwarded unchanged to the system allocator; the wrapper only
// records the requested size.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// An in-memory, read-only file system holding the fixtures under their real paths, so
/// a mutated file can be swapped in without touching the disk.
#[derive(Default, Clone)]
struct MemFs(BTreeMap<PathBuf, Vec<u8>>);

fn read_only<T>() -> io::Result<T> {
    Err(io::Error::new(io::ErrorKind::PermissionDenied, "read-only"))
}

fn not_found<T>(p: &Path) -> io::Result<T> {
    Err(io::Error::new(io::ErrorKind::NotFound, p.display().to_string()))
}

impl Fs for MemFs {
    fn create_dir(&mut self, _: &Path) -> io::Result<()> {
        read_only()
    }
    fn write(&mut self, _: &Path, _: &[u8]) -> io::Result<()> {
        read_only()
    }
    fn append(&mut self, _: &Path, _: &[u8]) -> io::Result<()> {
        read_only()
    }
    fn open_read(&self, p: &Path) -> io::Result<Box<dyn io::Read>> {
        Ok(Box::new(io::Cursor::new(self.read(p)?)))
    }
    fn link_or_copy(&mut self, _: &Path, _: &Path) -> io::Result<()> {
        read_only()
    }
    fn sync_file(&mut self, _: &Path) -> io::Result<()> {
        read_only()
    }
    fn sync_dir(&mut self, _: &Path) -> io::Result<()> {
        read_only()
    }
    fn rename(&mut self, _: &Path, _: &Path) -> io::Result<()> {
        read_only()
    }
    fn remove_file(&mut self, _: &Path) -> io::Result<()> {
        read_only()
    }
    fn remove_dir_all(&mut self, _: &Path) -> io::Result<()> {
        read_only()
    }
    fn read(&self, p: &Path) -> io::Result<Vec<u8>> {
        self.0.get(p).cloned().map_or_else(|| not_found(p), Ok)
    }
    fn size(&self, p: &Path) -> io::Result<u64> {
        self.0.get(p).map_or_else(|| not_found(p), |b| Ok(b.len() as u64))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let names: Vec<String> = self
            .0
            .keys()
            .filter_map(|p| p.strip_prefix(dir).ok()?.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        Ok(names)
    }
    fn is_dir(&self, p: &Path) -> bool {
        self.0.keys().any(|k| k.starts_with(p) && k != p)
    }
    fn exists(&self, p: &Path) -> bool {
        self.0.contains_key(p) || self.is_dir(p)
    }
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn load_tree(fs: &mut MemFs, dir: &Path) {
    for e in std::fs::read_dir(dir).expect("ls") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            load_tree(fs, &p);
        } else {
            fs.0.insert(p.clone(), std::fs::read(&p).expect("read"));
        }
    }
}

/// What contains a file, and so how it is read and checked.
#[derive(Clone)]
enum Container {
    /// A checkpoint root and id.
    Checkpoint(PathBuf, u64),
    /// A savepoint directory.
    Savepoint(PathBuf),
}

impl Container {
    /// Loads the manifest or metadata, verifying every file's size and crc32.
    fn load(&self, fs: &MemFs) -> Result<(), FormatError> {
        match self {
            Container::Checkpoint(root, id) => {
                checkpoint::load(fs, root, CheckpointId(*id), Verify::Checksums).map(|_| ())
            }
            Container::Savepoint(sp) => savepoint::load(fs, sp, Verify::Checksums).map(|_| ()),
        }
    }
}

/// One file swept: its kind, path, container, and the file swapped in for it.
struct Target {
    kind: &'static str,
    path: PathBuf,
    container: Container,
    swap: PathBuf,
    /// Snapshot files are also read whole by the snapshot reader.
    snapshot: bool,
}

fn targets() -> Vec<Target> {
    let f = fixtures();
    let v1 = f.join("v1/checkpoint/fixture");
    let v2 = f.join("v2/checkpoint/fixture");
    let can = f.join("v3/savepoint/canonical");
    let nat = f.join("v3/savepoint/native");
    let c1 = Container::Checkpoint(v1.clone(), 3);
    let c2 = Container::Checkpoint(v2.clone(), 5);
    let t = |kind, path: PathBuf, container: &Container, swap: PathBuf, snapshot| Target {
        kind,
        path,
        container: container.clone(),
        swap,
        snapshot,
    };
    let (sc, sn) = (Container::Savepoint(can.clone()), Container::Savepoint(nat.clone()));
    vec![
        t("checkpoint manifest v1", v1.join("chk-3/_manifest"), &c1, v2.join("chk-5/_manifest"), false),
        t("checkpoint manifest v2", v2.join("chk-5/_manifest"), &c2, v1.join("chk-3/_manifest"), false),
        t("savepoint metadata (canonical)", can.join("_savepoint"), &sc, nat.join("_savepoint"), false),
        t("savepoint metadata (native)", nat.join("_savepoint"), &sn, can.join("_savepoint"), false),
        t("snapshot file v1", v1.join("chk-3/shard-0.snapshot"), &c1, can.join("shard-0.snapshot"), true),
        t("snapshot file v3 shard 0", can.join("shard-0.snapshot"), &sc, can.join("shard-1.snapshot"), true),
        t("snapshot file v3 shard 1", can.join("shard-1.snapshot"), &sc, can.join("shard-0.snapshot"), true),
    ]
}

/// Every mutation of `good`: (name, bytes). Swaps are added by the caller.
fn mutations(good: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for bit in 0..good.len() * 8 {
        let mut b = good.to_vec();
        if let Some(x) = b.get_mut(bit / 8) {
            *x ^= 1 << (bit % 8);
        }
        out.push((format!("flip bit {bit}"), b));
    }
    for at in 0..good.len() {
        for v in [0x00u8, 0xff] {
            if good.get(at) != Some(&v) {
                let mut b = good.to_vec();
                if let Some(x) = b.get_mut(at) {
                    *x = v;
                }
                out.push((format!("byte {at} = {v:#04x}"), b));
            }
        }
    }
    for len in 0..good.len() {
        out.push((format!("truncate to {len}"), good.get(..len).unwrap_or_default().to_vec()));
    }
    for extra in [1usize, 7, 4096] {
        let mut b = good.to_vec();
        b.extend((0..extra).map(|i| (i * 37 + 11) as u8));
        out.push((format!("append {extra} bytes"), b));
    }
    out
}

/// The snapshot reader over `bytes` alone: footer, index, every block.
fn read_snapshot(bytes: &[u8], path: &Path) -> Result<(), FormatError> {
    let all = KeyGroupRange { start: 0, end: u16::MAX };
    SnapshotReader::open(bytes).and_then(|rd| rd.for_each_in(all, &mut |_, _, _| {})).map_err(|e| e.in_file(path))
}

/// Whether `e` is a typed error naming a file of `dir`'s tree, and, when it carries an
/// offset into the file, that offset lies inside `len` bytes.
fn names_a_file(e: &FormatError, dir: &Path, len: usize) -> Result<(), String> {
    match e {
        FormatError::Io { path, .. } if path.starts_with(dir) => Ok(()),
        FormatError::File { path, source } if path.starts_with(dir) => match &**source {
            FormatError::Truncated { offset, .. } | FormatError::Checksum { offset, .. } if *offset > len => {
                Err(format!("offset {offset} past the file's {len} bytes: {e}"))
            }
            FormatError::File { .. } | FormatError::Io { .. } | FormatError::Savepoint { .. } => {
                Err(format!("nested file error: {e}"))
            }
            _ => Ok(()),
        },
        _ => Err(format!("not an error naming a file under {}: {e:?}", dir.display())),
    }
}

#[derive(Default)]
struct Counts {
    tried: usize,
    detected: usize,
    by_reader: usize,
}

#[test]
fn every_mutation_of_every_metadata_file_is_detected_and_named() {
    let mut base = MemFs::default();
    load_tree(&mut base, &fixtures());
    let mut report = BTreeMap::new();
    let mut failures = Vec::new();
    for t in targets() {
        let good = base.read(&t.path).expect("fixture");
        let dir = t.path.parent().and_then(Path::parent).unwrap_or(Path::new("/")).to_path_buf();
        let mut all = mutations(&good);
        all.push(("swap".into(), base.read(&t.swap).expect("swap fixture")));
        let counts: &mut Counts = report.entry(t.kind).or_default();
        let mut fs = base.clone();
        for (name, bytes) in all {
            counts.tried += 1;
            let len = bytes.len();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let reader = if t.snapshot { read_snapshot(&bytes, &t.path).err() } else { None };
                fs.0.insert(t.path.clone(), bytes.clone());
                let loaded = t.container.load(&fs).err();
                (reader, loaded)
            }));
            let what = format!("{} {}: {name}", t.kind, t.path.display());
            match outcome {
                Err(_) => failures.push(format!("{what}: panicked")),
                Ok((Some(e), _)) => match names_a_file(&e, &t.path, len) {
                    Ok(()) => {
                        counts.detected += 1;
                        counts.by_reader += 1;
                    }
                    Err(why) => failures.push(format!("{what}: {why}")),
                },
                Ok((None, _)) if t.snapshot && name != "swap" => {
                    failures.push(format!("{what}: the snapshot reader accepted it"))
                }
                Ok((None, Some(e))) => match names_a_file(&e, &dir, len) {
                    Ok(()) => counts.detected += 1,
                    Err(why) => failures.push(format!("{what}: {why}")),
                },
                Ok((None, None)) => failures.push(format!("{what}: undetected")),
            }
        }
        fs.0.insert(t.path.clone(), good);
        assert!(t.container.load(&fs).is_ok(), "{}: the unmutated fixture loads", t.kind);
    }
    println!("{:<32} {:>8} {:>8} {:>16}", "file kind", "tried", "detected", "by snapshot reader");
    for (kind, c) in &report {
        println!("{kind:<32} {:>8} {:>8} {:>16}", c.tried, c.detected, c.by_reader);
    }
    let largest = LARGEST.load(Ordering::Relaxed);
    println!("largest single allocation: {largest} bytes");
    assert!(failures.is_empty(), "{} failures, first: {:#?}", failures.len(), failures.get(..10));
    assert!(report.values().all(|c| c.tried == c.detected && c.tried > 0));
    assert!(largest <= ALLOCATION_MAX_BYTES, "an allocation of {largest} bytes");
    // Not vacuous: the counter sees the 256 KiB blocks the snapshot reader decompresses.
    assert!(largest >= formats::snapshot::BLOCK_RAW_TARGET, "the counting allocator is installed: {largest}");
}
