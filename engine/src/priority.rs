//! Background threads yield to processing: the checkpoint coordinator (which copies
//! SSTs, encodes snapshots and writes savepoints) runs at a lower CPU priority than the
//! shards, so on a machine whose cores the shards keep busy, a savepoint or checkpoint
//! takes longer instead of taking throughput away (docs/CHECKPOINTING.md, "Savepoints").

/// The nice value of the coordinator thread. At nice 10 the kernel gives it about a
/// tenth of a core that a shard (nice 0) keeps busy (CFS weights 110 against 1024), and
/// all of an idle one.
pub const BACKGROUND_NICE: i32 = 10;

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
