//! `statetool migrate PATH --to DIR`: rewrites state so a job restarts with another shard
//! count (`--shards`), another key-group count (`--key-groups`: every key is hashed again
//! into its new key group, which Flink's max parallelism cannot change), another form,
//! renamed (`--rename-state OLD=NEW`) or dropped (`--drop-state NAME`) states, or in the
//! format version this tool writes (`--format-version`). Runs through `compact::execute`.
use std::path::PathBuf;

use formats::manifest::MANIFEST_VERSION;

use super::compact::{execute, FormArg};
use crate::rewrite::plan::Request;

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory, a job's checkpoint root (its newest intact checkpoint) or a savepoint.
    path: PathBuf,
    /// The new savepoint (or, `--form checkpoint`, checkpoint root); must not exist or be empty.
    #[arg(long)]
    to: PathBuf,
    /// Shards the output is laid out for (default: the input's).
    #[arg(long)]
    shards: Option<u32>,
    /// Key groups of the output (default: the input's); keys are rehashed.
    #[arg(long)]
    key_groups: Option<u32>,
    /// Default: a savepoint keeps its form; a checkpoint becomes a native savepoint
    /// (canonical for a heap job).
    #[arg(long, value_enum)]
    form: Option<FormArg>,
    /// Rename a state (repeatable).
    #[arg(long = "rename-state", value_name = "OLD=NEW")]
    renames: Vec<String>,
    /// Drop a state and its entries (repeatable).
    #[arg(long = "drop-state", value_name = "NAME")]
    drops: Vec<String>,
    /// The manifest format version to write; this statetool writes the current one only.
    #[arg(long)]
    format_version: Option<u16>,
    #[arg(long)]
    json: bool,
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    if let Some(v) = a.format_version {
        anyhow::ensure!(
            v == MANIFEST_VERSION,
            "--format-version {v}: this statetool writes manifest version {MANIFEST_VERSION} only; it reads \
             versions 1 to {MANIFEST_VERSION} (docs/FORMAT.md, Version history)"
        );
    }
    let req = Request {
        shards: a.shards,
        key_groups: a.key_groups,
        form: a.form.map(Into::into),
        renames: a.renames.clone(),
        drops: a.drops.clone(),
        purge_at: None,
    };
    execute("migrated", &a.path, &a.to, &req, a.json)
}
