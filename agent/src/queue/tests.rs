use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::json;

use std::num::{NonZeroU32, NonZeroU64};

use super::*;
use crate::store::{JobStore, MemoryStore};
use crate::work::MergeBudget;

fn key(c: &str, t: &str) -> TableKey {
    TableKey {
        cluster: c.into(),
        database: "db".into(),
        table: t.into(),
    }
}

/// (cluster, table, fingerprint, partition, status, priority)
type A<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a str, u64);

fn payload(alerts: &[A<'_>]) -> WebhookPayload {
    let alerts: Vec<_> = alerts
        .iter()
        .map(|(c, t, fp, part, status, prio)| {
            let mut labels = json!({"alertname": "HiveSmallFiles", "cluster": c, "database": "db", "table": t});
            if let Some(p) = part {
                labels["partition"] = json!(p);
            }
            json!({"status": status, "labels": labels, "annotations": {"excess_files": prio.to_string()},
                   "fingerprint": fp, "startsAt": "2024-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z"})
        })
        .collect();
    let body = json!({"version": "4", "status": "firing", "alerts": alerts});
    WebhookPayload::parse(body.to_string().as_bytes()).unwrap()
}

fn firing<'a>(c: &'a str, t: &'a str, fp: &'a str, prio: u64) -> A<'a> {
    (c, t, fp, None, "firing", prio)
}

fn unlimited() -> QueueSettings {
    QueueSettings {
        max_concurrent: 1000,
        max_concurrent_per_cluster: 1000,
        merges_per_hour: None,
        merges_per_hour_per_cluster: None,
        ..QueueSettings::default()
    }
}

fn start() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn queue(settings: QueueSettings) -> (Arc<Queue>, ManualClock) {
    let clock = ManualClock::new(start());
    let q = Queue::with_clock(
        settings,
        Arc::new(AgentMetrics::new()),
        Arc::new(clock.clone()),
    );
    (Arc::new(q), clock)
}

fn merged() -> JobOutcome {
    JobOutcome::Merged {
        strategy: "insert_overwrite".into(),
        partitions: 1,
        files_before: 10,
        files_after: 1,
        bytes_rewritten: 1000,
        stopped_early: false,
    }
}

fn failed(retryable: bool) -> JobOutcome {
    JobOutcome::Failed {
        kind: "sql".into(),
        error: "boom".into(),
        retryable,
    }
}

fn tables(jobs: &[StartedJob]) -> Vec<String> {
    jobs.iter()
        .map(|j| j.record.item.key.table.clone())
        .collect()
}

#[test]
fn orders_by_priority_then_age() {
    let (q, clock) = queue(unlimited());
    q.offer_alerts(&payload(&[
        firing("c", "low", "1", 5),
        firing("c", "high", "2", 50),
    ]));
    clock.advance(Duration::from_secs(1));
    q.offer_alerts(&payload(&[firing("c", "mid_old", "3", 10)]));
    clock.advance(Duration::from_secs(1));
    q.offer_alerts(&payload(&[
        firing("c", "mid_new", "4", 10),
        firing("c", "low", "1", 5),
    ]));
    let (started, _) = q.start_ready(&CancellationToken::new());
    assert_eq!(tables(&started), ["high", "mid_old", "mid_new", "low"]);
}

#[test]
fn dedup_and_folding() {
    let (q, _) = queue(unlimited());
    let r1 = q.offer_alerts(&payload(&[
        ("c", "t", "f1", Some("dt=1"), "firing", 3),
        ("c", "t", "f2", Some("dt=2"), "firing", 9),
    ]));
    assert_eq!(r1.queued.len(), 1);
    // Re-sent group plus a new alert: folds into the same job.
    let r2 = q.offer_alerts(&payload(&[
        ("c", "t", "f1", Some("dt=1"), "firing", 3),
        ("c", "t", "f3", Some("dt=3"), "firing", 1),
    ]));
    assert_eq!(r2.folded, r1.queued);
    let job = q.get(r1.queued[0]).unwrap();
    assert_eq!(job.item.priority, 9);
    assert_eq!(job.item.partitions.len(), 3);
    assert_eq!(job.item.fingerprints.len(), 3);
    assert_eq!(q.counts(), (1, 0));
    // Running: further alerts are dropped as duplicates.
    let (started, _) = q.start_ready(&CancellationToken::new());
    assert_eq!(started.len(), 1);
    let r3 = q.offer_alerts(&payload(&[firing("c", "t", "f4", 1)]));
    assert_eq!(r3.dropped.get(reason::RUNNING), Some(&1));
    assert!(r3.queued.is_empty());
    // Manual requests for a running table are refused.
    let err = q
        .submit(ManualRequest {
            key: key("c", "t"),
            partitions: BTreeSet::new(),
            dry_run: false,
            priority: u64::MAX,
        })
        .unwrap_err();
    assert_eq!(err, SubmitError::Running(r1.queued[0]));
}

