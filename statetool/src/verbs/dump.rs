//! `statetool dump PATH`: every entry of a checkpoint or savepoint as JSON lines
//! `{"state", "key_group", "key", "user_key"?, "value"...}`, rendered from the encodings
//! recorded in the manifest. Filters: --state, --key-group, --key; --limit N stops after
//! N entries.
use std::path::PathBuf;

use formats::keygroup::KeyGroupRange;
use formats::value::StateDescriptor;

use super::render::entry_json;
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
    let mut rows = Rows { args: a, key: m.key.as_ref(), buf: String::new(), printed: 0 };
    let mut limited = false;
    let read = l.for_each(clip, &mut |d, k, v| {
        rows.push(d, k, v)?;
        // The reader stops at the first error a visit returns: the limit is one.
        if a.limit.is_some_and(|n| rows.printed >= n) {
            limited = true;
            return Err(reader::ReadError::Visit(LIMIT_REACHED.into()));
        }
        Ok(())
    });
    super::out(&rows.buf);
    match read {
        Err(_) if limited => Ok(0),
        Err(e) => Err(e),
        Ok(_) => Ok(0),
    }
}

/// How the visit ends a dump at `--limit` (not an error of the input).
const LIMIT_REACHED: &str = "dump --limit reached";

/// Renders entries as JSON lines, filtered by the arguments, and writes them in chunks.
struct Rows<'a> {
    args: &'a Args,
    key: Option<&'a formats::value::ValueEncoding>,
    buf: String,
    printed: u64,
}

impl Rows<'_> {
    fn push(&mut self, desc: &StateDescriptor, k: &[u8], v: &[u8]) -> Result<(), formats::error::FormatError> {
        if self.args.state.as_ref().is_some_and(|s| *s != desc.name) {
            return Ok(());
        }
        let sk = formats::statekey::decode(k)?;
        if self.args.key.as_ref().is_some_and(|want| !key_matches(self.key, want, sk.key)) {
            return Ok(());
        }
        if self.args.key_group.is_some_and(|g| g != sk.key_group.0) {
            return Ok(());
        }
        let row = entry_json(desc, self.key, k, v)?;
        self.printed += 1;
        self.buf.push_str(&row.to_string());
        self.buf.push('\n');
        if self.buf.len() > 1 << 16 {
            super::out(&self.buf);
            self.buf.clear();
        }
        Ok(())
    }
}
