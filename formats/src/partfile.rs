//! The part files of the exactly-once file sink (FORMAT.md §15, Flink's `FileSink`): a
//! shard writes `.<name>.inprogress`, renames it `.<name>.pending` when the checkpoint
//! barrier pre-commits it, and renames it `<name>` when the checkpoint is published.
//! Readers see only finished files: the other two are hidden (dot) files. A finished
//! name is `<prefix>-<shard>-<checkpoint>-<run>-<index><suffix>`, unique per run (a
//! random token), shard, transaction and roll.
use std::path::{Path, PathBuf};

/// Where a part file is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartState {
    InProgress,
    Pending,
    Finished,
}

const IN_PROGRESS: &str = ".inprogress";
const PENDING: &str = ".pending";

/// One part file, by its finished name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartName {
    pub prefix: String,
    pub shard: u16,
    /// The checkpoint whose barrier pre-commits it (`u64::MAX`: committed at the end of
    /// a job without checkpoints).
    pub checkpoint: u64,
    pub run: String,
    pub index: u32,
    pub suffix: String,
}

impl PartName {
    /// The name readers see.
    pub fn finished(&self) -> String {
        let checkpoint = if self.checkpoint == u64::MAX { "end".to_owned() } else { self.checkpoint.to_string() };
        format!("{}-{}-{checkpoint}-{}-{}{}", self.prefix, self.shard, self.run, self.index, self.suffix)
    }
}

/// The path of the part file named `finished` in `dir`, in state `state`.
pub fn path(dir: &Path, finished: &str, state: PartState) -> PathBuf {
    match state {
        PartState::InProgress => dir.join(format!(".{finished}{IN_PROGRESS}")),
        PartState::Pending => dir.join(format!(".{finished}{PENDING}")),
        PartState::Finished => dir.join(finished),
    }
}

/// The state and finished name of directory entry `name`, when it is a part file of
/// `prefix` that is not finished yet (what recovery looks at); None otherwise.
pub fn unfinished(name: &str, prefix: &str) -> Option<(PartState, String)> {
    let hidden = name.strip_prefix('.')?;
    let (finished, state) = if let Some(f) = hidden.strip_suffix(IN_PROGRESS) {
        (f, PartState::InProgress)
    } else {
        (hidden.strip_suffix(PENDING)?, PartState::Pending)
    };
    let rest = finished.strip_prefix(prefix)?.strip_prefix('-')?;
    // <shard>-<checkpoint>-<run>-<index><suffix>: the shard must be a number.
    let shard = rest.split('-').next()?;
    (!shard.is_empty() && shard.bytes().all(|b| b.is_ascii_digit())).then(|| (state, finished.to_owned()))
}

/// A random-enough token naming one run (an attempt of a job) in part-file names.
pub fn run_token() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let mixed = xxhash_rust::xxh3::xxh3_64(
        &[now.as_nanos().to_le_bytes(), u128::from(std::process::id()).to_le_bytes()].concat(),
    );
    format!("{:08x}", mixed as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_their_states_round_trip() {
        // Pins: the three names of one part file, and that recovery recognises the two
        // unfinished ones of its prefix only (not finished files, other prefixes, or
        // lookalikes without a shard number).
        let n = PartName {
            prefix: "out".into(),
            shard: 3,
            checkpoint: 12,
            run: "ab12cd34".into(),
            index: 0,
            suffix: ".jsonl".into(),
        };
        let f = n.finished();
        assert_eq!(f, "out-3-12-ab12cd34-0.jsonl");
        let dir = Path::new("/d");
        assert_eq!(path(dir, &f, PartState::InProgress), Path::new("/d/.out-3-12-ab12cd34-0.jsonl.inprogress"));
        assert_eq!(path(dir, &f, PartState::Pending), Path::new("/d/.out-3-12-ab12cd34-0.jsonl.pending"));
        assert_eq!(unfinished(".out-3-12-ab12cd34-0.jsonl.pending", "out"), Some((PartState::Pending, f.clone())));
        assert_eq!(
            unfinished(".out-3-12-ab12cd34-0.jsonl.inprogress", "out"),
            Some((PartState::InProgress, f.clone()))
        );
        assert_eq!(unfinished(&f, "out"), None);
        assert_eq!(unfinished(".other-3-12-x-0.pending", "out"), None);
        assert_eq!(unfinished(".out-x-12-x-0.pending", "out"), None);
        assert_eq!(unfinished(".outer-3-12-x-0.pending", "out"), None);
        let end = PartName { checkpoint: u64::MAX, ..n };
        assert_eq!(end.finished(), "out-3-end-ab12cd34-0.jsonl");
    }
}
