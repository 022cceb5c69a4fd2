//! Snapshot files (docs/FORMAT.md §11): every entry of a shard's keyed state, grouped
//! by state and key group, sorted by key, in zstd blocks with a crc32 each, and an index
//! from (state, key group) to blocks. The heap backend writes one per shard per
//! checkpoint; restore reads only the blocks of the key groups a shard now owns, which
//! is what makes restoring onto another shard count a matter of clipping ranges.
//!
//! [`SnapshotWriter::to_writer`] streams a snapshot to any `std::io::Write`: blocks go
//! out as they are cut, then the index and the footer, and `finish` returns the size
//! and crc32 of what was written, so a caller can fill in a manifest entry without
//! holding or re-reading the file. [`SnapshotWriter::new`] builds one in memory.
//!
//! ```text
//! block*  index (envelope, kind 2)  footer
//! block:  magic "SLBK" | state u32 | key_group u16 | reserved u16 | entries u32 |
//!         raw_len u32 | stored_len u32 | payload_crc u32 | header_crc u32 | payload
//! footer: magic "SLSN" | index_offset u64 | footer_crc u32
//! ```
use std::io::Write;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::cursor::Cursor;
use crate::envelope::{self, Kind};
use crate::error::FormatError;
use crate::keygroup::{KeyGroup, KeyGroupRange};
use crate::value::StateDescriptor;
use crate::varint;

pub const BLOCK_MAGIC: [u8; 4] = *b"SLBK";
pub const FOOTER_MAGIC: [u8; 4] = *b"SLSN";

// The block header, field by field (docs/FORMAT.md §11, "Block"). The reader takes the
// fields in this order through a `Cursor`; the asserts below make the table contiguous,
// so that order is these offsets.
/// §11 block `magic`: `SLBK`.
pub const BLOCK_MAGIC_OFFSET: usize = 0;
pub const BLOCK_MAGIC_SIZE: usize = 4;
/// §11 block `state`: index into the index's `states`, u32.
pub const BLOCK_STATE_OFFSET: usize = 4;
pub const BLOCK_STATE_SIZE: usize = 4;
/// §11 block `key_group`: u16 (little-endian, unlike in a state key).
pub const BLOCK_KEY_GROUP_OFFSET: usize = 8;
pub const BLOCK_KEY_GROUP_SIZE: usize = 2;
/// §11 block `reserved`: written 0, not checked by readers.
pub const BLOCK_RESERVED_OFFSET: usize = 10;
pub const BLOCK_RESERVED_SIZE: usize = 2;
/// §11 block `entries`: number of entries in the payload, u32.
pub const BLOCK_ENTRIES_OFFSET: usize = 12;
pub const BLOCK_ENTRIES_SIZE: usize = 4;
/// §11 block `raw_len`: decompressed payload size, u32, at most [`BLOCK_RAW_MAX`].
pub const BLOCK_RAW_LEN_OFFSET: usize = 16;
pub const BLOCK_RAW_LEN_SIZE: usize = 4;
/// §11 block `stored_len`: size of the zstd frame after the header, u32.
pub const BLOCK_STORED_LEN_OFFSET: usize = 20;
pub const BLOCK_STORED_LEN_SIZE: usize = 4;
/// §11 block `payload_crc`: crc32 of the stored (compressed) payload.
pub const BLOCK_PAYLOAD_CRC_OFFSET: usize = 24;
pub const BLOCK_PAYLOAD_CRC_SIZE: usize = 4;
/// §11 block `header_crc`: crc32 of bytes `0..BLOCK_HEADER_CRC_OFFSET`.
pub const BLOCK_HEADER_CRC_OFFSET: usize = 28;
pub const BLOCK_HEADER_CRC_SIZE: usize = 4;
/// §11: the payload starts right after the header.
pub const BLOCK_HEADER_LEN: usize = 32;

const _: () = assert!(BLOCK_MAGIC_OFFSET == 0 && BLOCK_MAGIC_SIZE == BLOCK_MAGIC.len());
const _: () = assert!(BLOCK_STATE_OFFSET == BLOCK_MAGIC_OFFSET + BLOCK_MAGIC_SIZE);
const _: () = assert!(BLOCK_KEY_GROUP_OFFSET == BLOCK_STATE_OFFSET + BLOCK_STATE_SIZE);
const _: () = assert!(BLOCK_RESERVED_OFFSET == BLOCK_KEY_GROUP_OFFSET + BLOCK_KEY_GROUP_SIZE);
const _: () = assert!(BLOCK_ENTRIES_OFFSET == BLOCK_RESERVED_OFFSET + BLOCK_RESERVED_SIZE);
const _: () = assert!(BLOCK_RAW_LEN_OFFSET == BLOCK_ENTRIES_OFFSET + BLOCK_ENTRIES_SIZE);
const _: () = assert!(BLOCK_STORED_LEN_OFFSET == BLOCK_RAW_LEN_OFFSET + BLOCK_RAW_LEN_SIZE);
const _: () = assert!(BLOCK_PAYLOAD_CRC_OFFSET == BLOCK_STORED_LEN_OFFSET + BLOCK_STORED_LEN_SIZE);
const _: () = assert!(BLOCK_HEADER_CRC_OFFSET == BLOCK_PAYLOAD_CRC_OFFSET + BLOCK_PAYLOAD_CRC_SIZE);
const _: () = assert!(BLOCK_HEADER_LEN == BLOCK_HEADER_CRC_OFFSET + BLOCK_HEADER_CRC_SIZE);
const _: () = assert!(BLOCK_HEADER_LEN == 32);
// Each size is the width of the integer the cursor reads for it.
const _: () = assert!(BLOCK_KEY_GROUP_SIZE == size_of::<u16>() && BLOCK_RESERVED_SIZE == size_of::<u16>());
const _: () = assert!(BLOCK_STATE_SIZE == size_of::<u32>() && BLOCK_ENTRIES_SIZE == size_of::<u32>());
const _: () = assert!(BLOCK_RAW_LEN_SIZE == size_of::<u32>() && BLOCK_STORED_LEN_SIZE == size_of::<u32>());
const _: () = assert!(BLOCK_PAYLOAD_CRC_SIZE == size_of::<u32>() && BLOCK_HEADER_CRC_SIZE == size_of::<u32>());

