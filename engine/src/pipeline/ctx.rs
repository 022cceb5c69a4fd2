//! Where a job file's errors point: the file, the line and column of a span, and the
//! field; and how paths in it resolve (relative to the file's directory).
use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::Error;

pub(super) struct Ctx<'a> {
    pub(super) file: &'a Path,
    pub(super) text: &'a str,
}

impl Ctx<'_> {
    pub(super) fn line_col(&self, span: Range<usize>) -> (usize, usize) {
        let before = self.text.get(..span.start).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, col)
    }
    pub(super) fn err(&self, span: Range<usize>, field: &str, msg: impl std::fmt::Display) -> Error {
        let (line, col) = self.line_col(span);
        Error::Config(format!("{}:{line}:{col}: field `{field}`: {msg}", self.file.display()))
    }
    /// A path in the job file is relative to the job file's directory.
    pub(super) fn path(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            return p.to_owned();
        }
        self.file.parent().map_or_else(|| p.to_owned(), |d| d.join(p))
    }
}