#[test]
fn resolved_alerts_withdraw_queued_jobs() {
    let (q, _) = queue(unlimited());
    let r = q.offer_alerts(&payload(&[
        ("c", "t", "f1", Some("dt=1"), "firing", 3),
        ("c", "t", "f2", Some("dt=2"), "firing", 9),
        ("c", "u", "f3", None, "firing", 1),
    ]));
    let t_id = q.job_for(&key("c", "t")).unwrap().id;
    assert_eq!(r.queued.len(), 2);
    // One of two alerts resolves: the job stays, narrowed.
    let r = q.offer_alerts(&payload(&[("c", "t", "f2", Some("dt=2"), "resolved", 0)]));
    assert!(r.removed.is_empty());
    let job = q.get(t_id).unwrap();
    assert_eq!(job.item.partitions, ["dt=1".to_owned()].into());
    assert_eq!(job.item.priority, 3);
    // The last one resolves: cancelled.
    let r = q.offer_alerts(&payload(&[("c", "t", "f1", Some("dt=1"), "resolved", 0)]));
    assert_eq!(r.removed, [t_id]);
    let job = q.get(t_id).unwrap();
    assert_eq!(job.state, JobState::Cancelled);
    assert!(
        matches!(job.outcome, Some(JobOutcome::Skipped { ref reason, .. }) if reason == "resolved")
    );
    assert!(q.job_for(&key("c", "t")).is_none());
    // A running job is never touched by resolves.
    let (started, _) = q.start_ready(&CancellationToken::new());
    assert_eq!(tables(&started), ["u"]);
    let r = q.offer_alerts(&payload(&[("c", "u", "f3", None, "resolved", 0)]));
    assert!(r.removed.is_empty());
    assert_eq!(q.job_for(&key("c", "u")).unwrap().state, JobState::Running);
    // ...but its retry is dropped since nothing backs it any more.
    q.finish(&started[0], failed(true), None);
    assert_eq!(
        q.get(started[0].record.id).unwrap().state,
        JobState::Finished
    );
}

#[test]
fn manual_requests_backing_survive_resolves() {
    let (q, _) = queue(unlimited());
    q.offer_alerts(&payload(&[("c", "t", "f1", Some("dt=1"), "firing", 3)]));
    let job = q
        .submit(ManualRequest {
            key: key("c", "t"),
            partitions: ["dt=9".to_owned()].into(),
            dry_run: false,
            priority: 7,
        })
        .unwrap();
    assert_eq!(job.item.source, Source::Manual);
    assert_eq!(job.item.partitions.len(), 2);
    let r = q.offer_alerts(&payload(&[("c", "t", "f1", Some("dt=1"), "resolved", 0)]));
    assert!(r.removed.is_empty());
    assert_eq!(
        q.get(job.id).unwrap().item.partitions,
        ["dt=9".to_owned()].into()
    );
    // A dry-run request for the same table conflicts.
    let err = q
        .submit(ManualRequest {
            key: key("c", "t"),
            partitions: BTreeSet::new(),
            dry_run: true,
            priority: 1,
        })
        .unwrap_err();
    assert_eq!(err, SubmitError::Conflict(job.id));
}

#[test]
fn cancel_queued_ends_it_and_cancel_running_stops_it_at_a_step_boundary() {
    let (q, _) = queue(unlimited());
    q.offer_alerts(&payload(&[
        firing("c", "a", "1", 1),
        firing("c", "b", "2", 2),
    ]));
    let a = q.job_for(&key("c", "a")).unwrap().id;
    let b = q.job_for(&key("c", "b")).unwrap().id;
    let rec = q.cancel(a).unwrap();
    assert_eq!(rec.state, JobState::Cancelled);
    assert_eq!(
        q.cancel(a),
        Err(CancelError::NotQueued(a, JobState::Cancelled))
    );
    assert_eq!(q.cancel(999), Err(CancelError::NotFound(999)));
    let shutdown = CancellationToken::new();
    let (started, _) = q.start_ready(&shutdown);
    assert_eq!(tables(&started), ["b"]);
    // Running: the job's own token fires (the runner stops between partitions); the
    // agent's shutdown token does not, and the record stays running until the job ends.
    assert!(!started[0].cancel.is_cancelled());
    assert_eq!(q.cancel(b).unwrap().state, JobState::Running);
    assert!(started[0].cancel.is_cancelled() && !shutdown.is_cancelled());
    q.finish(&started[0], merged(), None);
    assert_eq!(
        q.cancel(b),
        Err(CancelError::NotQueued(b, JobState::Finished))
    );
    // A cancelled table can be queued again.
    let r = q.offer_alerts(&payload(&[firing("c", "a", "1", 1)]));
    assert_eq!(r.queued.len(), 1);
    // Newest first.
    let ids: Vec<_> = q.list(None, 10).iter().map(|r| r.id).collect();
    assert_eq!(ids, [3, 2, 1]);
    assert_eq!(q.list(Some(JobState::Cancelled), 10).len(), 1);
}

