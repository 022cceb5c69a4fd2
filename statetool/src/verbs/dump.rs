//! `statetool dump PATH`: every entry of a checkpoint as JSON lines
//! `{"state", "key_group", "key", "user_key"?, "value"...}`, rendered from the encodings
//! recorded in the manifest. Filters: --state, --key-group, --key.
use std::path::PathBuf;

use formats::keygroup::KeyGroupRange;
use formats::snapshot::SnapshotReader;
use formats::value::render_json;

use super::target;

#[derive(clap::Args)]
pub struct Args {
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
}

/// Keys are rendered with the manifest's key encoding; without one (older manifests),
/// as text when they are UTF-8, otherwise as an array of bytes.
fn key_json(enc: Option<&formats::value::ValueEncoding>, k: &[u8]) -> serde_json::Value {
    if let Some(v) = enc.and_then(|e| render_json(e, k).ok()) {
        return v;
    }
    match std::str::from_utf8(k) {
        Ok(s) => serde_json::Value::String(s.to_owned()),
        Err(_) => serde_json::Value::from(k.to_vec()),
    }
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
    let m = target::newest_intact(&t)?;
    if let Some(s) = &a.state {
        anyhow::ensure!(
            m.states.iter().any(|d| &d.name == s),
            "checkpoint {} has no state {s:?} (states: {})",
            m.checkpoint.0,
            m.states.iter().map(|d| d.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let clip = a
        .key_group
        .map_or(KeyGroupRange { start: 0, end: u16::MAX }, |g| KeyGroupRange { start: g, end: g.saturating_add(1) });
    for f in m.files().filter(|f| f.path.ends_with(".snapshot")) {
        let p = formats::layout::resolve(&t.root, &f.path);
        let bytes = std::fs::read(&p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let r = SnapshotReader::open(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        let mut err = None;
        let mut buf = String::new();
        r.for_each_in(clip, &mut |si, k, v| {
            let Some(desc) = r.index.states.get(si as usize) else { return };
            if a.state.as_ref().is_some_and(|s| *s != desc.name) || err.is_some() {
                return;
            }
            let sk = match formats::statekey::decode(k) {
                Ok(sk) => sk,
                Err(e) => {
                    err = Some(e);
                    return;
                }
            };
            if a.key.as_ref().is_some_and(|want| !key_matches(m.key.as_ref(), want, sk.key)) {
                return;
            }
            let mut row = match formats::value::render_stored(desc, v) {
                Ok(j) => j,
                Err(e) => {
                    err = Some(e);
                    return;
                }
            };
            if let Some(o) = row.as_object_mut() {
                o.insert("state".into(), desc.name.clone().into());
                o.insert("key_group".into(), sk.key_group.0.into());
                o.insert("key".into(), key_json(m.key.as_ref(), sk.key));
                if let Some(uk) = &desc.user_key {
                    o.insert("user_key".into(), key_json(Some(uk), sk.user_key));
                }
            }
            buf.push_str(&row.to_string());
            buf.push('\n');
            if buf.len() > 1 << 16 {
                super::out(&buf);
                buf.clear();
            }
        })
        .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
        super::out(&buf);
        if let Some(e) = err {
            anyhow::bail!("{}: {e}", p.display());
        }
    }
    Ok(0)
}