// The footer, the file's last bytes (docs/FORMAT.md §11, "Footer").
/// §11 footer `magic`: `SLSN`.
pub const FOOTER_MAGIC_OFFSET: usize = 0;
pub const FOOTER_MAGIC_SIZE: usize = 4;
/// §11 footer `index_offset`: where the index envelope starts, u64.
pub const FOOTER_INDEX_OFFSET_OFFSET: usize = 4;
pub const FOOTER_INDEX_OFFSET_SIZE: usize = 8;
/// §11 footer `footer_crc`: crc32 of bytes `0..FOOTER_CRC_OFFSET` of the footer.
pub const FOOTER_CRC_OFFSET: usize = 12;
pub const FOOTER_CRC_SIZE: usize = 4;
/// §11: the footer's length.
pub const FOOTER_LEN: usize = 16;

const _: () = assert!(FOOTER_MAGIC_OFFSET == 0 && FOOTER_MAGIC_SIZE == FOOTER_MAGIC.len());
const _: () = assert!(FOOTER_INDEX_OFFSET_OFFSET == FOOTER_MAGIC_OFFSET + FOOTER_MAGIC_SIZE);
const _: () = assert!(FOOTER_CRC_OFFSET == FOOTER_INDEX_OFFSET_OFFSET + FOOTER_INDEX_OFFSET_SIZE);
const _: () = assert!(FOOTER_LEN == FOOTER_CRC_OFFSET + FOOTER_CRC_SIZE);
const _: () = assert!(FOOTER_LEN == 16);
const _: () = assert!(FOOTER_INDEX_OFFSET_SIZE == size_of::<u64>() && FOOTER_CRC_SIZE == size_of::<u32>());

/// A block is cut once its raw entries reach this size.
pub const BLOCK_RAW_TARGET: usize = 256 << 10;
/// Largest raw block a reader accepts (a single entry may exceed the target). It also
/// caps each key and value length in a block's entries.
pub const BLOCK_RAW_MAX: usize = 80 << 20;
pub const SNAPSHOT_VERSION: u16 = 1;
const ZSTD_LEVEL: i32 = 1;

/// Copies `bytes` into `buf` at `offset`. Every call site passes a field's offset and a
/// value of its size, which the asserts above keep inside the header or footer.
fn put_field(buf: &mut [u8], offset: usize, bytes: &[u8]) {
    if let Some(dst) = buf.get_mut(offset..offset + bytes.len()) {
        dst.copy_from_slice(bytes);
    }
}

/// The fields of a block header (§11), without the magic and the checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BlockHeader {
    state: u32,
    key_group: u16,
    entries: u32,
    raw_len: u32,
    stored_len: u32,
    payload_crc: u32,
}

impl BlockHeader {
    fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut h = [0u8; BLOCK_HEADER_LEN];
        put_field(&mut h, BLOCK_MAGIC_OFFSET, &BLOCK_MAGIC);
        put_field(&mut h, BLOCK_STATE_OFFSET, &self.state.to_le_bytes());
        put_field(&mut h, BLOCK_KEY_GROUP_OFFSET, &self.key_group.to_le_bytes());
        put_field(&mut h, BLOCK_RESERVED_OFFSET, &0u16.to_le_bytes());
        put_field(&mut h, BLOCK_ENTRIES_OFFSET, &self.entries.to_le_bytes());
        put_field(&mut h, BLOCK_RAW_LEN_OFFSET, &self.raw_len.to_le_bytes());
        put_field(&mut h, BLOCK_STORED_LEN_OFFSET, &self.stored_len.to_le_bytes());
        put_field(&mut h, BLOCK_PAYLOAD_CRC_OFFSET, &self.payload_crc.to_le_bytes());
        let crc = crc32fast::hash(h.get(..BLOCK_HEADER_CRC_OFFSET).unwrap_or_default());
        put_field(&mut h, BLOCK_HEADER_CRC_OFFSET, &crc.to_le_bytes());
        h
    }

    /// Reads the header at the cursor and checks its magic and checksum before any
    /// field is used.
    fn decode(c: &mut Cursor<'_>) -> Result<Self, FormatError> {
        let at = c.offset();
        let h = c.take(BLOCK_HEADER_LEN, "snapshot block header")?;
        let mut c = Cursor::with_base(h, at);
        let magic: [u8; BLOCK_MAGIC_SIZE] = c.array("snapshot block magic")?;
        let state = c.u32_le("snapshot block state")?;
        let key_group = c.u16_le("snapshot block key group")?;
        let _reserved = c.u16_le("snapshot block reserved")?;
        let entries = c.u32_le("snapshot block entries")?;
        let raw_len = c.u32_le("snapshot block raw_len")?;
        let stored_len = c.u32_le("snapshot block stored_len")?;
        let payload_crc = c.u32_le("snapshot block payload crc")?;
        debug_assert_eq!(c.position(), BLOCK_HEADER_CRC_OFFSET);
        let stored = c.u32_le("snapshot block header crc")?;
        let computed = crc32fast::hash(h.get(..BLOCK_HEADER_CRC_OFFSET).unwrap_or_default());
        if magic != BLOCK_MAGIC || stored != computed {
            return Err(FormatError::Checksum { what: "snapshot block header", offset: at, stored, computed });
        }
        Ok(BlockHeader { state, key_group, entries, raw_len, stored_len, payload_crc })
    }
}

