//! `statetool dump PATH`: every entry of a checkpoint or savepoint as JSON lines
//! `{"state", "key_group", "key", "user_key"?, "value"...}`, rendered from the encodings
//! recorded in the manifest. Filters: --state, --key-group, --key; --limit N stops after
//! N entries.
//!
//! Two threads: this one renders and writes; a reader thread reads the entries (and the
//! crc32 pass beside it, `Loaded::for_each`), filters them and hands them over in
//! batches of about [`BATCH_BYTES`] (at most [`BATCHES_IN_FLIGHT`] waiting), so reading
//! and rendering overlap and memory stays bounded.
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver};

use formats::keygroup::KeyGroupRange;
use formats::value::{StateDescriptor, ValueEncoding};

use super::render::write_entry;
// `du` names keys through `dump::key_json`; the rendering itself lives in `render`.
pub use super::render::key_json;
use super::target;

#[derive(clap::Args)]
pub struct Args {
    /// A chk-<n> directory, a job's checkpoint root (its newest intact checkpoint) or a savepoint.
    path: PathBuf,
    /// Only this state.
    #[arg(long)]
    state: Option<String>,
    /// Only this key group.
    #[arg(long)]
    key_group: Option<u16>,
    /// Only this key (as text, or as a number for numeric keys).
    #[arg(long)]
    key: Option<String>,
    /// Stop after this many entries (of those the filters let through).
    #[arg(long)]
    limit: Option<u64>,
}

/// Whether `--key WANT` names the stored key `k` under the key encoding.
fn key_matches(enc: Option<&formats::value::ValueEncoding>, want: &str, k: &[u8]) -> bool {
    match key_json(enc, k) {
        serde_json::Value::String(s) => s == want,
        other => want.parse::<serde_json::Value>().is_ok_and(|w| w == other),
    }
}

pub fn run(a: &Args) -> anyhow::Result<u8> {
    let t = target::resolve(&a.path)?;
    let l = t.newest_intact()?;
    let m = &l.manifest;
    if let Some(s) = &a.state {
        anyhow::ensure!(
            m.states.iter().any(|d| &d.name == s),
            "{} {} has no state {s:?} (states: {})",
            l.kind.label(),
            l.dir.display(),
            m.states.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let clip = a.key_group.map_or(super::entries::ALL, |g| KeyGroupRange { start: g, end: g.saturating_add(1) });
    let (tx, rx) = sync_channel::<Batch>(BATCHES_IN_FLIGHT);
    let l = &l;
    let (read, limited, rendered) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut batch = Batch::default();
            let mut taken = 0u64;
            let mut limited = false;
            let read = l.for_each(clip, &mut |d, k, v| {
                if !wanted(a, m.key.as_ref(), d, k)? {
                    return Ok(());
                }
                batch.push(&m.states, d, k, v);
                taken += 1;
                if batch.data.len() >= BATCH_BYTES && tx.send(std::mem::take(&mut batch)).is_err() {
                    return Err(reader::ReadError::Visit(RENDER_STOPPED.into()));
                }
                // The reader stops at the first error a visit returns: the limit is one.
                if a.limit.is_some_and(|n| taken >= n) {
                    limited = true;
                    return Err(reader::ReadError::Visit(LIMIT_REACHED.into()));
                }
                Ok(())
            });
            // A closed channel means rendering failed, which is the error to report.
            let _ = tx.send(batch);
            (read, limited)
        });
        let rendered = render(&rx, &m.states, m.key.as_ref());
        drop(rx);
        let (read, limited) = reader.join().unwrap_or_else(|_| (Err(anyhow::anyhow!("the reader panicked")), false));
        (read, limited, rendered)
    });
    rendered?;
    match read {
        Err(_) if limited => Ok(0),
        Err(e) => Err(e),
        Ok(_) => Ok(0),
    }
}

/// How the visit ends a dump at `--limit` (not an error of the input).
const LIMIT_REACHED: &str = "dump --limit reached";

/// How the visit ends when rendering has stopped (its error is the one reported).
const RENDER_STOPPED: &str = "dump: rendering stopped";

/// Bytes of keys and values per batch handed from the reader to the renderer.
const BATCH_BYTES: usize = 1 << 20;

/// Batches the reader may be ahead by.
const BATCHES_IN_FLIGHT: usize = 4;

/// Bytes of rendered lines written to stdout at a time.
const OUT_CHUNK: usize = 1 << 20;

/// Whether the filters let the entry through.
fn wanted(a: &Args, key: Option<&ValueEncoding>, d: &StateDescriptor, k: &[u8]) -> Result<bool, reader::ReadError> {
    if a.state.as_ref().is_some_and(|s| *s != d.name) {
        return Ok(false);
    }
    if a.key.is_none() && a.key_group.is_none() {
        return Ok(true);
    }
    let sk = formats::statekey::decode(k)?;
    Ok(!a.key.as_ref().is_some_and(|want| !key_matches(key, want, sk.key))
        && !a.key_group.is_some_and(|g| g != sk.key_group.0))
}

/// Entries in one buffer: each row is (index of its state, end of its key, end of its
/// value) in `data`, the key starting where the row before ended.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    rows: Vec<(usize, usize, usize)>,
}

impl Batch {
    fn push(&mut self, states: &[StateDescriptor], d: &StateDescriptor, k: &[u8], v: &[u8]) {
        let state = states.iter().position(|s| s.name == d.name).unwrap_or(0);
        self.data.extend_from_slice(k);
        let k_end = self.data.len();
        self.data.extend_from_slice(v);
        self.rows.push((state, k_end, self.data.len()));
    }
}

/// Renders every batch that arrives as JSON lines and writes them in chunks of
/// [`OUT_CHUNK`]. The first entry that does not render ends it with that error.
fn render(rx: &Receiver<Batch>, states: &[StateDescriptor], key: Option<&ValueEncoding>) -> anyhow::Result<()> {
    let mut out = Vec::with_capacity(OUT_CHUNK * 2);
    for b in rx {
        let mut start = 0;
        for &(state, k_end, v_end) in &b.rows {
            let (Some(d), Some(k), Some(v)) = (states.get(state), b.data.get(start..k_end), b.data.get(k_end..v_end))
            else {
                anyhow::bail!("dump: a batch row out of bounds");
            };
            write_entry(&mut out, d, key, k, v)?;
            out.push(b'\n');
            start = v_end;
            if out.len() > OUT_CHUNK {
                super::out_bytes(&out);
                out.clear();
            }
        }
    }
    super::out_bytes(&out);
    Ok(())
}