#[test]
fn queue_full_evicts_weaker_or_rejects() {
    let (q, clock) = queue(QueueSettings {
        capacity: 2,
        ..unlimited()
    });
    q.offer_alerts(&payload(&[firing("c", "a", "1", 10)]));
    clock.advance(Duration::from_secs(1));
    q.offer_alerts(&payload(&[
        firing("c", "b", "2", 5),
        firing("c", "c", "3", 5),
    ]));
    // "c" had priority 5 like "b": equal, so rejected.
    assert!(q.job_for(&key("c", "c")).is_none());
    let r = q.offer_alerts(&payload(&[firing("c", "d", "4", 6)]));
    assert_eq!(r.queued.len(), 1);
    let b = q
        .list(None, 10)
        .into_iter()
        .find(|r| r.item.key.table == "b")
        .unwrap();
    assert_eq!(b.state, JobState::Cancelled);
    assert!(
        matches!(b.outcome, Some(JobOutcome::Skipped { ref reason, .. }) if reason == "queue_full")
    );
    let r = q.offer_alerts(&payload(&[firing("c", "e", "5", 1)]));
    assert_eq!(r.dropped.get(reason::QUEUE_FULL), Some(&1));
    assert_eq!(q.counts().0, 2);
    // Manual requests go to the top and evict.
    assert!(
        q.submit(ManualRequest {
            key: key("c", "m"),
            partitions: BTreeSet::new(),
            dry_run: false,
            priority: u64::MAX,
        })
        .is_ok()
    );
    let text = q
        .metrics()
        .render(hive_smallfiles_core::exposition::Format::Text);
    assert!(
        text.contains("hive_merge_intake_dropped_total{reason=\"queue_full\"} 4"),
        "{text}"
    );
}

/// One round of the worker loop with the executor's budget discipline: tables named
/// `stale*` end `table_not_found` before anything is taken (as the executor does when the
/// live MetaStore re-read finds no table); the others take a start when they merge.
fn run_round(q: &Queue) -> Vec<(String, &'static str)> {
    let (started, _) = q.start_ready(&CancellationToken::new());
    let mut out = Vec::new();
    for job in started {
        let budget = JobBudget::new(q.budget());
        let k = &job.record.item.key;
        let outcome = if k.table.starts_with("stale") {
            JobOutcome::Skipped {
                reason: "table_not_found".into(),
                detail: String::new(),
            }
        } else if budget.try_start(&k.cluster, 0).is_ok() {
            merged()
        } else {
            failed(true)
        };
        out.push((format!("{}/{}", k.cluster, k.table), outcome.label()));
        q.finish(&job, outcome, budget.refused());
    }
    out
}