fn encode_footer(index_offset: u64) -> [u8; FOOTER_LEN] {
    let mut f = [0u8; FOOTER_LEN];
    put_field(&mut f, FOOTER_MAGIC_OFFSET, &FOOTER_MAGIC);
    put_field(&mut f, FOOTER_INDEX_OFFSET_OFFSET, &index_offset.to_le_bytes());
    let crc = crc32fast::hash(f.get(..FOOTER_CRC_OFFSET).unwrap_or_default());
    put_field(&mut f, FOOTER_CRC_OFFSET, &crc.to_le_bytes());
    f
}

/// Reads the footer (a file's last [`FOOTER_LEN`] bytes, at file offset `at`) and
/// returns the index offset, after checking magic and checksum.
fn decode_footer(footer: &[u8], at: usize) -> Result<u64, FormatError> {
    let mut c = Cursor::with_base(footer, at);
    let magic: [u8; FOOTER_MAGIC_SIZE] = c.array("snapshot footer magic")?;
    let index_offset = c.u64_le("snapshot footer index offset")?;
    debug_assert_eq!(c.position(), FOOTER_CRC_OFFSET);
    let stored = c.u32_le("snapshot footer crc")?;
    let computed = crc32fast::hash(footer.get(..FOOTER_CRC_OFFSET).unwrap_or_default());
    if magic != FOOTER_MAGIC || stored != computed {
        return Err(FormatError::Checksum { what: "snapshot footer", offset: at, stored, computed });
    }
    Ok(index_offset)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    pub state: u32,
    pub key_group: u16,
    pub offset: u64,
    pub len: u32,
    pub entries: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotIndex {
    pub states: Vec<StateDescriptor>,
    pub range: KeyGroupRange,
    pub blocks: Vec<BlockRef>,
}

/// What a streamed snapshot wrote: its length and the crc32 of all its bytes, the same
/// as `crc32fast::hash` of the whole file (what a manifest's file entry records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub size: u64,
    pub crc32: u32,
}

/// The destination of a streamed snapshot: counts and checksums every byte it passes
/// on, and refuses further writes after a failed one, so a torn file is never reported
/// as complete.
struct Sink<W> {
    w: W,
    /// Names the destination in I/O errors.
    path: PathBuf,
    size: u64,
    crc: crc32fast::Hasher,
    failed: bool,
}

impl<W: Write> Sink<W> {
    fn check(&self) -> Result<(), FormatError> {
        if self.failed {
            return Err(FormatError::Invalid {
                what: "snapshot writer",
                offset: self.size as usize,
                reason: format!("an earlier write to {} failed; the snapshot is incomplete", self.path.display()),
            });
        }
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), FormatError> {
        self.check()?;
        if let Err(e) = self.w.write_all(bytes) {
            self.failed = true;
            return Err(FormatError::io(&self.path, e));
        }
        self.crc.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), FormatError> {
        self.check()?;
        self.w.flush().map_err(|e| {
            self.failed = true;
            FormatError::io(&self.path, e)
        })
    }
}

/// Writes a snapshot to any [`Write`] as it is built: each block goes to the writer
/// when it is cut, so memory is bounded by one block ([`BLOCK_RAW_TARGET`] raw, plus
/// the entry that crosses it, plus its compressed copy) and the index (one small entry
/// per block). Entries must be added grouped by (state, key group), in key order within
/// a group; the writer checks this. Made by [`SnapshotWriter::to_writer`].
pub struct SnapshotStream<W: Write> {
    sink: Sink<W>,
    index: SnapshotIndex,
    raw: Vec<u8>,
    current: Option<(u32, u16)>,
    entries: u32,
    last_key: Vec<u8>,
}

impl<W: Write> SnapshotStream<W> {
    /// A snapshot of `states` over `range` written to `w`; `path` names `w` in errors.
    pub fn new(states: Vec<StateDescriptor>, range: KeyGroupRange, w: W, path: PathBuf) -> Self {
        SnapshotStream {
            sink: Sink { w, path, size: 0, crc: crc32fast::Hasher::new(), failed: false },
            index: SnapshotIndex { states, range, blocks: Vec::new() },
            raw: Vec::new(),
            current: None,
            entries: 0,
            last_key: Vec::new(),
        }
    }

    /// Bytes written to the destination so far (the offset of the next block).
    pub fn written(&self) -> u64 {
        self.sink.size
    }

