//! What comes into the queue: Alertmanager alerts (folded into one job per table,
//! withdrawn when resolved) and manual requests, and operators' cancellations.

use std::collections::{BTreeMap, BTreeSet};

use super::*;

impl Queue {
    /// Runs the intake on a webhook payload and applies the result.
    pub fn offer_alerts(&self, payload: &WebhookPayload) -> IntakeReport {
        let now = self.clock.now();
        let mut inner = self.lock();
        let decision = intake::intake(
            payload,
            now,
            &CooldownView(&inner.cooldowns),
            &self.settings.intake,
        );
        let mut report = IntakeReport {
            alerts: payload.alerts().len() as u64,
            truncated_alerts: payload.truncated_alerts,
            dropped: decision.dropped.clone(),
            ..IntakeReport::default()
        };
        for (status, n) in &decision.received {
            self.metrics
                .alerts_received
                .get_or_create(&StatusLabels {
                    status: (*status).to_owned(),
                })
                .inc_by(*n);
        }
        let mut touched = Vec::new();
        for (key, fingerprints) in &decision.resolved {
            let Some(&id) = inner.by_table.get(key) else {
                continue;
            };
            touched.push(id);
            let Some(entry) = inner.active.get_mut(&id) else {
                continue;
            };
            for fp in fingerprints {
                entry.origins.remove(fp);
            }
            entry.refresh_item();
            if entry.record.state == JobState::Queued && !entry.backed() {
                self.end_queued(
                    &mut inner,
                    id,
                    JobOutcome::Skipped {
                        reason: "resolved".into(),
                        detail: "every alert for the table resolved while it was queued".into(),
                    },
                    now,
                );
                report.removed.push(id);
            }
        }
        for req in decision.requests {
            let existing = inner.by_table.get(&req.key).copied();
            match existing.and_then(|id| inner.active.get_mut(&id)) {
                Some(entry) if entry.record.state == JobState::Running => {
                    *report.dropped.entry(reason::RUNNING).or_default() += 1;
                }
                Some(entry) if entry.record.item.dry_run => {
                    *report.dropped.entry("dry_run_queued").or_default() += 1;
                }
                Some(entry) => {
                    self.fold_origins(entry, req.origins);
                    report.folded.push(entry.record.id);
                }
                None => {
                    let priority = req.priority();
                    if let Err(why) = self.make_room(&mut inner, &req.key.cluster, priority, now) {
                        *report.dropped.entry(why).or_default() += 1;
                        continue;
                    }
                    let mut entry = Self::new_entry(&mut inner, req.key, false, now);
                    self.fold_origins(&mut entry, req.origins);
                    report.queued.push(Self::insert(&mut inner, entry));
                }
            }
        }
        for (r, n) in &report.dropped {
            inc_reason(&self.metrics, r, *n);
        }
        touched.extend(report.queued.iter().chain(&report.folded));
        self.persist(&inner, touched);
        self.update_gauges(&inner);
        drop(inner);
        if !report.queued.is_empty() || !report.folded.is_empty() {
            self.notify.notify_one();
        }
        report
    }

    pub(super) fn fold_origins(&self, entry: &mut Entry, origins: BTreeMap<String, Origin>) {
        for (fp, o) in origins {
            if entry.overflow {
                break;
            }
            if let Some(existing) = entry.origins.get_mut(&fp) {
                existing.priority = existing.priority.max(o.priority);
                existing.partition = o.partition;
            } else if entry.origins.len() >= self.settings.max_fingerprints_per_job {
                entry.overflow = true;
                let top = entry
                    .origins
                    .values()
                    .map(|x| x.priority)
                    .max()
                    .unwrap_or(0);
                entry.manual = Some((
                    BTreeSet::new(),
                    entry
                        .manual
                        .as_ref()
                        .map_or(0, |m| m.1)
                        .max(top)
                        .max(o.priority),
                ));
                entry.origins.clear();
            } else {
                entry.origins.insert(fp, o);
            }
        }
        entry.refresh_item();
    }

    /// Queues a manual request (ignores the cool-down).
    pub fn submit(&self, req: ManualRequest) -> Result<JobRecord, SubmitError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        let existing = inner.by_table.get(&req.key).copied();
        let record = match existing.and_then(|id| inner.active.get_mut(&id)) {
            Some(e) if e.record.state == JobState::Running => {
                return Err(SubmitError::Running(e.record.id));
            }
            Some(e) if e.record.item.dry_run != req.dry_run => {
                return Err(SubmitError::Conflict(e.record.id));
            }
            Some(e) => {
                e.manual = Some(match e.manual.take() {
                    None => (req.partitions, req.priority),
                    Some((p, prio)) => {
                        let parts = if p.is_empty() || req.partitions.is_empty() {
                            BTreeSet::new()
                        } else {
                            p.union(&req.partitions).cloned().collect()
                        };
                        (parts, prio.max(req.priority))
                    }
                });
                e.refresh_item();
                e.record.clone()
            }
            None => {
                if let Err(why) = self.make_room(&mut inner, &req.key.cluster, req.priority, now) {
                    inc_reason(&self.metrics, why, 1);
                    return Err(if why == CLUSTER_QUEUE_FULL {
                        SubmitError::ClusterQueueFull
                    } else {
                        SubmitError::QueueFull
                    });
                }
                let mut entry = Self::new_entry(&mut inner, req.key, req.dry_run, now);
                entry.manual = Some((req.partitions, req.priority));
                entry.refresh_item();
                let record = entry.record.clone();
                Self::insert(&mut inner, entry);
                record
            }
        };
        self.persist(&inner, [record.id]);
        self.update_gauges(&inner);
        drop(inner);
        self.notify.notify_one();
        Ok(record)
    }

    /// Cancels a queued job, or stops a running one at its next step boundary (between
    /// partitions: a partition's merge is never interrupted half-way); the record returned
    /// is then still `running`, and the job ends with what it merged so far.
    pub fn cancel(&self, id: JobId) -> Result<JobRecord, CancelError> {
        let now = self.clock.now();
        let mut inner = self.lock();
        match inner.active.get(&id).map(|e| e.record.state) {
            Some(JobState::Queued) => {}
            Some(JobState::Running) => {
                if let Some(t) = inner.running_tokens.get(&id) {
                    tracing::info!(
                        job = id,
                        "Cancel requested: the job stops at its next step boundary."
                    );
                    t.cancel();
                }
                inner.cancel_requested.insert(id);
                return inner
                    .active
                    .get(&id)
                    .map(|e| e.record.clone())
                    .ok_or(CancelError::NotFound(id));
            }
            Some(state) => return Err(CancelError::NotQueued(id, state)),
            None => {
                return Err(match self.store.finished(id) {
                    Some(r) => CancelError::NotQueued(id, r.state),
                    None => CancelError::NotFound(id),
                });
            }
        }
        self.end_queued(
            &mut inner,
            id,
            JobOutcome::Skipped {
                reason: "cancelled".into(),
                detail: "cancelled by an operator".into(),
            },
            now,
        );
        self.update_gauges(&inner);
        self.store.finished(id).ok_or(CancelError::NotFound(id))
    }
}