fn merged_in(round: &[(String, &'static str)]) -> Vec<String> {
    round
        .iter()
        .filter(|(_, r)| *r == "merged")
        .map(|(t, _)| t.clone())
        .collect()
}

#[test]
fn rate_limits_follow_the_fake_clock() {
    let (q, clock) = queue(QueueSettings {
        max_concurrent: 100,
        max_concurrent_per_cluster: 100,
        merges_per_hour: NonZeroU32::new(4),
        merges_per_hour_per_cluster: NonZeroU32::new(3),
        ..QueueSettings::default()
    });
    let alerts: Vec<String> = (0..10).map(|i| format!("t{i}")).collect();
    let mut batch = Vec::new();
    for (i, t) in alerts.iter().enumerate() {
        batch.push(firing("a", t, t, 100 - i as u64));
        batch.push(firing("b", t, t, 50 - i as u64));
    }
    q.offer_alerts(&payload(&batch));
    let round = merged_in(&run_round(&q));
    // Cluster "a" has the higher priorities: 3 of them (cluster quota), then 1 of "b"
    // (global quota of 4).
    assert_eq!(round, ["a/t0", "a/t1", "a/t2", "b/t0"]);
    let (_, wake) = q.start_ready(&CancellationToken::new());
    let wake = wake.unwrap();
    assert!(wake <= Duration::from_secs(15 * 60), "{wake:?}");
    assert!(run_round(&q).is_empty(), "refused jobs wait for the refill");
    // The global quota refills one merge per 15 minutes.
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(merged_in(&run_round(&q)).len(), 1);
    // Nothing more within the same instant.
    assert!(merged_in(&run_round(&q)).is_empty());
    // Over an hour from the start: at most burst + refills.
    let mut total = 5;
    for _ in 0..3 {
        clock.advance(Duration::from_secs(15 * 60));
        total += merged_in(&run_round(&q)).len();
    }
    assert_eq!(total, 8, "4 burst + 4 refills in one hour");
    let text = q
        .metrics()
        .render(hive_smallfiles_core::exposition::Format::Text);
    assert!(
        text.contains("hive_merge_rate_limited_total{limit=\"global_rate\"}"),
        "{text}"
    );
    assert!(
        text.contains("hive_merge_rate_limited_total{limit=\"cluster_rate\"}"),
        "{text}"
    );
}

#[test]
fn stale_alerts_spend_no_budget_and_a_real_merge_still_runs() {
    // The incident: one merge an hour, three alerts for tables dropped since, and a real one
    // with the lowest priority.
    let (q, _) = queue(QueueSettings {
        max_concurrent: 1,
        max_concurrent_per_cluster: 1,
        merges_per_hour: NonZeroU32::new(1),
        merges_per_hour_per_cluster: NonZeroU32::new(1),
        ..QueueSettings::default()
    });
    q.offer_alerts(&payload(&[
        firing("c", "stale1", "1", 30),
        firing("c", "stale2", "2", 20),
        firing("c", "stale3", "3", 10),
        firing("c", "real", "4", 1),
    ]));
    let mut done = Vec::new();
    for _ in 0..4 {
        done.extend(run_round(&q));
    }
    assert_eq!(
        done,
        [
            ("c/stale1".to_owned(), "skipped"),
            ("c/stale2".to_owned(), "skipped"),
            ("c/stale3".to_owned(), "skipped"),
            ("c/real".to_owned(), "merged"),
        ],
        "without advancing the clock"
    );
    // The one merge of the hour is spent now.
    q.offer_alerts(&payload(&[firing("c", "real2", "5", 1)]));
    assert!(run_round(&q).is_empty());
}

#[test]
fn a_global_refusal_spends_no_cluster_budget() {
    // Global: 4 an hour (one per 15 minutes); per cluster: 1 an hour.
    let (q, clock) = queue(QueueSettings {
        max_concurrent: 100,
        max_concurrent_per_cluster: 100,
        merges_per_hour: NonZeroU32::new(4),
        merges_per_hour_per_cluster: NonZeroU32::new(1),
        ..QueueSettings::default()
    });
    q.offer_alerts(&payload(&[
        firing("a", "t", "1", 50),
        firing("c", "t", "2", 40),
        firing("d", "t", "3", 30),
        firing("e", "t", "4", 20),
        firing("b", "t", "5", 10),
    ]));
    assert_eq!(
        merged_in(&run_round(&q)),
        ["a/t", "c/t", "d/t", "e/t"],
        "the global burst"
    );
    // "b" was refused by the global limit only: its own hour is intact, so it merges as
    // soon as the global limit refills, not an hour later.
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(merged_in(&run_round(&q)), ["b/t"]);
    // And the other way round: a per-cluster refusal spends no global budget.
    let b = q.budget();
    clock.advance(Duration::from_secs(15 * 60));
    assert_eq!(
        b.try_start("a", 0).map_err(|r| r.limit),
        Err("cluster_rate"),
        "a's hour is not over"
    );
    assert_eq!(
        b.try_start("f", 0),
        Ok(()),
        "the global refill is still there"
    );
}

#[test]
fn bytes_refusal_spends_no_merge_start() {
    let (q, _) = queue(QueueSettings {
        merges_per_hour: NonZeroU32::new(2),
        merges_per_hour_per_cluster: NonZeroU32::new(2),
        bytes_per_hour_per_cluster: NonZeroU64::new(4 << 20),
        ..unlimited()
    });
    let b = q.budget();
    assert_eq!(b.try_start("a", 3 << 20), Ok(()));
    for _ in 0..5 {
        assert_eq!(b.try_start("a", 2 << 20).unwrap_err().limit, "bytes");
    }
    // The five refusals took no start: the second of the hour is still there.
    assert_eq!(b.try_start("b", 1 << 20), Ok(()));
    assert_eq!(b.try_start("c", 1).unwrap_err().limit, "global_rate");
}

#[test]
fn queue_bound_per_cluster() {
    let (q, _) = queue(QueueSettings {
        capacity: 100,
        capacity_per_cluster: 2,
        ..unlimited()
    });
    let r = q.offer_alerts(&payload(&[
        firing("a", "t1", "1", 5),
        firing("a", "t2", "2", 3),
        firing("a", "t3", "3", 1),
        firing("b", "t1", "4", 1),
    ]));
    assert_eq!(r.queued.len(), 3);
    assert_eq!(r.dropped.get("cluster_queue_full"), Some(&1));
    // A stronger one evicts the weakest of its own cluster, never another cluster's.
    let r = q.offer_alerts(&payload(&[firing("a", "t4", "5", 10)]));
    assert_eq!(r.queued.len(), 1);
    assert!(q.job_for(&key("a", "t2")).is_none());
    assert!(q.job_for(&key("b", "t1")).is_some());
    let evicted = q
        .list(Some(JobState::Cancelled), 10)
        .into_iter()
        .find(|j| j.item.key.table == "t2")
        .unwrap();
    assert!(
        matches!(evicted.outcome, Some(JobOutcome::Skipped { ref reason, .. }) if reason == "cluster_queue_full")
    );
    let weak = ManualRequest {
        key: key("a", "t5"),
        partitions: BTreeSet::new(),
        dry_run: false,
        priority: 0,
    };
    assert_eq!(q.submit(weak), Err(SubmitError::ClusterQueueFull));
    assert_eq!(q.counts(), (3, 0));
}

#[test]
fn concurrency_caps() {
    let (q, _) = queue(QueueSettings {
        max_concurrent: 3,
        max_concurrent_per_cluster: 2,
        merges_per_hour: None,
        merges_per_hour_per_cluster: None,
        ..QueueSettings::default()
    });
    let mut batch = Vec::new();
    let names: Vec<String> = (0..5).map(|i| format!("t{i}")).collect();
    for t in &names {
        batch.push(firing("a", t, t, 10));
        batch.push(firing("b", t, t, 1));
    }
    q.offer_alerts(&payload(&batch));
    let token = CancellationToken::new();
    let (s1, _) = q.start_ready(&token);
    let clusters: Vec<_> = s1
        .iter()
        .map(|j| j.record.item.key.cluster.as_str())
        .collect();
    assert_eq!(clusters, ["a", "a", "b"]);
    assert!(q.start_ready(&token).0.is_empty());
    q.finish(&s1[0], merged(), None);
    let (s2, _) = q.start_ready(&token);
    assert_eq!(s2.len(), 1);
    assert_eq!(s2[0].record.item.key.cluster, "a");
    assert_eq!(q.counts(), (6, 3));
}

#[test]
fn cooldown_after_merge() {
    let (q, clock) = queue(QueueSettings {
        cooldown: Duration::from_secs(3600),
        ..unlimited()
    });
    q.offer_alerts(&payload(&[firing("c", "t", "1", 1)]));
    let token = CancellationToken::new();
    let (s, _) = q.start_ready(&token);
    q.finish(&s[0], merged(), None);
    assert!(q.cooldown_until(&key("c", "t")).is_some());
    let r = q.offer_alerts(&payload(&[firing("c", "t", "1", 1)]));
    assert_eq!(r.dropped.get(reason::COOLDOWN), Some(&1));
    // Manual requests ignore the cool-down.
    let m = q
        .submit(ManualRequest {
            key: key("c", "t"),
            partitions: BTreeSet::new(),
            dry_run: true,
            priority: 1,
        })
        .unwrap();
    q.cancel(m.id).unwrap();
    clock.advance(Duration::from_secs(3601));
    let r = q.offer_alerts(&payload(&[firing("c", "t", "1", 1)]));
    assert_eq!(r.queued.len(), 1);
    // Failed, skipped and dry-run outcomes do not cool down.
    let (s, _) = q.start_ready(&token);
    q.finish(&s[0], failed(false), None);
    assert!(q.cooldown_until(&key("c", "t")).is_none());
    let text = q
        .metrics()
        .render(hive_smallfiles_core::exposition::Format::Text);
    assert!(
        text.contains("hive_merge_files_removed_total{cluster=\"c\"} 9"),
        "{text}"
    );
    assert!(
        text.contains("hive_merge_rewritten_bytes_total{cluster=\"c\"} 1000"),
        "{text}"
    );
    assert!(
        text.contains("hive_merge_jobs_total{result=\"failed\",strategy=\"none\"} 1"),
        "{text}"
    );
}

#[test]
fn retries_with_backoff() {
    let (q, clock) = queue(QueueSettings {
        retry: RetrySettings {
            max_attempts: 3,
            base: Duration::from_secs(60),
            cap: Duration::from_secs(90),
        },
        ..unlimited()
    });
    q.offer_alerts(&payload(&[firing("c", "t", "1", 1)]));
    let token = CancellationToken::new();
    let (s, _) = q.start_ready(&token);
    q.finish(&s[0], failed(true), None);
    let job = q.get(s[0].record.id).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 1);
    let nb = job.not_before.unwrap().duration_since(clock.now()).unwrap();
    assert!(
        (Duration::from_secs(30)..=Duration::from_secs(60)).contains(&nb),
        "{nb:?}"
    );
    let (s2, wake) = q.start_ready(&token);
    assert!(s2.is_empty());
    assert_eq!(wake, Some(nb));
    clock.advance(nb);
    let (s, _) = q.start_ready(&token);
    assert_eq!(s[0].record.attempts, 2);
    q.finish(&s[0], failed(true), None);
    let nb = q.get(s[0].record.id).unwrap().not_before.unwrap();
    let nb = nb.duration_since(clock.now()).unwrap();
    assert!(
        (Duration::from_secs(45)..=Duration::from_secs(90)).contains(&nb),
        "capped: {nb:?}"
    );
    clock.advance(nb);
    let (s, _) = q.start_ready(&token);
    q.finish(&s[0], failed(true), None);
    let job = q.get(s[0].record.id).unwrap();
    assert_eq!(job.state, JobState::Finished);
    assert_eq!(job.attempts, 3);
}

#[test]
fn backoff_delays() {
    let r = RetrySettings {
        max_attempts: 10,
        base: Duration::from_secs(10),
        cap: Duration::from_secs(100),
    };
    assert_eq!(r.delay(1, 0.0), Duration::from_secs(5));
    assert_eq!(r.delay(1, 1.0), Duration::from_secs(10));
    assert_eq!(r.delay(2, 0.5), Duration::from_secs(15));
    assert_eq!(r.delay(4, 1.0), Duration::from_secs(80));
    assert_eq!(r.delay(5, 1.0), Duration::from_secs(100));
    assert_eq!(r.delay(u32::MAX, 0.0), Duration::from_secs(50));
    assert_eq!(r.delay(0, 2.0), Duration::from_secs(10));
}

#[test]
fn byte_budget_and_deferral() {
    let (q, clock) = queue(QueueSettings {
        bytes_per_hour: NonZeroU64::new(10 << 20),
        bytes_per_hour_per_cluster: NonZeroU64::new(8 << 20),
        ..unlimited()
    });
    let b = q.budget();
    assert_eq!(b.try_start("a", 0), Ok(()));
    assert_eq!(b.try_start("a", 6 << 20), Ok(()));
    // Cluster "a" has 2 MiB left: refused for 4 MiB.
    let wait = b.try_start("a", 4 << 20).unwrap_err().wait;
    assert!(
        wait > Duration::ZERO && wait <= Duration::from_secs(3600),
        "{wait:?}"
    );
    // Cluster "b": its own budget, but the global one has 4 MiB left.
    assert_eq!(b.try_start("b", 4 << 20), Ok(()));
    assert!(b.try_start("b", 1).is_err());
    // A job larger than a whole hour's budget waits for a full bucket, then takes it.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(b.try_start("c", 100 << 20), Ok(()));

    // A refusal during a run re-queues without counting the attempt.
    q.offer_alerts(&payload(&[firing("a", "t", "1", 1)]));
    let (s, _) = q.start_ready(&CancellationToken::new());
    let jb = JobBudget::new(q.budget());
    assert!(jb.try_start("a", 1).is_err());
    q.finish(
        &s[0],
        JobOutcome::Skipped {
            reason: "byte_budget".into(),
            detail: String::new(),
        },
        jb.refused(),
    );
    let job = q.get(s[0].record.id).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.attempts, 0);
    assert!(job.not_before.is_some());
}

