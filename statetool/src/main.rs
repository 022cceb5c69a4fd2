//! `statetool`: offline tooling for sluice state. Exit codes: 0 clean, 1 problems or
//! differences found, 2 usage or I/O error. Human tables by default, `--json` for scripts.
//!
//! Verbs: `inspect`, `verify`, `dump`, `du`, `diff` on checkpoints and savepoints
//! (either form); `compact` and `migrate` rewrite them into a new checkpoint or
//! savepoint; `gc` on a checkpoint root; `key-group` (where a key lives) and
//! `ranges` (which key groups each shard owns).
mod progress;
mod rewrite;
mod verbs;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "statetool", version, about = "Inspect sluice state offline")]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Summarize a checkpoint or savepoint: kind, job, time, shards, sizes, sources, states.
    Inspect(verbs::inspect::Args),
    /// Check checkpoints or a savepoint are intact (exit 1 if not).
    Verify(verbs::verify::Args),
    /// Print a checkpoint's or savepoint's entries as JSON lines.
    Dump(verbs::dump::Args),
    /// Where the bytes are: per state, key group or shard, and the largest entries.
    Du(verbs::du::Args),
    /// Compare two checkpoints or savepoints: files, then entries per state (exit 1 if they differ).
    Diff(verbs::diff::Args),
    /// Remove subsumed checkpoints and unreferenced shared files.
    Gc(verbs::gc::Args),
    /// Squash a checkpoint chain into one self-contained, compacted checkpoint or savepoint.
    Compact(verbs::compact::Args),
    /// Rewrite state for another shard or key-group count, form, state names or format version.
    Migrate(verbs::migrate::Args),
    /// Show the key group and owning shard of keys.
    KeyGroup(verbs::keygroup::Args),
    /// Show the key-group range each shard owns for a shard count.
    Ranges(verbs::ranges::Args),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let result = match cli.verb {
        Verb::Inspect(a) => verbs::inspect::run(&a),
        Verb::Verify(a) => verbs::verify::run(&a),
        Verb::Dump(a) => verbs::dump::run(&a),
        Verb::Du(a) => verbs::du::run(&a),
        Verb::Diff(a) => verbs::diff::run(&a),
        Verb::Gc(a) => verbs::gc::run(&a),
        Verb::Compact(a) => verbs::compact::run(&a),
        Verb::Migrate(a) => verbs::migrate::run(&a),
        Verb::KeyGroup(a) => verbs::keygroup::run(&a),
        Verb::Ranges(a) => verbs::ranges::run(&a),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
