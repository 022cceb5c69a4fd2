//! `statetool compact PATH --to DIR`: squashes a checkpoint's incremental chain (or any
//! checkpoint or savepoint) into one self-contained, fully compacted checkpoint
//! (`--form checkpoint`, the default) or savepoint (`native`, `canonical`), optionally
//! dropping the TTL entries expired by now (`--purge-expired`, `--now-ms` to fix "now").
//! The input is never modified; the output is published with the checkpoint protocol.
//! `migrate` runs through the same [`execute`].
use std::path::{Path, PathBuf};

use crate::rewrite::{self, plan::Form, plan::Request};

use super::target;

/// The output's form, as the command line names it.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum FormArg {
    Checkpoint,
    Native,
    Canonical,
}

impl From<FormArg> for Form {
    fn from(f: FormArg) -> Form {
        match f {
            FormArg::Checkpoint => Form::Checkpoint,
            FormArg::Native => Form::Native,
            FormArg::Canonical => Form::Canonical,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory, a job's checkpoint root (its newest intact checkpoint) or a savepoint.
    path: PathBuf,
    /// Where the output goes: a new checkpoint root (`--form checkpoint`) or savepoint
    /// directory. It must not exist or be empty.
    #[arg(long)]
    to: PathBuf,
    #[arg(long, value_enum, default_value = "checkpoint")]
    form: FormArg,
    /// Drop TTL values (list elements) that have expired.
    #[arg(long)]
    purge_expired: bool,
    /// The instant expiry is judged at, in ms since the Unix epoch (default: now).
    #[arg(long, requires = "purge_expired")]
    now_ms: Option<u64>,
    #[arg(long)]
    json: bool,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let req = Request {
        form: Some(a.form.into()),
        purge_at: a.purge_expired.then(|| a.now_ms.unwrap_or_else(now_ms)),
        ..Request::default()
    };
    execute("compacted", &a.path, &a.to, &req, a.json)
}

/// Resolves `path`, plans `req` against it, rewrites it into `to` and reports. Without a
/// form in `req`, a savepoint keeps its form and a checkpoint becomes a savepoint in its
/// backend's native form (canonical for a heap job).
pub fn execute(verb: &str, path: &Path, to: &Path, req: &Request, json: bool) -> anyhow::Result<u8> {
    let input = target::resolve(path)?.newest_intact()?;
    let default_form = match input.kind {
        target::Kind::Savepoint(formats::savepoint::Form::Native) => Form::Native,
        target::Kind::Savepoint(formats::savepoint::Form::Canonical) => Form::Canonical,
        target::Kind::Checkpoint if input.manifest.backend == "rocksdb" => Form::Native,
        target::Kind::Checkpoint => Form::Canonical,
    };
    let plan = req.plan(&input.manifest, default_form)?;
    let r = rewrite::run(&input, &plan, to)?;
    if json {
        let mut v = serde_json::to_value(&r)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("input".into(), input.dir.display().to_string().into());
        }
        super::out(&format!("{v}\n"));
        return Ok(0);
    }
    let hb = target::human_bytes;
    let mib_s = |b: u64| b as f64 / (1 << 20) as f64 / r.seconds.max(1e-9);
    let mut s = format!(
        "{verb} {} into {} ({})  shards {}  key groups {}\n",
        input.title(),
        to.display(),
        r.form,
        r.shards,
        r.key_groups
    );
    s.push_str(&format!(
        "read    {} entries, {} of files, in {:.2} s ({:.1} MiB/s)\n",
        r.entries_read,
        hb(r.bytes_in),
        r.seconds,
        mib_s(r.bytes_in)
    ));
    s.push_str(&format!("wrote   {} entries, {} of files\n", r.entries_written, hb(r.bytes_out)));
    if r.expired_dropped + r.lists_trimmed + r.state_dropped > 0 {
        s.push_str(&format!(
            "dropped {} expired, {} lists trimmed of expired elements, {} of dropped states\n",
            r.expired_dropped, r.lists_trimmed, r.state_dropped
        ));
    }
    super::out(&s);
    Ok(0)
}
