//! The request/close handshake between the coordinator and the shards' producers: the
//! coordinator requests checkpoint n; each producer, between batches, sees it and emits
//! barrier n; once every source has ended and answered every request, the job closes and
//! no checkpoint is requested again.
//!
//! With periodic checkpoints, the end of the input is checkpointed too (Flink's final
//! checkpoint, FLIP-147): when the last source ends, the coordinator hears of it
//! ([`Barriers::input_ended`]) and requests one more checkpoint, marked final, and the
//! producers close only once that request is made and answered. A restart after the end
//! then resumes from the end, not from the last periodic checkpoint.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use crossbeam_channel::{Receiver, Sender};
use event_listener::{Event, EventListener};

/// The request/close handshake between the coordinator and the producers.
pub struct Barriers {
    state: Mutex<BarrierState>,
    finished: AtomicUsize,
    shards: usize,
    /// Notified when a checkpoint is requested or a source ends: wakes producers whose
    /// source has ended and that wait to close.
    changed: Event,
    /// Whether the end of the input waits for a final checkpoint (periodic checkpoints
    /// are configured).
    wants_final: bool,
    /// One message when the last source ends (for the coordinator's wait).
    ended: (Sender<()>, Receiver<()>),
    /// Notified when a checkpoint is published or the final one is declined: wakes the
    /// shards' sink committers.
    completion: Event,
}

struct BarrierState {
    requested: u64,
    /// The newest barrier that is a savepoint's (0: none).
    savepoint: u64,
    /// The final checkpoint's barrier (0: not requested yet).
    final_id: u64,
    closed: bool,
    /// The newest checkpoint published (0: none in this attempt).
    completed: u64,
    /// The final checkpoint was declined: what waited for it is not committed.
    final_declined: bool,
}

/// How the final checkpoint ended, for those waiting on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalOutcome {
    /// Published: the newest checkpoint completed.
    Published(u64),
    Declined(Completion),
    JobFailed,
}

/// Where the shards' commits stand: the newest checkpoint published, the final
/// checkpoint's id (0: not requested) and whether it was declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    pub completed: u64,
    pub final_id: u64,
    pub final_declined: bool,
}

impl Barriers {
    /// `last`: the checkpoint this attempt restored (0: none). `wants_final`: the input's
    /// end is checkpointed before the producers close (see the module's docs).
    pub fn new(shards: usize, last: u64, wants_final: bool) -> Self {
        Barriers {
            state: Mutex::new(BarrierState {
                requested: last,
                savepoint: 0,
                final_id: 0,
                closed: false,
                completed: 0,
                final_declined: false,
            }),
            finished: AtomicUsize::new(0),
            shards,
            changed: Event::new(),
            wants_final,
            ended: crossbeam_channel::bounded(1),
            completion: Event::new(),
        }
    }

    /// Checkpoint `id` is published: sinks may commit what waited for it.
    pub(crate) fn complete(&self, id: u64) {
        let mut s = self.lock();
        s.completed = s.completed.max(id);
        drop(s);
        self.completion.notify(usize::MAX);
    }

    /// The final checkpoint was declined: the shards' last commit will not come.
    pub(crate) fn decline_final(&self) {
        self.lock().final_declined = true;
        self.completion.notify(usize::MAX);
    }

    /// Where commits stand.
    pub fn completion(&self) -> Completion {
        let s = self.lock();
        Completion { completed: s.completed, final_id: s.final_id, final_declined: s.final_declined }
    }

    /// A listener notified at the next completion. Create it before looking at
    /// [`Self::completion`], so a change in between is not missed.
    pub fn listen_completion(&self) -> EventListener {
        self.completion.listen()
    }

    /// Waits until the final checkpoint is published (its id), declined, or the job
    /// failed (`failed`, raised on another thread, is seen within `check`).
    pub async fn final_outcome(&self, failed: &AtomicBool, check: std::time::Duration) -> FinalOutcome {
        loop {
            let listener = self.listen_completion();
            let c = self.completion();
            if c.final_id != 0 && c.completed >= c.final_id {
                return FinalOutcome::Published(c.completed);
            }
            if c.final_declined {
                return FinalOutcome::Declined(c);
            }
            if failed.load(Ordering::Relaxed) {
                return FinalOutcome::JobFailed;
            }
            futures_lite::future::or(listener, glommio::timer::sleep(check)).await;
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
        if self.finished.fetch_add(1, Ordering::SeqCst) + 1 == self.shards {
            // Bounded(1) and sent once: never full.
            let _ = self.ended.0.try_send(());
        }
        self.changed.notify(usize::MAX);
    }

    /// Receives one message when every source has ended.
    pub fn input_ended(&self) -> &Receiver<()> {
        &self.ended.1
    }

    /// A listener notified at the next request or source end. Create it before looking
    /// at the state, so a change in between is not missed.
    pub fn listen(&self) -> EventListener {
        self.changed.listen()
    }

    /// A producer whose source has ended may leave once every source has ended, the
    /// final checkpoint (if one is wanted) is requested, and it has answered every
    /// request; after that no checkpoint is requested again.
    pub fn try_close(&self, emitted: u64) -> bool {
        let mut s = self.lock();
        let final_asked = !self.wants_final || s.final_id != 0;
        if self.finished.load(Ordering::SeqCst) >= self.shards && final_asked && s.requested <= emitted {
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

    /// Whether barrier `id` is the final checkpoint's (taken after every source ended).
    pub fn is_final(&self, id: u64) -> bool {
        self.lock().final_id == id
    }

    /// Requests checkpoint `id` (a savepoint's barrier with `savepoint`); false once the
    /// job is closing.
    pub(crate) fn request(&self, id: u64, savepoint: bool) -> bool {
        self.request_kind(id, savepoint, false)
    }

    /// Requests the final checkpoint, `id` (call once every source has ended); false once
    /// the job is closing.
    pub(crate) fn request_final(&self, id: u64) -> bool {
        self.request_kind(id, false, true)
    }

    fn request_kind(&self, id: u64, savepoint: bool, last: bool) -> bool {
        let mut s = self.lock();
        if s.closed {
            return false;
        }
        s.requested = id;
        if savepoint {
            s.savepoint = id;
        }
        if last {
            s.final_id = id;
        }
        drop(s);
        self.changed.notify(usize::MAX);
        true
    }
}