    fn cut(&mut self) -> Result<(), FormatError> {
        let Some((state, kg)) = self.current else { return Ok(()) };
        if self.entries == 0 {
            return Ok(());
        }
        let offset = self.sink.size;
        let stored = zstd::bulk::compress(&self.raw, ZSTD_LEVEL).map_err(|e| FormatError::Invalid {
            what: "snapshot block",
            offset: offset as usize,
            reason: e.to_string(),
        })?;
        let header = BlockHeader {
            state,
            key_group: kg,
            entries: self.entries,
            raw_len: self.raw.len() as u32,
            stored_len: stored.len() as u32,
            payload_crc: crc32fast::hash(&stored),
        };
        self.sink.write(&header.encode())?;
        self.sink.write(&stored)?;
        self.index.blocks.push(BlockRef {
            state,
            key_group: kg,
            offset,
            len: (BLOCK_HEADER_LEN + stored.len()) as u32,
            entries: self.entries,
        });
        self.raw.clear();
        self.entries = 0;
        Ok(())
    }

    pub fn add(&mut self, state: u32, kg: KeyGroup, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        self.sink.check()?;
        let group = (state, kg.0);
        let bad = |reason: String| FormatError::Invalid { what: "snapshot entry order", offset: 0, reason };
        if !self.index.range.contains(kg) {
            return Err(bad(format!(
                "key group {} outside {}..{}",
                kg.0, self.index.range.start, self.index.range.end
            )));
        }
        if state as usize >= self.index.states.len() {
            return Err(bad(format!("state {state} not declared")));
        }
        match self.current {
            Some(c) if c == group => {
                if key <= self.last_key.as_slice() {
                    return Err(bad("keys not strictly increasing".into()));
                }
            }
            Some(c) if c > group => return Err(bad(format!("group {group:?} after {c:?}"))),
            _ => {
                self.cut()?;
                self.current = Some(group);
            }
        }
        if self.raw.len() >= BLOCK_RAW_TARGET {
            self.cut()?;
        }
        // A block a reader would refuse is never written (§11: raw_len <= BLOCK_RAW_MAX).
        let framed = varint::len(key.len() as u64) + key.len() + varint::len(value.len() as u64) + value.len();
        if self.raw.len().saturating_add(framed) > BLOCK_RAW_MAX {
            return Err(FormatError::TooLarge {
                what: "snapshot entry",
                len: framed as u64,
                max: BLOCK_RAW_MAX as u64,
            });
        }
        varint::put(&mut self.raw, key.len() as u64);
        self.raw.extend_from_slice(key);
        varint::put(&mut self.raw, value.len() as u64);
        self.raw.extend_from_slice(value);
        self.entries += 1;
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        Ok(())
    }

    /// Writes the last block, the index and the footer, flushes the destination, and
    /// returns it with the size and crc32 of everything written. It does not fsync: the
    /// caller owns the file and its durability.
    pub fn finish(self) -> Result<SnapshotSummary, FormatError> {
        self.finish_into_inner().map(|(summary, _)| summary)
    }

    fn finish_into_inner(mut self) -> Result<(SnapshotSummary, W), FormatError> {
        self.cut()?;
        let index_offset = self.sink.size;
        let body = serde_json::to_vec(&self.index).map_err(|e| FormatError::Invalid {
            what: "snapshot index",
            offset: 0,
            reason: e.to_string(),
        })?;
        self.sink.write(&envelope::encode(Kind::SnapshotIndex, SNAPSHOT_VERSION, &body)?)?;
        self.sink.write(&encode_footer(index_offset))?;
        self.sink.flush()?;
        let summary = SnapshotSummary { size: self.sink.size, crc32: self.sink.crc.finalize() };
        Ok((summary, self.sink.w))
    }
}

/// Builds a snapshot in memory: a [`SnapshotStream`] over a `Vec<u8>`, for callers that
/// want the whole file as bytes. [`SnapshotWriter::to_writer`] streams instead.
pub struct SnapshotWriter {
    inner: SnapshotStream<Vec<u8>>,
}

impl SnapshotWriter {
    pub fn new(states: Vec<StateDescriptor>, range: KeyGroupRange) -> Self {
        SnapshotWriter { inner: SnapshotStream::new(states, range, Vec::new(), PathBuf::from("<memory>")) }
    }

    /// A writer that streams each block to `w` as it is cut; `path` names `w` in errors.
    pub fn to_writer<W: Write>(
        states: Vec<StateDescriptor>,
        range: KeyGroupRange,
        w: W,
        path: PathBuf,
    ) -> SnapshotStream<W> {
        SnapshotStream::new(states, range, w, path)
    }

    pub fn add(&mut self, state: u32, kg: KeyGroup, key: &[u8], value: &[u8]) -> Result<(), FormatError> {
        self.inner.add(state, kg, key, value)
    }

    pub fn finish(self) -> Result<Vec<u8>, FormatError> {
        self.inner.finish_into_inner().map(|(_, bytes)| bytes)
    }
}

/// Moves the offset of an error found in a part of a file that starts at `base` (the
/// index envelope) to an offset in the whole file.
fn at_file_offset(e: FormatError, base: usize) -> FormatError {
    match e {
        FormatError::Truncated { what, offset, needed, have } => {
            FormatError::Truncated { what, offset: base.saturating_add(offset), needed, have }
        }
        FormatError::Invalid { what, offset, reason } => {
            FormatError::Invalid { what, offset: base.saturating_add(offset), reason }
        }
        FormatError::Checksum { what, offset, stored, computed } => {
            FormatError::Checksum { what, offset: base.saturating_add(offset), stored, computed }
        }
        e => e,
    }
}

