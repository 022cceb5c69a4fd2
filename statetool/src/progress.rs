//! Progress on stderr for the verbs that read data, drawn only when stderr is a terminal
//! (`std::io::IsTerminal`); otherwise every bar is hidden and nothing is written, so
//! scripts and tests that capture stderr see only errors.
//!
//! The whole API:
//!
//! - [`Progress::entries`]`(total, label)`: entries read: the count, entries per second
//!   and the time elapsed, with a bar and the total when `total` is known
//!   (`Some(n)`), a spinner when not. `verbs::entries::for_each` makes one per read, so
//!   every verb that reads entries (`verify`, `dump`, `du`, `diff`, `inspect --entries`)
//!   shows it, and sets the detail to the shard being read (`shard 2/4`).
//! - [`Progress::bytes`]`(total, label)`: bytes copied out of `total`: a bar, the bytes,
//!   bytes per second, elapsed and the time left; for verbs that copy files.
//! - [`Progress::inc`]`(n)` adds to the count; [`Progress::detail`] sets the text after
//!   it; [`Progress::finish`], or dropping the value, clears the bar.
//! - [`suspend`]`(f)` runs `f` with the bars taken off the screen, for output written
//!   to the same terminal while a bar is shown (`verbs::out` does).
//!
//! Bars of several threads (`diff` reads both sides at once) share one
//! `indicatif::MultiProgress`, each on its own line. Updating a bar is an atomic add and a
//! time check; callers that count many small items should still add in batches
//! (`verbs::entries` adds every [`ENTRIES_PER_UPDATE`]).
use std::borrow::Cow;
use std::io::IsTerminal;
use std::sync::OnceLock;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many entries a reader counts before adding them to its bar: often enough for a
/// smooth count, rare enough that a bar costs nothing next to reading an entry.
pub const ENTRIES_PER_UPDATE: u64 = 1024;

/// How often a shown bar redraws on its own, so the elapsed time and the spinner move
/// while a shard is rebuilt or a large block is read and no count arrives.
const TICK: Duration = Duration::from_millis(200);

/// The bars of this process: drawn on stderr if it is a terminal, hidden otherwise.
fn multi() -> &'static MultiProgress {
    static MULTI: OnceLock<MultiProgress> = OnceLock::new();
    MULTI.get_or_init(|| {
        let target =
            if std::io::stderr().is_terminal() { ProgressDrawTarget::stderr() } else { ProgressDrawTarget::hidden() };
        MultiProgress::with_draw_target(target)
    })
}

/// Runs `f` (writing to stdout or stderr) with the bars cleared from the terminal, and
/// draws them again after; without a terminal, just runs `f`.
pub fn suspend<R>(f: impl FnOnce() -> R) -> R {
    multi().suspend(f)
}

/// One bar on stderr (see the module's documentation); cleared when dropped.
#[derive(Debug)]
pub struct Progress {
    bar: ProgressBar,
}

impl Progress {
    /// Counts entries read: `label`, the count (of `total` when known), entries per
    /// second, elapsed, and the detail.
    pub fn entries(total: Option<u64>, label: impl Into<Cow<'static, str>>) -> Progress {
        let template = match total {
            Some(_) => "{prefix} [{bar:30}] {human_pos}/{human_len} entries  {per_sec}  {elapsed}  {msg}",
            None => "{spinner} {prefix} {human_pos} entries  {per_sec}  {elapsed}  {msg}",
        };
        Progress::new(total, label, template)
    }

    /// Counts bytes copied out of `total`: `label`, a bar, bytes, bytes per second,
    /// elapsed, the time left, and the detail.
    pub fn bytes(total: u64, label: impl Into<Cow<'static, str>>) -> Progress {
        let template = "{prefix} [{bar:30}] {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  \
                        {elapsed} (left {eta})  {msg}";
        Progress::new(Some(total), label, template)
    }

    fn new(total: Option<u64>, label: impl Into<Cow<'static, str>>, template: &str) -> Progress {
        // The templates are constants of this file; one that did not parse would show
        // indicatif's default bar rather than fail the verb.
        let style = ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar());
        let bar =
            ProgressBar::with_draw_target(total, ProgressDrawTarget::hidden()).with_style(style.progress_chars("=> "));
        bar.set_prefix(label);
        let bar = multi().add(bar);
        if !multi().is_hidden() {
            bar.enable_steady_tick(TICK);
        }
        Progress { bar }
    }

    /// Adds `n` entries or bytes.
    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// Sets the text shown after the figures (`shard 2/4`).
    pub fn detail(&self, text: impl Into<Cow<'static, str>>) {
        self.bar.set_message(text);
    }

    /// The count so far.
    #[cfg_attr(not(test), expect(dead_code, reason = "only the tests read the count back"))]
    pub fn position(&self) -> u64 {
        self.bar.position()
    }

    /// Clears the bar (as dropping it does).
    pub fn finish(self) {
        drop(self);
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        multi().remove(&self.bar);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_count_and_clear() {
        // Pins: both kinds of bar count what is added to them, and a finished bar is
        // gone (dropping it twice over, as `finish` then drop would, does not panic).
        let e = Progress::entries(None, "reading");
        e.inc(ENTRIES_PER_UPDATE);
        e.inc(3);
        e.detail("shard 1/2");
        assert_eq!(e.position(), ENTRIES_PER_UPDATE + 3);
        e.finish();
        let b = Progress::bytes(100, "copying");
        b.inc(40);
        assert_eq!(b.position(), 40);
        let counted = Progress::entries(Some(10), "reading");
        counted.inc(10);
        assert_eq!(counted.position(), 10);
    }
}
