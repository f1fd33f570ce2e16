//! Alert storm: 10,000 alerts over 1,000 tables posted to the router in Alertmanager-sized
//! batches while the workers run, with simulated hours on a manual clock. Checks that no
//! more merges start (take from the merge budget) than the limits allow, that no table runs twice, and that the webhook
//! never answers 5xx for valid bodies.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{Request, header};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use hive_smallfiles_agent::api::{ApiSettings, ApiState, WEBHOOK_PATH, router};
use hive_smallfiles_agent::metrics::AgentMetrics;
use hive_smallfiles_agent::queue::{Clock, ManualClock, Queue, QueueSettings, run_workers};
use hive_smallfiles_agent::work::{
    JobOutcome, JobRecord, JobRunner, JobState, MergeBudget, TableKey,
};

const CLUSTERS: usize = 10;
const TABLES: usize = 1000;
const ALERTS_PER_TABLE: usize = 10;
const BATCH: usize = 100;

const GLOBAL_PER_HOUR: u32 = 50;
const CLUSTER_PER_HOUR: u32 = 8;
const MAX_CONCURRENT: usize = 6;
const MAX_PER_CLUSTER: usize = 2;

#[derive(Debug)]
struct Recorder {
    clock: ManualClock,
    /// (table, monotonic start time)
    starts: Mutex<Vec<(TableKey, Duration)>>,
    running: Mutex<HashSet<TableKey>>,
    running_per_cluster: Mutex<HashMap<String, usize>>,
    max_running: AtomicUsize,
    max_per_cluster: AtomicUsize,
    overlaps: AtomicUsize,
}

#[async_trait::async_trait]
impl JobRunner for Recorder {
    async fn run(
        &self,
        job: &JobRecord,
        budget: &dyn MergeBudget,
        _: &CancellationToken,
    ) -> JobOutcome {
        let key = job.item.key.clone();
        // A merge starts only with the budget's consent (as the executor asks it).
        if let Err(r) = budget.try_start(&key.cluster, 1 << 20) {
            return JobOutcome::Failed {
                kind: "rate_limited".into(),
                error: r.limit.into(),
                retryable: true,
            };
        }
        self.starts
            .lock()
            .unwrap()
            .push((key.clone(), self.clock.elapsed()));
        {
            let mut running = self.running.lock().unwrap();
            if !running.insert(key.clone()) {
                self.overlaps.fetch_add(1, Ordering::SeqCst);
            }
            self.max_running.fetch_max(running.len(), Ordering::SeqCst);
            let mut per = self.running_per_cluster.lock().unwrap();
            let n = per.entry(key.cluster.clone()).or_default();
            *n += 1;
            self.max_per_cluster.fetch_max(*n, Ordering::SeqCst);
        }
        // Real time passes while the job "runs", so jobs overlap.
        tokio::time::sleep(Duration::from_millis(3)).await;
        self.running.lock().unwrap().remove(&key);
        *self
            .running_per_cluster
            .lock()
            .unwrap()
            .get_mut(&key.cluster)
            .unwrap() -= 1;
        JobOutcome::Merged {
            strategy: "insert_overwrite".into(),
            partitions: u32::try_from(job.item.partitions.len()).unwrap(),
            files_before: 100,
            files_after: 2,
            bytes_rewritten: 1 << 20,
            stopped_early: false,
        }
    }

    async fn preview(&self, _: &TableKey) -> Result<serde_json::Value, String> {
        Ok(json!({}))
    }
}

fn batches() -> Vec<String> {
    // Alerts of one table are spread over batches, like groups by alertname and cluster
    // re-sent with more alerts over time.
    let mut alerts = Vec::with_capacity(TABLES * ALERTS_PER_TABLE);
    for round in 0..ALERTS_PER_TABLE {
        for t in 0..TABLES {
            alerts.push(json!({
                "status": "firing",
                "labels": {
                    "alertname": "HiveSmallFiles",
                    "cluster": format!("c{}", t % CLUSTERS),
                    "database": "db",
                    "table": format!("t{t}"),
                    "partition": format!("dt={round}"),
                },
                "annotations": {"excess_files": format!("{}", (t * 7919) % 1000)},
                "startsAt": "2024-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": format!("{t:05}{round:02}"),
            }));
        }
    }
    alerts
        .chunks(BATCH)
        .map(|chunk| {
            json!({
                "version": "4", "groupKey": "{}:{alertname=\"HiveSmallFiles\"}",
                "truncatedAlerts": 0, "status": "firing", "receiver": "merge",
                "groupLabels": {}, "commonLabels": {}, "commonAnnotations": {},
                "externalURL": "http://am", "alerts": chunk,
            })
            .to_string()
        })
        .collect()
}

/// Waits until the queue has been quiet (nothing running, nothing newly started) for a while.
async fn settle(queue: &Queue, rec: &Recorder) {
    let mut last = usize::MAX;
    let mut stable = 0;
    while stable < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let started = rec.starts.lock().unwrap().len();
        if queue.counts().1 == 0 && started == last {
            stable += 1;
        } else {
            stable = 0;
        }
        last = started;
    }
}

