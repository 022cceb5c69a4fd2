//! Bugs the tests plant on purpose, one switch each, to prove that the crash-image and
//! failure-injection tests of the checkpoint protocol catch them (docs/CHECKPOINTING.md, "Planted bugs").
//! Only this crate's own test build can turn one on, and only for the calling thread;
//! in every other build [`canary::planted`] is a constant `false`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Canary {
    /// Files are written without fsync before their rename (or, owned files, at all).
    SkipFileFsync,
    /// Step 3 (fsync every directory written to) is skipped.
    SkipDirFsync,
    /// `abort` also removes `shared/`, which older checkpoints borrow from.
    AbortClearsShared,
    /// Garbage collection ignores pinned checkpoints (`gc::plan_gc_keeping`).
    GcDropsPinned,
}

#[cfg(test)]
thread_local! {
    static PLANTED: std::cell::Cell<Option<Canary>> = const { std::cell::Cell::new(None) };
}

#[cfg(test)]
pub(crate) fn planted(c: Canary) -> bool {
    PLANTED.with(|p| p.get() == Some(c))
}

#[cfg(not(test))]
pub(crate) fn planted(_: Canary) -> bool {
    false
}

/// Runs `f` with no canary planted, then plants again what was planted: the state a
/// test starts from is built correctly, so only the operations under test are wrong.
#[cfg(test)]
pub(crate) fn paused<R>(f: impl FnOnce() -> R) -> R {
    let was = PLANTED.with(|p| p.replace(None));
    let r = f();
    PLANTED.with(|p| p.set(was));
    r
}

/// Runs `f` with `c` planted on this thread.
#[cfg(test)]
pub(crate) fn with<R>(c: Canary, f: impl FnOnce() -> R) -> R {
    struct Unplant;
    impl Drop for Unplant {
        fn drop(&mut self) {
            PLANTED.with(|p| p.set(None));
        }
    }
    PLANTED.with(|p| p.set(Some(c)));
    let _unplant = Unplant;
    f()
}