#[test]
fn history_is_bounded() {
    let (q, _) = queue(QueueSettings {
        history: 3,
        ..unlimited()
    });
    for i in 0..10 {
        let t = format!("t{i}");
        q.offer_alerts(&payload(&[firing("c", &t, &t, 1)]));
        let id = q.job_for(&key("c", &t)).unwrap().id;
        q.cancel(id).unwrap();
    }
    let ids: Vec<_> = q.list(None, 100).iter().map(|r| r.id).collect();
    assert_eq!(ids, [10, 9, 8]);
    assert!(q.get(1).is_none());
}

#[test]
fn fingerprints_per_job_are_bounded() {
    let (q, _) = queue(QueueSettings {
        max_fingerprints_per_job: 3,
        ..unlimited()
    });
    let fps: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
    let parts: Vec<String> = (0..5).map(|i| format!("dt={i}")).collect();
    let batch: Vec<A<'_>> = (0..5)
        .map(|i| {
            (
                "c",
                "t",
                fps[i].as_str(),
                Some(parts[i].as_str()),
                "firing",
                i as u64,
            )
        })
        .collect();
    q.offer_alerts(&payload(&batch));
    let job = q.job_for(&key("c", "t")).unwrap();
    assert!(job.item.partitions.is_empty(), "whole table after overflow");
    assert!(job.item.fingerprints.is_empty());
    assert_eq!(job.item.priority, 3);
    let r = q.offer_alerts(&payload(&[("c", "t", "f0", Some("dt=0"), "resolved", 0)]));
    assert!(r.removed.is_empty());
}

