//! The ledger's background threads (the sequencer, woken by requests, and the checkpointer, whose signing
//! can wait for a tick): named, and scheduled so that waking one never preempts a request.

use std::thread::JoinHandle;

/// Spawns `f` on a thread called `name`, in the `SCHED_BATCH` scheduling class on Linux.
///
/// Why: the sequencer is woken by nearly every request's entry. In the normal class the
/// scheduler hands a woken thread the CPU at once, so on a busy core it committed batches of one or
/// two requests' entries and paid an fsync, and two context switches, for each. A batch-class thread is
/// never switched in on wake-up: it runs when the request threads block or at the next tick, and by
/// then every request that has reached the ledger has queued its entry. Its share of the CPU (its nice
/// value) is unchanged, so it cannot be starved. LEDGER.md ("Batch size") says why;
/// `docs/performance.md` ("Scheduling class") has the measurements.
pub fn spawn_background<T, F>(name: &str, f: F) -> std::io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            batch_class();
            f()
        })
}

/// Moves the calling thread to `SCHED_BATCH` at nice 0 (the crate sets a nice value with the class; a
/// gateway started under `nice` cannot lower it, and then only that step fails). Failing costs only
/// batching, so it is logged, not fatal.
#[cfg(target_os = "linux")]
fn batch_class() {
    use thread_priority::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadPriority, ThreadPriorityOsValue, ThreadSchedulePolicy,
    };
    if let Err(e) = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Os(ThreadPriorityOsValue::default()),
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch),
    ) {
        tracing::warn!(error = ?e, "could not fully move a background thread to the batch scheduling class");
    }
}

#[cfg(not(target_os = "linux"))]
fn batch_class() {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use thread_priority::{
        thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
    };

    #[test]
    fn background_threads_run_in_the_batch_class() {
        let policy = super::spawn_background("t", thread_schedule_policy)
            .unwrap()
            .join()
            .unwrap()
            .unwrap();
        assert_eq!(
            policy,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Batch)
        );
    }
}
