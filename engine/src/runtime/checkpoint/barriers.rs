//! The request/close handshake between the coordinator and the shards' producers: the
//! coordinator requests checkpoint n; each producer, between batches, sees it and emits
//! barrier n; once every source has ended and answered every request, the job closes and
//! no checkpoint is requested again.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use event_listener::{Event, EventListener};

/// The request/close handshake between the coordinator and the producers.
pub struct Barriers {
    state: Mutex<BarrierState>,
    finished: AtomicUsize,
    shards: usize,
    /// Notified when a checkpoint is requested or a source ends: wakes producers whose
    /// source has ended and that wait to close.
    changed: Event,
}

struct BarrierState {
    requested: u64,
    /// The newest barrier that is a savepoint's (0: none).
    savepoint: u64,
    closed: bool,
}

impl Barriers {
    pub fn new(shards: usize, last: u64) -> Self {
        Barriers {
            state: Mutex::new(BarrierState { requested: last, savepoint: 0, closed: false }),
            finished: AtomicUsize::new(0),
            shards,
            changed: Event::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BarrierState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A checkpoint newer than `emitted`, if one is requested.
    pub fn pending(&self, emitted: u64) -> Option<u64> {
        let r = self.lock().requested;
        (r > emitted).then_some(r)
    }

    pub fn source_finished(&self) {
        self.finished.fetch_add(1, Ordering::SeqCst);
        self.changed.notify(usize::MAX);
    }

    /// A listener notified at the next request or source end. Create it before looking
    /// at the state, so a change in between is not missed.
    pub fn listen(&self) -> EventListener {
        self.changed.listen()
    }

    /// A producer whose source has ended may leave once every source has ended and it
    /// has answered every request; after that no checkpoint is requested again.
    pub fn try_close(&self, emitted: u64) -> bool {
        let mut s = self.lock();
        if self.finished.load(Ordering::SeqCst) >= self.shards && s.requested <= emitted {
            s.closed = true;
            return true;
        }
        false
    }

    /// Whether barrier `id` is a savepoint's (shards then take a native snapshot
    /// whatever the checkpoint settings: the coordinator writes the savepoint's form).
    pub fn is_savepoint(&self, id: u64) -> bool {
        self.lock().savepoint == id
    }

    /// Requests checkpoint `id` (a savepoint's barrier with `savepoint`); false once the
    /// job is closing.
    pub(crate) fn request(&self, id: u64, savepoint: bool) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        s.requested = id;
        if savepoint {
            s.savepoint = id;
        }
        drop(s);
        self.changed.notify(usize::MAX);
        true
    }
}