/// Calls `f(key, value)` for each entry of a decompressed block payload, `varint
/// key_len, key, varint value_len, value` (§11), and returns how many there were.
/// Offsets in errors are within the payload.
fn decode_entries(raw: &[u8], f: &mut dyn FnMut(&[u8], &[u8])) -> Result<u32, FormatError> {
    let mut c = Cursor::new(raw);
    let mut seen = 0u32;
    while !c.is_empty() {
        let k = c.len_prefixed("snapshot key", BLOCK_RAW_MAX)?;
        let v = c.len_prefixed("snapshot value", BLOCK_RAW_MAX)?;
        f(k, v);
        seen = seen.saturating_add(1);
    }
    Ok(seen)
}

/// Called with (state index, key, value) for each entry.
pub type EntryVisitor<'a> = dyn FnMut(u32, &[u8], &[u8]) + 'a;

/// A verified view of a snapshot file.
pub struct SnapshotReader<'a> {
    bytes: &'a [u8],
    pub index: SnapshotIndex,
}

impl<'a> SnapshotReader<'a> {
    /// Checks the footer and the index (and that every block lies inside the file).
    pub fn open(bytes: &'a [u8]) -> Result<Self, FormatError> {
        let n = bytes.len();
        let footer_at = n.checked_sub(FOOTER_LEN).ok_or(FormatError::Truncated {
            what: "snapshot footer",
            offset: 0,
            needed: FOOTER_LEN,
            have: n,
        })?;
        let mut file = Cursor::new(bytes);
        let blocks_and_index = file.take(footer_at, "snapshot")?;
        let index_offset = decode_footer(file.rest(), footer_at)?;
        let mut c = Cursor::new(blocks_and_index);
        // Anything past the end (or past usize) is refused by the cursor.
        let index_start = usize::try_from(index_offset).unwrap_or(usize::MAX);
        if c.skip(index_start, "snapshot blocks").is_err() {
            return Err(FormatError::Invalid {
                what: "snapshot footer",
                offset: footer_at,
                reason: format!("index offset {index_offset} past the end"),
            });
        }
        let index_bytes = c.rest();
        let (version, body) =
            envelope::decode(Kind::SnapshotIndex, index_bytes).map_err(|e| at_file_offset(e, index_start))?;
        if version != SNAPSHOT_VERSION {
            return Err(FormatError::Invalid {
                what: "snapshot version",
                offset: index_offset as usize,
                reason: format!("unsupported version {version}"),
            });
        }
        let index: SnapshotIndex = serde_json::from_slice(body).map_err(|e| FormatError::Invalid {
            what: "snapshot index",
            offset: index_offset as usize,
            reason: e.to_string(),
        })?;
        for b in &index.blocks {
            let end = b.offset.checked_add(u64::from(b.len));
            if end.is_none_or(|e| e > index_offset)
                || (b.len as usize) < BLOCK_HEADER_LEN
                || b.state as usize >= index.states.len()
                || !index.range.contains(KeyGroup(b.key_group))
            {
                return Err(FormatError::Invalid {
                    what: "snapshot index",
                    offset: index_offset as usize,
                    reason: format!("bad block entry {b:?}"),
                });
            }
        }
        Ok(SnapshotReader { bytes, index })
    }

    /// Verifies and decodes one block, calling `f(key, value)` for each entry.
    pub fn read_block(&self, b: &BlockRef, f: &mut dyn FnMut(&[u8], &[u8])) -> Result<(), FormatError> {
        let at = usize::try_from(b.offset).unwrap_or(usize::MAX);
        let mut file = Cursor::new(self.bytes);
        file.skip(at, "snapshot blocks")?;
        let mut block = Cursor::with_base(file.take(b.len as usize, "snapshot block")?, at);
        let h = BlockHeader::decode(&mut block)?;
        if h.state != b.state
            || h.key_group != b.key_group
            || h.entries != b.entries
            || BLOCK_HEADER_LEN + h.stored_len as usize != b.len as usize
        {
            return Err(FormatError::Invalid {
                what: "snapshot block",
                offset: at,
                reason: "header disagrees with the index".into(),
            });
        }
        let raw_len = h.raw_len as usize;
        if raw_len > BLOCK_RAW_MAX {
            return Err(FormatError::TooLarge {
                what: "snapshot block",
                len: raw_len as u64,
                max: BLOCK_RAW_MAX as u64,
            });
        }
        let payload = block.rest();
        let computed = crc32fast::hash(payload);
        if h.payload_crc != computed {
            return Err(FormatError::Checksum {
                what: "snapshot block",
                offset: at + BLOCK_HEADER_LEN,
                stored: h.payload_crc,
                computed,
            });
        }
        let raw = zstd::bulk::decompress(payload, raw_len).map_err(|e| FormatError::Invalid {
            what: "snapshot block",
            offset: at,
            reason: e.to_string(),
        })?;
        if raw.len() != raw_len {
            return Err(FormatError::Invalid {
                what: "snapshot block",
                offset: at,
                reason: format!("decompressed to {} bytes, header says {raw_len}", raw.len()),
            });
        }
        let seen = decode_entries(&raw, f)?;
        if seen != h.entries {
            return Err(FormatError::Invalid {
                what: "snapshot block",
                offset: at,
                reason: format!("{seen} entries, header says {}", h.entries),
            });
        }
        Ok(())
    }

