//! Background work yields to processing: a savepoint is written on a thread of lower CPU
//! priority than the shards, and throttled to a duty cycle (`Throttle`), so on a machine
//! whose cores the shards keep busy (or whose second vCPU is the shards' hyperthread
//! sibling) a savepoint takes longer instead of taking throughput away
//! (docs/CHECKPOINTING.md, "Savepoints"). Checkpoints are not throttled: their latency
//! bounds how much a restart replays.
use std::time::{Duration, Instant};

/// The nice value of a savepoint's writer thread. At nice 10 the kernel gives it about
/// a tenth of a core that a shard (nice 0) keeps busy (CFS weights 110 against 1024), and
/// all of an idle one.
pub const BACKGROUND_NICE: i32 = 10;

/// A duty cycle for background work: after each `SLICE` of work, a pause so that work
/// takes `duty` of the wall time.
#[derive(Debug)]
pub struct Throttle {
    duty: f64,
    since: Instant,
}

impl Throttle {
    /// Work runs in slices this long before a pause.
    pub const SLICE: Duration = Duration::from_millis(20);

    pub fn new(duty: f64) -> Self {
        Throttle { duty: duty.clamp(0.01, 1.0), since: Instant::now() }
    }

    /// Called between small pieces of work: pauses once a slice has been used.
    pub fn tick(&mut self) {
        let worked = self.since.elapsed();
        if worked >= Self::SLICE && self.duty < 1.0 {
            std::thread::sleep(worked.mul_f64((1.0 - self.duty) / self.duty));
            self.since = Instant::now();
        }
    }
}

/// A writer that pauses as its [`Throttle`] says between writes.
pub struct Throttled<W> {
    pub inner: W,
    pub throttle: Throttle,
}

impl<W: std::io::Write> std::io::Write for Throttled<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.throttle.tick();
        self.inner.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Lowers the calling thread's CPU priority to `nice` (Linux: the nice value is per
/// thread). A failure is logged and ignored: the thread then runs at normal priority.
pub fn lower_current_thread(nice: i32) {
    if let Err(e) = set_nice(nice) {
        tracing::debug!(nice, error = %e, "cannot lower the thread's priority");
    }
}

#[allow(unsafe_code)]
fn set_nice(nice: i32) -> std::io::Result<()> {
    // SAFETY: setpriority takes plain integers and touches no memory of ours; with
    // PRIO_PROCESS and who = 0 Linux applies it to the calling thread only.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, nice) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
