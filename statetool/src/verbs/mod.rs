pub mod compact;
pub mod diff;
pub mod du;
pub mod dump;
pub mod entries;
pub mod gc;
pub mod inspect;
pub mod join;
pub mod keygroup;
pub mod migrate;
pub mod ranges;
pub mod render;
pub mod tally;
pub mod target;
pub mod utc;
pub mod verify;

use formats::keygroup::validate_shards;

/// Common shard-count and key-group validation, with the message users see.
pub fn check(shards: u32, key_groups: u32) -> anyhow::Result<()> {
    validate_shards(shards, key_groups).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Writes to stdout, exiting quietly if the reader went away (`| head`); a progress bar
/// on the same terminal is taken off the screen while it writes.
pub fn out(text: &str) {
    out_bytes(text.as_bytes());
}

/// [`out`] for text already in bytes (UTF-8).
pub fn out_bytes(text: &[u8]) {
    use std::io::Write;
    let written = crate::progress::suspend(|| {
        let mut o = std::io::stdout().lock();
        o.write_all(text).and_then(|()| o.flush())
    });
    if written.is_err() {
        std::process::exit(0);
    }
}
