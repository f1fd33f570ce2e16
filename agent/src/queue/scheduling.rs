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
        if inner.shutting_down {
            return (Vec::new(), None);
        }
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
        self.persist(&inner, started.iter().map(|j| j.record.id));
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
        if inner
            .active
            .get(&id)
            .is_none_or(|e| e.record.state != JobState::Running)
        {
            // Already given up on (drain timeout) or gone.
            return;
        }
        inner.running_tokens.remove(&id);
        let operator_cancel = inner.cancel_requested.remove(&id);
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
        let stopped_early = matches!(
            outcome,
            JobOutcome::Merged {
                stopped_early: true,
                ..
            }
        );
        entry.record.stopped = match (stopped_early, operator_cancel, inner.shutting_down) {
            (true, true, _) => Some(stop::CANCELLED.to_owned()),
            (true, false, true) => Some(stop::SHUTDOWN.to_owned()),
            _ => None,
        };
        let stopped_for_shutdown = entry.record.stopped.as_deref() == Some(stop::SHUTDOWN);
        let requeue_after = if !entry.backed() {
            None
        } else if stopped_for_shutdown {
            // Stopped at a step boundary because the agent stops: the attempt is not
            // counted, and the job continues after the restart.
            entry.record.attempts = entry.record.attempts.saturating_sub(1);
            if let JobOutcome::Merged { .. } = &outcome {
                self.count_merged(&cluster, &outcome);
            }
            Some(Duration::ZERO)
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
            entry.record.not_before = (!wait.is_zero()).then(|| now + wait);
            inner.count_queued(&cluster);
            inner.active.insert(id, entry);
            self.persist(&inner, [id]);
        } else {
            inner.by_table.remove(&entry.record.item.key);
            entry.record.state = JobState::Finished;
            entry.record.finished_at = Some(now);
            let (strategy, merged) = match &outcome {
                JobOutcome::Merged { strategy, .. } => (strategy.clone(), Some(())),
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
            if merged.is_some() {
                self.count_merged(&cluster, &outcome);
                if inner.cooldowns.len() >= 4096 {
                    inner.cooldowns.retain(|_, until| *until > now);
                }
                let until = now + self.settings.cooldown;
                inner.cooldowns.insert(entry.record.item.key.clone(), until);
                self.store.save_cooldown(&entry.record.item.key, until);
            }
            self.store.save_finished(&entry.record);
        }
        self.update_gauges(&inner);
        drop(inner);
        self.notify.notify_one();
    }
}

impl Queue {
    /// Counts a merge's files and bytes.
    fn count_merged(&self, cluster: &str, outcome: &JobOutcome) {
        if let JobOutcome::Merged {
            files_before,
            files_after,
            bytes_rewritten,
            ..
        } = outcome
        {
            let c = ClusterLabels {
                cluster: cluster.to_owned(),
            };
            self.metrics
                .files_removed
                .get_or_create(&c)
                .inc_by(files_before.saturating_sub(*files_after));
            self.metrics
                .bytes_rewritten
                .get_or_create(&c)
                .inc_by(*bytes_rewritten);
        }
    }

    /// The agent is stopping: no job starts any more, and running jobs are asked to stop at
    /// their next step boundary (their cancellation tokens fire, as for an operator's
    /// cancel); each is then queued again with `stopped: "shutdown"`.
    pub fn begin_shutdown(&self) {
        let mut inner = self.lock();
        inner.shutting_down = true;
        for token in inner.running_tokens.values() {
            token.cancel();
        }
        if inner.running > 0 {
            tracing::info!(
                running = inner.running,
                "Shutting down: running jobs stop at their next step boundary."
            );
        }
    }

    /// Gives up on jobs still running (the drain timeout passed): they are queued again
    /// with `stopped: "shutdown_timeout"`, their attempt counted, so that a restart runs
    /// them after start-up recovery. Returns their ids.
    pub fn abandon_running(&self) -> Vec<JobId> {
        let mut inner = self.lock();
        let ids: Vec<JobId> = inner
            .active
            .values()
            .filter(|e| e.record.state == JobState::Running)
            .map(|e| e.record.id)
            .collect();
        for id in &ids {
            let Some(entry) = inner.active.get_mut(id) else {
                continue;
            };
            entry.record.state = JobState::Queued;
            entry.record.stopped = Some(stop::SHUTDOWN_TIMEOUT.to_owned());
            let cluster = entry.record.item.key.cluster.clone();
            inner.running = inner.running.saturating_sub(1);
            inner.running_per_cluster.remove(&cluster);
            inner.running_tokens.remove(id);
            inner.count_queued(&cluster);
        }
        self.persist(&inner, ids.iter().copied());
        self.update_gauges(&inner);
        ids
    }
}
