//! A file of lines, split across shards by byte range. A line belongs to the shard whose
//! range holds its first byte, so every line is read exactly once for any shard count.
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::sync::Arc;

use super::{trim_eol, LineParser, LocalBoxFuture, Source, SourceContext, SourceReader, Split};
use crate::badrecord::BadRecords;
use crate::error::Error;

const READ_BUFFER_BYTES: usize = 1 << 20;

pub struct FileSource<T> {
    path: PathBuf,
    parse: LineParser<T>,
    skip_header: bool,
}

impl FileSource<String> {
    /// One `String` per non-empty line.
    pub fn lines(path: impl Into<PathBuf>) -> Self {
        FileSource { path: path.into(), parse: super::utf8_lines(), skip_header: false }
    }
}

impl<T> FileSource<T> {
    pub fn with_parser(path: impl Into<PathBuf>, parse: LineParser<T>) -> Self {
        FileSource { path: path.into(), parse, skip_header: false }
    }

    /// Skips the file's first line (a CSV header).
    pub fn skip_header(mut self, skip: bool) -> Self {
        self.skip_header = skip;
        self
    }
}

impl<T: Send + 'static> Source<T> for FileSource<T> {
    fn name(&self) -> String {
        self.path.display().to_string()
    }

    fn check(&self) -> Result<(), Error> {
        let meta = std::fs::metadata(&self.path).map_err(|e| Error::io(&self.path, e))?;
        if !meta.is_file() {
            return Err(Error::io(&self.path, std::io::Error::other("not a regular file")));
        }
        File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        Ok(())
    }

    fn open(&self, ctx: &SourceContext) -> Result<Box<dyn SourceReader<T>>, Error> {
        let file = File::open(&self.path).map_err(|e| Error::io(&self.path, e))?;
        let len = file.metadata().map_err(|e| Error::io(&self.path, e))?.len();
        let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, file);
        let splits = match &ctx.restored {
            Some(s) => s.clone(),
            None => {
                let n = u64::from(ctx.shards.max(1));
                let i = u64::from(ctx.shard.0);
                let (start, end) = (len * i / n, len * (i + 1) / n);
                let mut scratch = Vec::new();
                let io = |e| Error::io(&self.path, e);
                let mut next = start;
                if start > 0 {
                    // Skip the tail of a line that started in the previous shard's range.
                    reader.seek(SeekFrom::Start(start - 1)).map_err(io)?;
                    next = start - 1 + reader.read_until(b'\n', &mut scratch).map_err(io)? as u64;
                } else if self.skip_header {
                    next = reader.read_until(b'\n', &mut scratch).map_err(io)? as u64;
                }
                vec![Split { id: ctx.shard.0.into(), next, end, step: 1 }]
            }
        };
        if splits.iter().any(|s| s.next > len) {
            return Err(Error::Config(format!(
                "{}: the file is shorter than the position being restored; it changed since the checkpoint",
                self.path.display()
            )));
        }
        Ok(Box::new(FileReader {
            name: self.name(),
            reader,
            splits,
            current: 0,
            positioned: false,
            parse: self.parse.clone(),
            bad: ctx.bad.clone(),
            line: Vec::new(),
        }))
    }
}

struct FileReader<T> {
    name: String,
    reader: BufReader<File>,
    /// Byte ranges; a line belongs to the split whose range holds its first byte and
    /// `next` is always the offset of a line start.
    splits: Vec<Split>,
    current: usize,
    /// Whether the reader sits at `splits[current].next`.
    positioned: bool,
    parse: LineParser<T>,
    bad: Arc<BadRecords>,
    line: Vec<u8>,
}

impl<T> FileReader<T> {
    fn read_sync(&mut self, out: &mut Vec<T>, max: usize) -> Result<bool, Error> {
        let start_len = out.len();
        while out.len() - start_len < max {
            let Some(split) = self.splits.get_mut(self.current) else { return Ok(false) };
            if split.next >= split.end {
                self.current += 1;
                self.positioned = false;
                continue;
            }
            if !self.positioned {
                self.reader.seek(SeekFrom::Start(split.next)).map_err(|e| Error::io(&self.name, e))?;
                self.positioned = true;
            }
            self.line.clear();
            let n = self.reader.read_until(b'\n', &mut self.line).map_err(|e| Error::io(&self.name, e))?;
            if n == 0 {
                split.next = split.end;
                continue;
            }
            let offset = split.next;
            split.next += n as u64;
            let line = trim_eol(&self.line);
            if line.is_empty() {
                continue;
            }
            if let Err(reason) = (self.parse)(line, out) {
                self.bad.report(&self.name, &format!("byte offset {offset}"), &reason, line)?;
            }
        }
        Ok(true)
    }
}

impl<T> SourceReader<T> for FileReader<T> {
    fn read<'a>(&'a mut self, out: &'a mut Vec<T>, max: usize) -> LocalBoxFuture<'a, Result<bool, Error>> {
        Box::pin(async move { self.read_sync(out, max) })
    }

    fn position(&self) -> Option<Vec<Split>> {
        Some(self.splits.clone())
    }
}
