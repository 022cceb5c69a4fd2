//! `statetool dump PATH`: every entry of a checkpoint or savepoint as JSON lines
//! `{"state", "key_group", "key", "user_key"?, "value"...}`, rendered from the encodings
//! recorded in the manifest. Filters: --state, --key-group, --key; --limit N stops after
//! N entries.
//!
//! A reader thread reads the entries (and the crc32 pass beside it, `Loaded::for_each`),
//! filters them and hands them over in numbered batches of about [`BATCH_BYTES`]; a
//! renderer per core turns batches into JSON lines; this thread writes them to stdout
//! in the order they were read. At most [`BATCHES_IN_FLIGHT`] batches are anywhere
//! between the reader and stdout, so memory stays bounded; reading and rendering
//! overlap, and rendering (the bulk of the work for big values) uses every core.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::sync::Mutex;

use formats::error::FormatError;
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
    let (tx, rx) = sync_channel::<(u64, Batch)>(BATCHES_IN_FLIGHT);
    let (done_tx, done_rx) = sync_channel::<(u64, Result<Vec<u8>, FormatError>)>(BATCHES_IN_FLIGHT);
    // A batch may be read only while fewer than BATCHES_IN_FLIGHT are between the
    // reader and stdout (queued, rendering, or rendered and waiting for an earlier
    // one): the memory bound, whatever the renderers' relative speed.
    let (credit_tx, credit_rx) = sync_channel::<()>(BATCHES_IN_FLIGHT);
    for _ in 0..BATCHES_IN_FLIGHT {
        let _ = credit_tx.send(());
    }
    let rx = Mutex::new(rx);
    // Spent batches and written output buffers go back to be filled again, so their
    // memory is not handed back to the allocator (and faulted in afresh) per batch.
    let (spent_tx, spent_rx) = channel::<Batch>();
    let (blank_tx, blank_rx) = channel::<Vec<u8>>();
    let blank_rx = Mutex::new(blank_rx);
    let renderers = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let l = &l;
    let (read, limited, written) = std::thread::scope(|s| {
        let reader = s.spawn(move || {
            let mut batch = Batch::default();
            let mut seq = 0u64;
            let mut taken = 0u64;
            let mut limited = false;
            let mut hand_over = |batch: Batch| {
                let sent = credit_rx.recv().is_ok() && tx.send((seq, batch)).is_ok();
                seq += 1;
                sent
            };
            let read = l.for_each(clip, &mut |d, k, v| {
                if !wanted(a, m.key.as_ref(), d, k)? {
                    return Ok(());
                }
                batch.push(&m.states, d, k, v);
                taken += 1;
                if batch.data.len() >= BATCH_BYTES {
                    let fresh = spent_rx.try_recv().unwrap_or_default();
                    if !hand_over(std::mem::replace(&mut batch, fresh)) {
                        return Err(reader::ReadError::Visit(RENDER_STOPPED.into()));
                    }
                }
                // The reader stops at the first error a visit returns: the limit is one.
                if a.limit.is_some_and(|n| taken >= n) {
                    limited = true;
                    return Err(reader::ReadError::Visit(LIMIT_REACHED.into()));
                }
                Ok(())
            });
            // A closed channel means writing failed, which is the error to report.
            hand_over(batch);
            (read, limited)
        });
        for _ in 0..renderers {
            let (rx, done_tx, spent_tx, blank_rx) = (&rx, done_tx.clone(), spent_tx.clone(), &blank_rx);
            s.spawn(move || loop {
                let next = rx.lock().map_err(|_| ()).and_then(|r| r.recv().map_err(|_| ()));
                let Ok((seq, mut b)) = next else { break };
                let out = blank_rx.lock().ok().and_then(|r| r.try_recv().ok()).unwrap_or_default();
                let rendered = render(&b, out, &m.states, m.key.as_ref());
                b.clear();
                let _ = spent_tx.send(b);
                if done_tx.send((seq, rendered)).is_err() {
                    break;
                }
            });
        }
        drop(done_tx);
        drop(spent_tx);
        let written = write_in_order(&done_rx, &credit_tx, &blank_tx, &mut |text| super::out_bytes(text));
        drop(done_rx);
        drop(credit_tx);
        let (read, limited) = reader.join().unwrap_or_else(|_| (Err(anyhow::anyhow!("the reader panicked")), false));
        (read, limited, written)
    });
    written?;
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

