//! Starting and finishing jobs: concurrency caps and (probed, not taken) merge-rate limits
//! checked when a job is about to start, retries with backoff, cool-downs and final outcomes.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::*;

impl Queue {
    /// Starts every job the limits allow now. Returns them and, if something is waiting for
    /// a time (backoff, rate limit), how long until the next check is worth it.
    pub fn start_ready(&self, parent: &CancellationToken) -> (Vec<StartedJob>, Option<Duration>) {
        let now = self.clock.now();
        let mono = self.clock.elapsed();
        let mut inner = self.lock();
        let mut wake: Option<Duration> = None;
        let mut soon = |d: Duration| wake = Some(wake.map_or(d, |w: Duration| w.min(d)));
        let mut order: Vec<_> = inner
            .active
            .values()
            .filter(|e| e.record.state == JobState::Queued)
            .map(|e| (e.order(), e.record.id))
            .collect();
        order.sort_unstable();
        let mut started = Vec::new();
        for (_, id) in order {
            let inner = &mut *inner;
            let Some(entry) = inner.active.get_mut(&id) else {
                continue;
            };
            if let Some(nb) = entry.record.not_before
                && nb > now
            {
                soon(nb.duration_since(now).unwrap_or_default());
                continue;
            }
            if inner.running >= self.settings.max_concurrent {
                if entry.waited & WAIT_CONCURRENCY == 0 {
                    entry.waited |= WAIT_CONCURRENCY;
                    inc_limit(&self.metrics, "concurrency");
                }
                break;
            }
            let cluster = entry.record.item.key.cluster.clone();
            let running_here = inner
                .running_per_cluster
                .get(&cluster)
                .copied()
                .unwrap_or(0);
            if running_here >= self.settings.max_concurrent_per_cluster {
                if entry.waited & WAIT_CLUSTER_CONCURRENCY == 0 {
                    entry.waited |= WAIT_CLUSTER_CONCURRENCY;
                    inc_limit(&self.metrics, "cluster_concurrency");
                }
                continue;
            }
            // Start a job only while the merges-per-hour limits would admit its merge; the
            // start itself is taken by the runner when it merges (see `budget`).
            if let Err(refusal) = self.budget.probe_start(&cluster) {
                let global = refusal.limit == budget::limit::GLOBAL_RATE;
                let bit = if global {
                    WAIT_GLOBAL_RATE
                } else {
                    WAIT_CLUSTER_RATE
                };
                if entry.waited & bit == 0 {
                    entry.waited |= bit;
                    inc_limit(&self.metrics, refusal.limit);
                }
                soon(refusal.wait);
                if global {
                    break;
                }
                continue;
            }
            entry.record.state = JobState::Running;
            entry.record.attempts += 1;
            entry.record.started_at = Some(now);
            entry.record.not_before = None;
            entry.waited = 0;
            let record = entry.record.clone();
            inner.uncount_queued(&cluster);
            inner.running += 1;
            *inner.running_per_cluster.entry(cluster).or_default() += 1;
            let cancel = parent.child_token();
            inner.running_tokens.insert(record.id, cancel.clone());
            started.push(StartedJob {
                record,
                cancel,
                started: mono,
            });
        }
        self.update_gauges(&inner);
        (started, wake)
    }

    /// Records the end of an attempt. `budget_refused`: the runner's byte reservation was
    /// refused with this wait (the job is re-queued without counting the attempt).
    pub fn finish(&self, job: &StartedJob, outcome: JobOutcome, budget_refused: Option<Duration>) {
        let now = self.clock.now();
        let elapsed = self.clock.elapsed().saturating_sub(job.started);
        let mut inner = self.lock();
        let id = job.record.id;
        inner.running_tokens.remove(&id);
        let Some(mut entry) = inner.active.remove(&id) else {
            return;
        };
        let cluster = entry.record.item.key.cluster.clone();
        inner.running = inner.running.saturating_sub(1);
        if let Some(n) = inner.running_per_cluster.get_mut(&cluster) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.running_per_cluster.remove(&cluster);
            }
        }
        let produced = matches!(
            outcome,
            JobOutcome::Merged { .. } | JobOutcome::DryRun { .. }
        );
        let cancelled = job.cancel.is_cancelled();
        let requeue_after = if !entry.backed() {
            None
        } else if let (Some(wait), false) = (budget_refused, produced) {
            entry.record.attempts = entry.record.attempts.saturating_sub(1);
            Some(wait)
        } else if let JobOutcome::Failed {
            retryable: true, ..
        } = &outcome
            && !cancelled
            && entry.record.attempts < self.settings.retry.max_attempts
        {
            Some(
                self.settings
                    .retry
                    .delay(entry.record.attempts, rand::random::<f64>()),
            )
        } else {
            None
        };
        entry.record.outcome = Some(outcome.clone());
        if let Some(wait) = requeue_after {
            entry.record.state = JobState::Queued;
            entry.record.not_before = Some(now + wait);
            inner.count_queued(&cluster);
            inner.active.insert(id, entry);
        } else {
            inner.by_table.remove(&entry.record.item.key);
            entry.record.state = JobState::Finished;
            entry.record.finished_at = Some(now);
            let (strategy, merged) = match &outcome {
                JobOutcome::Merged {
                    strategy,
                    files_before,
                    files_after,
                    bytes_rewritten,
                    ..
                } => (
                    strategy.clone(),
                    Some((files_before.saturating_sub(*files_after), *bytes_rewritten)),
                ),
                JobOutcome::DryRun { strategy, .. } => (strategy.clone(), None),
                _ => ("none".to_owned(), None),
            };
            let labels = JobLabels {
                result: outcome.label().to_owned(),
                strategy,
            };
            self.metrics.jobs.get_or_create(&labels).inc();
            self.metrics
                .job_duration
                .get_or_create(&labels)
                .observe(elapsed.as_secs_f64());
            if let Some((files, bytes)) = merged {
                let c = ClusterLabels { cluster };
                self.metrics.files_removed.get_or_create(&c).inc_by(files);
                self.metrics.bytes_rewritten.get_or_create(&c).inc_by(bytes);
                if inner.cooldowns.len() >= 4096 {
                    inner.cooldowns.retain(|_, until| *until > now);
                }
                inner
                    .cooldowns
                    .insert(entry.record.item.key.clone(), now + self.settings.cooldown);
            }
            self.store.save_finished(&entry.record);
        }
        self.update_gauges(&inner);
        drop(inner);
        self.notify.notify_one();
    }
}