#[derive(Debug, Default)]
struct CountingRunner {
    runs: AtomicUsize,
}

#[async_trait::async_trait]
impl JobRunner for CountingRunner {
    async fn run(
        &self,
        job: &JobRecord,
        budget: &dyn MergeBudget,
        _: &CancellationToken,
    ) -> JobOutcome {
        self.runs.fetch_add(1, Ordering::SeqCst);
        if job.item.key.table == "panic" {
            panic!("runner bug");
        }
        if budget.try_start(&job.item.key.cluster, 1).is_err() {
            return JobOutcome::Skipped {
                reason: "byte_budget".into(),
                detail: String::new(),
            };
        }
        merged()
    }
    async fn preview(&self, _: &TableKey) -> Result<serde_json::Value, String> {
        Ok(json!({}))
    }
}

#[tokio::test]
async fn workers_run_jobs_and_survive_panics() {
    let (q, _) = queue(unlimited());
    let runner = Arc::new(CountingRunner::default());
    let shutdown = CancellationToken::new();
    let workers = tokio::spawn(run_workers(
        Arc::clone(&q),
        runner.clone(),
        shutdown.clone(),
    ));
    q.offer_alerts(&payload(&[
        firing("c", "a", "1", 1),
        firing("c", "panic", "2", 1),
        firing("d", "b", "3", 1),
    ]));
    tokio::time::timeout(Duration::from_secs(10), async {
        while q.list(Some(JobState::Finished), 10).len() < 3 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let panicked = q
        .list(None, 10)
        .into_iter()
        .find(|r| r.item.key.table == "panic")
        .unwrap();
    assert!(
        matches!(panicked.outcome, Some(JobOutcome::Failed { ref kind, .. }) if kind == "panic")
    );
    assert_eq!(q.counts(), (0, 0));
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), workers)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(runner.runs.load(Ordering::SeqCst), 3);
}

