//! The one way a file that must survive a crash is written (docs/FORMAT.md §6): a
//! temporary sibling `.<name>.tmp` in the same directory, write, fsync, rename over the
//! final name, fsync the directory. After a crash a reader sees either the old file or
//! the complete new one, never a torn one. Everything goes through [`Fs`], so the crash
//! images and fault seams cover every caller.
//!
//! The directory fsync is the caller's when it publishes many files into one directory
//! ([`write_durable`], then one `sync_dir`, as the checkpoint protocol does);
//! [`publish_file`] does all of it for one file.
use std::io::Read;
use std::path::Path;

use crate::canary::{planted, Canary};
use crate::error::FormatError;
use crate::fs::Fs;
use crate::layout;

/// Largest piece a streamed file is written in (bounds the memory of a copy).
pub const STREAM_CHUNK_BYTES: usize = 1 << 20;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FormatError + '_ {
    move |e| FormatError::io(path, e)
}

fn parent(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Writes `bytes` at `path` so that the final name only ever holds complete, durable
/// data: temporary sibling, write, fsync, rename. The directory is not fsynced.
pub fn write_durable(fs: &mut dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    let tmp = layout::temp_sibling(path);
    let result = fs
        .write(&tmp, bytes)
        .map_err(io(&tmp))
        .and_then(|()| if planted(Canary::SkipFileFsync) { Ok(()) } else { fs.sync_file(&tmp).map_err(io(&tmp)) })
        .and_then(|()| fs.rename(&tmp, path).map_err(io(path)));
    if result.is_err() && fs.exists(&tmp) {
        // The temporary name is invisible to readers; removing it is tidiness only.
        let _ = fs.remove_file(&tmp);
    }
    result
}

/// Atomically publishes `bytes` at `path`: [`write_durable`], then fsync the directory.
pub fn publish_file(fs: &mut dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), FormatError> {
    write_durable(fs, path, bytes)?;
    let dir = parent(path);
    fs.sync_dir(dir).map_err(io(dir))
}

/// Copies everything `from` yields into the new file `tmp` in pieces of at most
/// [`STREAM_CHUNK_BYTES`], calling `seen` with each piece (to hash while copying), and
/// fsyncs it. Returns the bytes written. The caller renames `tmp` into place (or
/// removes it) once it knows the final name, then fsyncs the directory.
pub fn stream_durable(
    fs: &mut dyn Fs,
    tmp: &Path,
    from: &mut dyn Read,
    from_path: &Path,
    seen: &mut dyn FnMut(&[u8]),
) -> Result<u64, FormatError> {
    fs.write(tmp, &[]).map_err(io(tmp))?;
    let mut buf = vec![0u8; STREAM_CHUNK_BYTES];
    let mut size = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(FormatError::io(from_path, e)),
        };
        let piece = buf.get(..n).unwrap_or_default();
        seen(piece);
        fs.append(tmp, piece).map_err(io(tmp))?;
        size += n as u64;
    }
    if !planted(Canary::SkipFileFsync) {
        fs.sync_file(tmp).map_err(io(tmp))?;
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::StdFs;

    #[test]
    fn publishes_and_replaces() {
        // Pins: a published file is replaced whole and no temporary file is left.
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("f");
        publish_file(&mut StdFs, &p, b"one").expect("first");
        publish_file(&mut StdFs, &p, b"two").expect("second");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        let names: Vec<_> = std::fs::read_dir(d.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names.len(), 1, "no temporary file is left behind: {names:?}");
    }

    #[test]
    fn error_names_the_path() {
        // Pins: a failed publish names the file it could not write.
        let err = publish_file(&mut StdFs, Path::new("/nonexistent-dir/x"), b"").expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent-dir"), "{err}");
    }

    #[test]
    fn streaming_writes_exactly_the_input_in_bounded_pieces() {
        // Pins: a streamed copy holds exactly the source's bytes, every piece is seen
        // once and no piece is larger than the bound.
        let d = tempfile::tempdir().expect("tempdir");
        let src: Vec<u8> = (0..(STREAM_CHUNK_BYTES * 2 + 17)).map(|i| (i % 251) as u8).collect();
        let tmp = d.path().join(".x.tmp");
        let (mut seen, mut largest) = (Vec::new(), 0);
        let n = stream_durable(&mut StdFs, &tmp, &mut &src[..], Path::new("src"), &mut |p| {
            largest = largest.max(p.len());
            seen.extend_from_slice(p);
        })
        .expect("stream");
        assert_eq!(n, src.len() as u64);
        assert!(seen == src && std::fs::read(&tmp).expect("read") == src);
        assert!(largest <= STREAM_CHUNK_BYTES);
    }
}