/// The GCRA bound: from a full bucket, at most `n + floor(t·n/1h)` starts by time `t`.
fn check_bound(starts: &[Duration], n: u32, what: &str) {
    for (i, t) in starts.iter().enumerate() {
        let bound =
            u128::from(n) + t.as_nanos() * u128::from(n) / Duration::from_secs(3600).as_nanos();
        assert!(
            (i + 1) as u128 <= bound,
            "{what}: start #{} at {t:?} exceeds {bound}",
            i + 1
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_storm_respects_limits() {
    let began = std::time::Instant::now();
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    let settings = QueueSettings {
        capacity: 2 * TABLES,
        max_concurrent: MAX_CONCURRENT,
        max_concurrent_per_cluster: MAX_PER_CLUSTER,
        merges_per_hour: NonZeroU32::new(GLOBAL_PER_HOUR),
        merges_per_hour_per_cluster: NonZeroU32::new(CLUSTER_PER_HOUR),
        cooldown: Duration::from_secs(24 * 3600),
        ..QueueSettings::default()
    };
    let metrics = Arc::new(AgentMetrics::new());
    let queue = Arc::new(Queue::with_clock(
        settings,
        metrics,
        Arc::new(clock.clone()),
    ));
    let rec = Arc::new(Recorder {
        clock: clock.clone(),
        starts: Mutex::default(),
        running: Mutex::default(),
        running_per_cluster: Mutex::default(),
        max_running: AtomicUsize::new(0),
        max_per_cluster: AtomicUsize::new(0),
        overlaps: AtomicUsize::new(0),
    });
    let shutdown = CancellationToken::new();
    let workers = tokio::spawn(run_workers(
        Arc::clone(&queue),
        rec.clone(),
        shutdown.clone(),
    ));
    let state = ApiState::new(
        ApiSettings {
            bearer_token: Some("t0ken".into()),
            ..ApiSettings::default()
        },
        Arc::clone(&queue),
        rec.clone(),
        shutdown.clone(),
    );
    let app = router(state);

    // Post all batches from 8 concurrent senders while the workers start jobs.
    let bodies = Arc::new(batches());
    assert_eq!(bodies.len(), TABLES * ALERTS_PER_TABLE / BATCH);
    let next = Arc::new(AtomicUsize::new(0));
    let mut senders = Vec::new();
    for _ in 0..8 {
        let (app, bodies, next) = (app.clone(), Arc::clone(&bodies), Arc::clone(&next));
        senders.push(tokio::spawn(async move {
            let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(body) = bodies.get(i) else { break };
                let req = Request::post(WEBHOOK_PATH)
                    .header(header::AUTHORIZATION, "Bearer t0ken")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.clone()))
                    .unwrap();
                let resp = app.clone().oneshot(req).await.unwrap();
                *codes.entry(resp.status().as_u16()).or_default() += 1;
            }
            codes
        }));
    }
    let mut codes: BTreeMap<u16, usize> = BTreeMap::new();
    for s in senders {
        for (c, n) in s.await.unwrap() {
            *codes.entry(c).or_default() += n;
        }
    }
    assert_eq!(codes, [(200, bodies.len())].into(), "webhook answers");
    let posted = began.elapsed();

    // Every table has exactly one job: queued, running or finished.
    let all = queue.list(None, 10 * TABLES);
    let tables: HashSet<_> = all.iter().map(|r| r.item.key.clone()).collect();
    assert_eq!(all.len(), TABLES, "one job per table");
    assert_eq!(tables.len(), TABLES);

    // Simulate three hours in six-minute steps.
    settle(&queue, &rec).await;
    for _ in 0..30 {
        clock.advance(Duration::from_secs(360));
        queue.wake();
        settle(&queue, &rec).await;
    }
    shutdown.cancel();
    workers.await.unwrap();

    let starts = rec.starts.lock().unwrap().clone();
    let mut global: Vec<Duration> = starts.iter().map(|(_, t)| *t).collect();
    global.sort();
    check_bound(&global, GLOBAL_PER_HOUR, "global");
    let mut per_cluster: HashMap<&str, Vec<Duration>> = HashMap::new();
    for (k, t) in &starts {
        per_cluster.entry(k.cluster.as_str()).or_default().push(*t);
    }
    for (c, ts) in &mut per_cluster {
        ts.sort();
        check_bound(ts, CLUSTER_PER_HOUR, c);
    }
    // The limits were actually reached: 3 hours at 50/h plus the burst.
    let hours = 3;
    let expected = (GLOBAL_PER_HOUR * (hours + 1)) as usize;
    assert!(
        global.len() <= expected && global.len() >= expected - 5,
        "{} starts, expected about {expected}",
        global.len()
    );
    let distinct: HashSet<_> = starts.iter().map(|(k, _)| k).collect();
    assert_eq!(distinct.len(), starts.len(), "no table merged twice");
    assert_eq!(rec.overlaps.load(Ordering::SeqCst), 0);
    assert!(rec.max_running.load(Ordering::SeqCst) <= MAX_CONCURRENT);
    assert!(rec.max_per_cluster.load(Ordering::SeqCst) <= MAX_PER_CLUSTER);
    // Merged tables are in their cool-down: the storm again queues only the rest.
    let (queued, running) = queue.counts();
    assert_eq!(running, 0);
    assert_eq!(queued, TABLES - starts.len());
    let finished = queue.list(Some(JobState::Finished), 10 * TABLES).len();
    assert_eq!(finished, starts.len());
    let text = queue
        .metrics()
        .render(hive_smallfiles_core::exposition::Format::Text);
    assert!(text.contains("hive_merge_alerts_received_total{status=\"firing\"} 10000"));
    assert!(text.contains("hive_merge_rate_limited_total{limit=\"global_rate\"}"));
    eprintln!(
        "storm: {} alerts posted in {posted:?}; {} merges over 3 simulated hours; total {:?}; max concurrent {}",
        TABLES * ALERTS_PER_TABLE,
        starts.len(),
        began.elapsed(),
        rec.max_running.load(Ordering::SeqCst)
    );
}