/// A runner that merges `steps` partitions, one per `step` of wall time, and stops between
/// partitions when its token fires (the executor's discipline); it reports each step it
/// began and finished.
#[derive(Debug)]
struct SteppingRunner {
    steps: u32,
    step: Duration,
    began: AtomicUsize,
    finished: AtomicUsize,
}

#[async_trait::async_trait]
impl JobRunner for SteppingRunner {
    async fn run(
        &self,
        _: &JobRecord,
        _: &dyn MergeBudget,
        cancel: &CancellationToken,
    ) -> JobOutcome {
        let mut done = 0;
        for _ in 0..self.steps {
            if cancel.is_cancelled() {
                break;
            }
            self.began.fetch_add(1, Ordering::SeqCst);
            // A step is never interrupted: no cancellation inside it.
            tokio::time::sleep(self.step).await;
            self.finished.fetch_add(1, Ordering::SeqCst);
            done += 1;
        }
        JobOutcome::Merged {
            strategy: "native".into(),
            partitions: done,
            files_before: u64::from(done) * 10,
            files_after: u64::from(done),
            bytes_rewritten: 0,
            stopped_early: done < self.steps,
        }
    }
    async fn preview(&self, _: &TableKey) -> Result<serde_json::Value, String> {
        Ok(json!({}))
    }
}

