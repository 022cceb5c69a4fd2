//! What happens to a record that cannot be parsed: it is counted, logged with its source
//! and position, and written to a dead-letter file when one is configured; or, with
//! `fail_on_bad_record`, the job stops with an error naming it.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::error::Error;

/// Bad records logged one by one; after this many only every `LOG_EVERY`-th is logged.
const LOG_FIRST: u64 = 20;
const LOG_EVERY: u64 = 10_000;
/// Bytes of a bad record kept in the log line and the dead-letter entry.
const RAW_BYTES_MAX: usize = 4096;

pub struct BadRecords {
    fail: bool,
    dead_letter: Option<(PathBuf, Mutex<BufWriter<File>>)>,
    count: AtomicU64,
}

impl BadRecords {
    /// Opens (creating or truncating) the dead-letter file, if any.
    pub fn new(fail: bool, dead_letter: Option<&Path>) -> Result<Self, Error> {
        let dead_letter = match dead_letter {
            Some(p) => {
                let f = File::create(p).map_err(|e| Error::io(p, e))?;
                Some((p.to_owned(), Mutex::new(BufWriter::new(f))))
            }
            None => None,
        };
        Ok(BadRecords { fail, dead_letter, count: AtomicU64::new(0) })
    }

    pub fn ignore() -> Self {
        BadRecords { fail: false, dead_letter: None, count: AtomicU64::new(0) }
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Reports one bad record. Returns an error only when the job must stop.
    pub fn report(&self, source: &str, position: &str, reason: &str, raw: &[u8]) -> Result<(), Error> {
        if self.fail {
            return Err(Error::BadRecord {
                source_name: source.to_owned(),
                position: position.to_owned(),
                reason: reason.to_owned(),
            });
        }
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let raw = String::from_utf8_lossy(raw.get(..RAW_BYTES_MAX).unwrap_or(raw));
        if n <= LOG_FIRST || n.is_multiple_of(LOG_EVERY) {
            tracing::warn!(source, position, reason, record = %raw, bad_records = n, "skipping bad record");
        }
        if let Some((path, w)) = &self.dead_letter {
            let line = serde_json::json!({ "source": source, "position": position, "reason": reason, "record": raw });
            let mut w = w.lock().unwrap_or_else(|p| p.into_inner());
            writeln!(w, "{line}").map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }

    pub fn flush(&self) -> Result<(), Error> {
        if let Some((path, w)) = &self.dead_letter {
            w.lock().unwrap_or_else(|p| p.into_inner()).flush().map_err(|e| Error::io(path, e))?;
        }
        Ok(())
    }
}