    /// Every entry of the key groups in `clip`, block by block.
    pub fn for_each_in(&self, clip: KeyGroupRange, f: &mut EntryVisitor<'_>) -> Result<(), FormatError> {
        for b in self.index.blocks.iter().filter(|b| clip.contains(KeyGroup(b.key_group))) {
            let s = b.state;
            self.read_block(b, &mut |k, v| f(s, k, v))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::{StateKind, ValueEncoding};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::path::Path;

    fn states(n: usize) -> Vec<StateDescriptor> {
        (0..n)
            .map(|i| StateDescriptor {
                name: format!("s{i}"),
                kind: StateKind::Value,
                value: ValueEncoding::Bytes,
                user_key: None,
                ttl: None,
            })
            .collect()
    }

    type Model = BTreeMap<(u32, u16, Vec<u8>), Vec<u8>>;

    fn write(model: &Model, range: KeyGroupRange) -> Vec<u8> {
        let mut w = SnapshotWriter::new(states(3), range);
        for ((s, kg, k), v) in model.iter().filter(|((_, kg, _), _)| range.contains(KeyGroup(*kg))) {
            w.add(*s, KeyGroup(*kg), k, v).expect("add");
        }
        w.finish().expect("finish")
    }

    fn entries() -> impl Strategy<Value = Model> {
        proptest::collection::btree_map(
            (0u32..3, 0u16..16, proptest::collection::vec(any::<u8>(), 0..12)),
            proptest::collection::vec(any::<u8>(), 0..300),
            0..200,
        )
    }

    proptest! {
        /// Invariant 11.1: snapshots taken by `n` shards, read back clipped to the ranges
        /// of `m` shards, give every entry exactly once, on the shard owning its group.
        #[test]
        fn rescale_round_trip(model in entries(), n in 1u32..5, m in 1u32..6) {
            let g = 16u32;
            let files: Vec<Vec<u8>> = (0..n).map(|i| write(&model, crate::keygroup::range_for_shard(crate::keygroup::ShardId(i as u16), n, g))).collect();
            let mut back = Model::new();
            for j in 0..m {
                let r = crate::keygroup::range_for_shard(crate::keygroup::ShardId(j as u16), m, g);
                for f in &files {
                    let rd = SnapshotReader::open(f).expect("open");
                    // Reading key groups of each block's header keeps us honest: check
                    // the group via the index, entries via the model.
                    for b in rd.index.blocks.clone() {
                        if !r.contains(KeyGroup(b.key_group)) { continue; }
                        rd.read_block(&b, &mut |k, v| {
                            let fresh = back.insert((b.state, b.key_group, k.to_vec()), v.to_vec()).is_none();
                            assert!(fresh, "entry read twice");
                        }).expect("block");
                    }
                }
            }
            prop_assert_eq!(back, model);
        }

        /// Invariant 11.2: any single bit flip is detected when the file is read.
        #[test]
        fn bit_flips_are_detected(model in entries(), bit in any::<usize>()) {
            prop_assume!(!model.is_empty());
            let mut f = write(&model, KeyGroupRange { start: 0, end: 16 });
            let bit = bit % (f.len() * 8);
            if let Some(b) = f.get_mut(bit / 8) { *b ^= 1 << (bit % 8); }
            let result = SnapshotReader::open(&f).and_then(|rd| rd.for_each_in(KeyGroupRange { start: 0, end: 16 }, &mut |_, _, _| {}));
            prop_assert!(result.is_err());
        }
    }

    fn sample() -> Vec<u8> {
        let mut model = Model::new();
        for (i, kg) in [0u16, 0, 3, 3, 3].iter().enumerate() {
            model.insert((i as u32 % 2, *kg, vec![i as u8; i + 1]), vec![0xa0 + i as u8; 3 * i]);
        }
        write(&model, KeyGroupRange { start: 0, end: 4 })
    }

    #[test]
    fn header_fields_sit_at_their_offsets() {
        let h = BlockHeader {
            state: 0x0403_0201,
            key_group: 0x0605,
            entries: 0x0a09_0807,
            raw_len: 0x0e0d_0c0b,
            stored_len: 0x1211_100f,
            payload_crc: 0x1615_1413,
        };
        let bytes = h.encode();
        let field = |offset: usize, size: usize| bytes.get(offset..offset + size).map(<[u8]>::to_vec);
        assert_eq!(field(BLOCK_MAGIC_OFFSET, BLOCK_MAGIC_SIZE), Some(b"SLBK".to_vec()));
        assert_eq!(field(BLOCK_STATE_OFFSET, BLOCK_STATE_SIZE), Some(vec![1, 2, 3, 4]));
        assert_eq!(field(BLOCK_KEY_GROUP_OFFSET, BLOCK_KEY_GROUP_SIZE), Some(vec![5, 6]));
        assert_eq!(field(BLOCK_RESERVED_OFFSET, BLOCK_RESERVED_SIZE), Some(vec![0, 0]));
        assert_eq!(field(BLOCK_ENTRIES_OFFSET, BLOCK_ENTRIES_SIZE), Some(vec![7, 8, 9, 10]));
        assert_eq!(field(BLOCK_RAW_LEN_OFFSET, BLOCK_RAW_LEN_SIZE), Some(vec![11, 12, 13, 14]));
        assert_eq!(field(BLOCK_STORED_LEN_OFFSET, BLOCK_STORED_LEN_SIZE), Some(vec![15, 16, 17, 18]));
        assert_eq!(field(BLOCK_PAYLOAD_CRC_OFFSET, BLOCK_PAYLOAD_CRC_SIZE), Some(vec![19, 20, 21, 22]));
        let crc = crc32fast::hash(bytes.get(..BLOCK_HEADER_CRC_OFFSET).unwrap_or_default());
        assert_eq!(field(BLOCK_HEADER_CRC_OFFSET, BLOCK_HEADER_CRC_SIZE), Some(crc.to_le_bytes().to_vec()));
        assert_eq!(BlockHeader::decode(&mut Cursor::new(&bytes)).ok(), Some(h));

        let f = encode_footer(0x0807_0605_0403_0201);
        assert_eq!(f.get(FOOTER_MAGIC_OFFSET..FOOTER_MAGIC_OFFSET + FOOTER_MAGIC_SIZE), Some(&b"SLSN"[..]));
        assert_eq!(
            f.get(FOOTER_INDEX_OFFSET_OFFSET..FOOTER_INDEX_OFFSET_OFFSET + FOOTER_INDEX_OFFSET_SIZE),
            Some(&[1, 2, 3, 4, 5, 6, 7, 8][..])
        );
        assert_eq!(decode_footer(&f, 0).ok(), Some(0x0807_0605_0403_0201));
    }

    /// A valid file cut anywhere inside a block, a block header, a block's entries or
    /// the footer gives a typed `Truncated` error naming the part, never a panic or a
    /// partial success.
    #[test]
    fn truncation_at_every_offset_is_a_typed_error() {
        let file = sample();
        let rd = SnapshotReader::open(&file).expect("open");
        assert!(rd.index.blocks.len() >= 3);
        for b in &rd.index.blocks {
            let (at, len) = (b.offset as usize, b.len as usize);
            for cut in at..at + len {
                // The index still promises the whole block; the bytes end early.
                let short = SnapshotReader { bytes: file.get(..cut).unwrap_or_default(), index: rd.index.clone() };
                let e = short.read_block(b, &mut |_, _| {});
                assert!(matches!(e, Err(FormatError::Truncated { what: "snapshot block", .. })), "cut {cut}: {e:?}");
            }
            let block = file.get(at..at + len).unwrap_or_default();
            for cut in 0..BLOCK_HEADER_LEN {
                let e = BlockHeader::decode(&mut Cursor::with_base(block.get(..cut).unwrap_or_default(), at));
                assert!(
                    matches!(e, Err(FormatError::Truncated { what: "snapshot block header", offset, .. }) if offset == at),
                    "header cut {cut}: {e:?}"
                );
            }
            let h = BlockHeader::decode(&mut Cursor::new(block)).expect("header");
            let raw = zstd::bulk::decompress(block.get(BLOCK_HEADER_LEN..).unwrap_or_default(), h.raw_len as usize)
                .expect("payload");
            // Entry boundaries: a cut there is a shorter, valid payload.
            let mut boundaries = vec![0];
            let mut pos = 0;
            decode_entries(&raw, &mut |k, v| {
                pos += varint::len(k.len() as u64) + k.len() + varint::len(v.len() as u64) + v.len();
                boundaries.push(pos);
            })
            .expect("entries");
            for cut in 0..raw.len() {
                let e = decode_entries(raw.get(..cut).unwrap_or_default(), &mut |_, _| {});
                match boundaries.iter().position(|b| *b == cut) {
                    Some(n) => assert_eq!(e.ok(), Some(n as u32), "cut {cut} at an entry boundary"),
                    None => assert!(
                        matches!(e, Err(FormatError::Truncated { what: "snapshot key" | "snapshot value", .. })),
                        "entries cut {cut}: {e:?}"
                    ),
                }
            }
        }
        for cut in 0..file.len() {
            let e = SnapshotReader::open(file.get(..cut).unwrap_or_default());
            if cut < FOOTER_LEN {
                assert!(matches!(e, Err(FormatError::Truncated { what: "snapshot footer", .. })), "cut {cut}");
            } else {
                assert!(e.is_err(), "a file cut at {cut} must not open");
            }
        }
    }

    /// A destination that takes at most `chunk` bytes per `write` call (so `write_all`
    /// loops), records what it got in a shared buffer, and fails once `fail_after` bytes
    /// were taken.
    struct Chunked {
        got: std::rc::Rc<std::cell::RefCell<Vec<u8>>>,
        chunk: usize,
        fail_after: Option<usize>,
    }

    impl Write for Chunked {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            let mut got = self.got.borrow_mut();
            let room = self.fail_after.map_or(usize::MAX, |n| n.saturating_sub(got.len()));
            if room == 0 {
                return Err(std::io::Error::other("disk full"));
            }
            let n = buf.len().min(self.chunk).min(room);
            got.extend_from_slice(buf.get(..n).unwrap_or_default());
            Ok(n)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn stream(model: &Model, range: KeyGroupRange, w: Chunked) -> Result<SnapshotSummary, FormatError> {
        let mut s = SnapshotWriter::to_writer(states(3), range, w, PathBuf::from("/ck/shard-0.snapshot"));
        for ((st, kg, k), v) in model.iter().filter(|((_, kg, _), _)| range.contains(KeyGroup(*kg))) {
            s.add(*st, KeyGroup(*kg), k, v)?;
        }
        s.finish()
    }

    proptest! {
        /// Invariant: streaming a snapshot writes exactly the bytes the in-memory writer
        /// returns, however the destination splits its writes, and the summary is the
        /// size and crc32 of those bytes.
        #[test]
        fn streaming_is_byte_identical(model in entries(), chunk in 1usize..5000, start in 0u16..8) {
            let range = KeyGroupRange { start, end: 16 };
            let whole = write(&model, range);
            let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let summary = stream(&model, range, Chunked { got: got.clone(), chunk, fail_after: None }).expect("stream");
            prop_assert!(*got.borrow() == whole, "streamed bytes differ");
            prop_assert_eq!(summary, SnapshotSummary { size: whole.len() as u64, crc32: crc32fast::hash(&whole) });
        }
    }

    #[test]
    fn blocks_reach_the_destination_as_they_are_cut() {
        let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let w = Chunked { got: got.clone(), chunk: usize::MAX, fail_after: None };
        let mut s = SnapshotWriter::to_writer(states(1), KeyGroupRange { start: 0, end: 1 }, w, PathBuf::from("f"));
        let mut i = 0u32;
        while got.borrow().is_empty() {
            s.add(0, KeyGroup(0), &i.to_be_bytes(), &[i as u8; 100]).expect("add");
            i += 1;
            assert!((i as usize) * 100 <= 2 * BLOCK_RAW_TARGET, "a full block was held back");
        }
        assert_eq!(s.written(), got.borrow().len() as u64);
        let summary = s.finish().expect("finish");
        let bytes = got.borrow().clone();
        assert_eq!(summary.size, bytes.len() as u64);
        let mut n = 0;
        SnapshotReader::open(&bytes)
            .and_then(|rd| rd.for_each_in(KeyGroupRange { start: 0, end: 1 }, &mut |_, _, _| n += 1))
            .expect("read");
        assert_eq!(n, i);
    }

    #[test]
    fn a_failed_write_is_an_io_error_naming_the_path_and_poisons_the_writer() {
        let mut model = Model::new();
        for i in 0..2000u32 {
            model.insert((0, (i % 4) as u16, i.to_be_bytes().to_vec()), vec![i as u8; 300]);
        }
        let range = KeyGroupRange { start: 0, end: 16 };
        let whole = write(&model, range);
        for fail_after in [0, 1, 100, whole.len() / 2, whole.len() - 20, whole.len() - 1] {
            let got = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
            let w = Chunked { got, chunk: 7, fail_after: Some(fail_after) };
            let mut s = SnapshotWriter::to_writer(states(3), range, w, PathBuf::from("/ck/shard-0.snapshot"));
            let mut first = None;
            for ((st, kg, k), v) in &model {
                if let Err(e) = s.add(*st, KeyGroup(*kg), k, v) {
                    first = Some(e);
                    break;
                }
            }
            let e = match first {
                Some(e) => {
                    // Poisoned: nothing more is accepted, and finish never reports success.
                    let again = s.add(2, KeyGroup(15), b"z", b"");
                    assert!(matches!(again, Err(FormatError::Invalid { what: "snapshot writer", .. })), "{again:?}");
                    assert!(s.finish().is_err());
                    e
                }
                None => s.finish().expect_err("the destination failed"),
            };
            assert!(
                matches!(&e, FormatError::Io { path, .. } if path == Path::new("/ck/shard-0.snapshot")),
                "fail after {fail_after}: {e:?}"
            );
        }
    }

    #[test]
    fn an_entry_no_reader_would_accept_is_refused() {
        let mut w = SnapshotWriter::new(states(1), KeyGroupRange { start: 0, end: 1 });
        let huge = vec![0u8; BLOCK_RAW_MAX];
        let e = w.add(0, KeyGroup(0), b"k", &huge);
        assert!(matches!(e, Err(FormatError::TooLarge { what: "snapshot entry", .. })), "{e:?}");
        w.add(0, KeyGroup(0), b"l", b"fits").expect("the writer is still usable");
        assert!(w.finish().is_ok());
    }

    #[test]
    fn writer_rejects_misordered_input() {
        let mut w = SnapshotWriter::new(states(1), KeyGroupRange { start: 0, end: 4 });
        w.add(0, KeyGroup(1), b"b", b"").expect("first");
        assert!(w.add(0, KeyGroup(1), b"a", b"").is_err(), "keys must increase");
        assert!(w.add(0, KeyGroup(0), b"z", b"").is_err(), "groups must increase");
        assert!(w.add(0, KeyGroup(9), b"z", b"").is_err(), "group outside the range");
    }

    #[test]
    fn large_groups_split_into_bounded_blocks() {
        let mut w = SnapshotWriter::new(states(1), KeyGroupRange { start: 0, end: 1 });
        for i in 0..20_000u32 {
            w.add(0, KeyGroup(0), &i.to_be_bytes(), &[7u8; 40]).expect("add");
        }
        let f = w.finish().expect("finish");
        let rd = SnapshotReader::open(&f).expect("open");
        assert!(rd.index.blocks.len() > 1, "cut at the target size");
        let mut n = 0;
        rd.for_each_in(KeyGroupRange { start: 0, end: 1 }, &mut |_, _, _| n += 1).expect("read");
        assert_eq!(n, 20_000);
    }
}