#[tokio::test]
async fn shutdown_waits_for_a_step_boundary_and_requeues_the_job() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new(100));
    let (q, _) = queue(unlimited());
    let q = Arc::new(Arc::into_inner(q).unwrap().with_store(Arc::clone(&store)));
    let runner = Arc::new(SteppingRunner {
        steps: 10,
        step: Duration::from_millis(300),
        began: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
    });
    let shutdown = CancellationToken::new();
    let workers = tokio::spawn(run_workers(
        Arc::clone(&q),
        runner.clone(),
        shutdown.clone(),
    ));
    q.offer_alerts(&payload(&[firing("c", "t", "1", 1)]));
    let id = q.job_for(&key("c", "t")).unwrap().id;
    while runner.began.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), workers)
        .await
        .unwrap()
        .unwrap();
    // The step under way when shutdown came was finished, and no further one began.
    let began = runner.began.load(Ordering::SeqCst);
    assert_eq!(runner.finished.load(Ordering::SeqCst), began);
    assert!(began < 10, "{began}");
    let job = q.get(id).unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.stopped.as_deref(), Some("shutdown"));
    assert_eq!(
        job.attempts, 0,
        "a shutdown stop does not count as an attempt"
    );
    assert!(
        matches!(job.outcome, Some(JobOutcome::Merged { partitions, .. }) if partitions as usize == began)
    );
    // No job starts once shutdown began.
    assert!(q.start_ready(&CancellationToken::new()).0.is_empty());
    // The store has it queued for the restart.
    let stored = store.active();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].record.stopped.as_deref(), Some("shutdown"));
}

#[test]
fn a_restart_restores_queue_cooldowns_and_history() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::new(100));
    let (q, clock) = queue(unlimited_with_attempts(2));
    let q = Arc::into_inner(q).unwrap().with_store(Arc::clone(&store));
    q.offer_alerts(&payload(&[
        firing("c", "merged", "1", 9),
        firing("c", "running", "2", 8),
        firing("c", "last", "3", 7),
    ]));
    let (s, _) = q.start_ready(&CancellationToken::new());
    assert_eq!(tables(&s), ["merged", "running", "last"]);
    q.finish(&s[0], merged(), None);
    // "last" fails once, retryable; below it runs its second and last attempt.
    q.finish(&s[2], failed(true), None);
    q.offer_alerts(&payload(&[("c", "queued", "4", Some("dt=1"), "firing", 1)]));
    clock.advance(Duration::from_secs(3600));
    let (s2, _) = q.start_ready(&CancellationToken::new());
    assert_eq!(tables(&s2), ["last", "queued"]);
    let queued_id = s2[1].record.id;
    q.finish(&s2[1], failed(true), None);
    let before = q.get(queued_id).unwrap();
    // The agent dies here ("running" and "last" running) and starts again on the store.
    drop(q);
    let q2 = Queue::with_clock(
        unlimited_with_attempts(2),
        Arc::new(AgentMetrics::new()),
        Arc::new(clock),
    )
    .with_store(Arc::clone(&store));
    let queued = q2.job_for(&key("c", "queued")).unwrap();
    assert_eq!(
        queued, before,
        "queued jobs come back as they were, retry time included"
    );
    let running = q2.job_for(&key("c", "running")).unwrap();
    assert_eq!(running.state, JobState::Queued);
    assert_eq!(running.stopped.as_deref(), Some("interrupted"));
    let last = q2.get(s[2].record.id).unwrap();
    assert_eq!(last.state, JobState::Finished, "no attempt left");
    assert!(
        matches!(last.outcome, Some(JobOutcome::Failed { ref kind, .. }) if kind == "interrupted")
    );
    assert_eq!(q2.get(s[0].record.id).unwrap().state, JobState::Finished);
    assert!(q2.cooldown_until(&key("c", "merged")).is_some());
    // Resolved alerts still withdraw a restored job (its fingerprints came back too).
    let r = q2.offer_alerts(&payload(&[(
        "c",
        "queued",
        "4",
        Some("dt=1"),
        "resolved",
        1,
    )]));
    assert_eq!(r.removed, [queued_id]);
    // New ids continue after the restored ones.
    let r = q2.offer_alerts(&payload(&[firing("c", "new", "5", 1)]));
    assert_eq!(r.queued, [5]);
}

fn unlimited_with_attempts(max_attempts: u32) -> QueueSettings {
    QueueSettings {
        retry: RetrySettings {
            max_attempts,
            ..RetrySettings::default()
        },
        ..unlimited()
    }
}