/// Batches between the reader and stdout at most.
const BATCHES_IN_FLIGHT: usize = 4;

/// Whether the filters let the entry through.
fn wanted(a: &Args, key: Option<&ValueEncoding>, d: &StateDescriptor, k: &[u8]) -> Result<bool, reader::ReadError> {
    if a.state.as_ref().is_some_and(|s| *s != d.name) {
        return Ok(false);
    }
    if a.key.is_none() && a.key_group.is_none() {
        return Ok(true);
    }
    let sk = formats::statekey::decode(k)?;
    Ok(a.key.as_ref().is_none_or(|want| key_matches(key, want, sk.key))
        && a.key_group.is_none_or(|g| g == sk.key_group.0))
}

/// Entries in one buffer: each row is (index of its state, end of its key, end of its
/// value) in `data`, the key starting where the row before ended.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    rows: Vec<(usize, usize, usize)>,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.rows.clear();
    }

    fn push(&mut self, states: &[StateDescriptor], d: &StateDescriptor, k: &[u8], v: &[u8]) {
        let state = states.iter().position(|s| s.name == d.name).unwrap_or(0);
        self.data.extend_from_slice(k);
        let k_end = self.data.len();
        self.data.extend_from_slice(v);
        self.rows.push((state, k_end, self.data.len()));
    }
}

/// Renders one batch as JSON lines. The first entry that does not render ends it with
/// that error.
fn render(
    b: &Batch,
    mut out: Vec<u8>,
    states: &[StateDescriptor],
    key: Option<&ValueEncoding>,
) -> Result<Vec<u8>, FormatError> {
    let mut start = 0;
    for &(state, k_end, v_end) in &b.rows {
        let (Some(d), Some(k), Some(v)) = (states.get(state), b.data.get(start..k_end), b.data.get(k_end..v_end))
        else {
            return Err(FormatError::Invalid { what: "dump batch", offset: start, reason: "row out of bounds".into() });
        };
        write_entry(&mut out, d, key, k, v)?;
        out.push(b'\n');
        start = v_end;
    }
    Ok(out)
}

/// Writes the rendered batches to stdout in the order they were read (renderers finish
/// out of order), giving the reader a credit back for each one written. The first
/// batch that did not render ends it with that error.
fn write_in_order(
    done: &Receiver<(u64, Result<Vec<u8>, FormatError>)>,
    credits: &SyncSender<()>,
    blanks: &Sender<Vec<u8>>,
    write: &mut dyn FnMut(&[u8]),
) -> anyhow::Result<()> {
    let mut waiting = BTreeMap::new();
    let mut next = 0u64;
    for (seq, rendered) in done {
        waiting.insert(seq, rendered);
        while let Some(rendered) = waiting.remove(&next) {
            let mut text = rendered?;
            write(&text);
            text.clear();
            let _ = blanks.send(text);
            next += 1;
            let _ = credits.send(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_written_in_reading_order_whatever_order_they_are_rendered_in() {
        // Pins: rendered batches arriving out of order (renderers race) are written in
        // their reading order, each once, with a credit handed back per batch written;
        // a batch that did not render ends the writing with its error.
        let (done_tx, done_rx) = sync_channel(8);
        let (credit_tx, credit_rx) = sync_channel(8);
        let (blank_tx, blank_rx) = channel();
        for (seq, text) in [(2u64, "c"), (0, "a"), (3, "d"), (1, "b")] {
            done_tx.send((seq, Ok(text.as_bytes().to_vec()))).expect("send");
        }
        drop(done_tx);
        let mut out = Vec::new();
        write_in_order(&done_rx, &credit_tx, &blank_tx, &mut |t| out.extend_from_slice(t)).expect("written");
        assert_eq!(out, b"abcd");
        assert_eq!(credit_rx.try_iter().count(), 4, "a credit per batch");
        assert_eq!(blank_rx.try_iter().count(), 4, "every buffer back");

        let (done_tx, done_rx) = sync_channel(8);
        done_tx.send((1, Ok(b"b".to_vec()))).expect("send");
        let bad = FormatError::Invalid { what: "value", offset: 0, reason: "bad".into() };
        done_tx.send((0, Err(bad))).expect("send");
        drop(done_tx);
        let mut out = Vec::new();
        let e = write_in_order(&done_rx, &credit_tx, &blank_tx, &mut |t| out.extend_from_slice(t));
        assert!(e.is_err() && out.is_empty(), "{e:?}");
    }
}
