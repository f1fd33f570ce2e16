//! The worker loop: starts ready jobs on a [`JobRunner`], reaps them (a panicking runner
//! ends its job as failed) and stops at shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::*;

/// Longest sleep of the worker loop without a reason to wake (re-checks limits).
pub(super) const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// Runs jobs until `shutdown` fires, then asks running jobs to stop at their next step
/// boundary ([`Queue::begin_shutdown`]) and waits for them; they and the queued jobs stay
/// queued (in the store, for the restart).
pub async fn run_workers(
    queue: Arc<Queue>,
    runner: Arc<dyn JobRunner>,
    shutdown: CancellationToken,
) {
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut by_task: HashMap<tokio::task::Id, StartedJob> = HashMap::new();
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        let (started, wake) = queue.start_ready(&shutdown);
        for job in started {
            let queue2 = Arc::clone(&queue);
            let runner = Arc::clone(&runner);
            let job2 = job.clone();
            let handle = tasks.spawn(async move {
                let budget = JobBudget::new(queue2.budget());
                let outcome = runner.run(&job2.record, &budget, &job2.cancel).await;
                queue2.finish(&job2, outcome, budget.refused());
            });
            by_task.insert(handle.id(), job);
        }
        let sleep = wake.unwrap_or(IDLE_RECHECK).min(IDLE_RECHECK);
        tokio::select! {
            () = queue.notify.notified() => {}
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                reap(&queue, &mut by_task, joined);
            }
            () = tokio::time::sleep(sleep) => {}
            () = shutdown.cancelled() => break,
        }
    }
    queue.begin_shutdown();
    while let Some(joined) = tasks.join_next_with_id().await {
        reap(&queue, &mut by_task, joined);
    }
}

pub(super) fn reap(
    queue: &Queue,
    by_task: &mut HashMap<tokio::task::Id, StartedJob>,
    joined: Result<(tokio::task::Id, ()), tokio::task::JoinError>,
) {
    match joined {
        Ok((task, ())) => {
            by_task.remove(&task);
        }
        Err(e) => {
            if let Some(job) = by_task.remove(&e.id()) {
                tracing::error!(job = job.record.id, table = %job.record.item.key, "The job runner panicked.");
                queue.finish(
                    &job,
                    JobOutcome::Failed {
                        kind: "panic".into(),
                        error: "the job runner panicked".into(),
                        retryable: false,
                    },
                    None,
                );
            }
        }
    }
}
