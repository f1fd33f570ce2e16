//! The agent's state survives `kill -9` under load: the real binary receives a stream of
//! webhooks (hundreds of alerts, each a new job) and cancellations while its workers run
//! jobs (their MetaStore refuses connections, so they fail and are re-queued), and is killed
//! with SIGKILL at random moments. After each restart, every job the API acknowledged is
//! still there — queued, running again, or in the history — every acknowledged
//! cancellation is still in the history as `cancelled`, new ids continue after the old
//! ones, and the state file opens (a corrupt one would stop the agent at start-up).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hive_smallfiles_tests::agent_process::{AgentProcess, kill9};
use hive_smallfiles_tests::process::free_port;
use rand::Rng;
use serde_json::{Value, json};

const TOKEN: &str = "state-token-0123456789abcdef";

/// What the API acknowledged (a 2xx response came back before the kill).
#[derive(Debug, Default)]
struct Acknowledged {
    queued: BTreeSet<u64>,
    cancelled: BTreeSet<u64>,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// Starts `serve` and waits for `/healthz`.
async fn start(agent: &AgentProcess, dir: &Path) -> (Child, String) {
    let port = free_port();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("agent.log"))
        .expect("log file");
    let mut cmd = agent.command(&[
        "--web.listen-address".to_owned(),
        format!("127.0.0.1:{port}"),
        "serve".to_owned(),
    ]);
    cmd.stdout(Stdio::null()).stderr(Stdio::from(log));
    let mut child = cmd.spawn().expect("the agent starts");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let log = std::fs::read_to_string(dir.join("agent.log")).unwrap_or_default();
            panic!("the agent exited with {status} at start-up:\n{log}");
        }
        if let Ok(r) = client().get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            return (child, base);
        }
        assert!(Instant::now() < deadline, "the agent did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn alerts(round: usize, batch: usize, n: usize, status: &str) -> Value {
    let alerts: Vec<Value> = (0..n)
        .map(|i| {
            let table = format!("t{round}_{batch}_{i}");
            json!({
                "status": status,
                "labels": {"alertname": "HiveSmallFiles", "cluster": "c", "database": "db", "table": table},
                "annotations": {"excess_files": "10"},
                "fingerprint": format!("fp-{table}"),
                "startsAt": "2024-01-01T00:00:00Z",
                "endsAt": "0001-01-01T00:00:00Z"
            })
        })
        .collect();
    json!({"version": "4", "status": status, "alerts": alerts})
}

/// Posts a webhook; the job ids of the report's `field`, `None` once the agent is gone.
async fn post_alerts(
    c: &reqwest::Client,
    base: &str,
    body: &Value,
    field: &str,
) -> Option<Vec<u64>> {
    let r = c
        .post(format!("{base}/api/v1/alerts"))
        .bearer_auth(TOKEN)
        .json(body)
        .send()
        .await
        .ok()?;
    let report = r.json::<Value>().await.ok()?;
    Some(
        report[field]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
    )
}

/// Webhooks of 20 new tables each, a resolve of part of an earlier batch, and a cancel of
/// one acknowledged job, until the task is dropped by the kill.
async fn load(base: String, round: usize, acked: Arc<Mutex<Acknowledged>>) {
    let c = client();
    for batch in 0.. {
        let body = alerts(round, batch, 20, "firing");
        let Some(ids) = post_alerts(&c, &base, &body, "queued").await else {
            return;
        };
        acked.lock().unwrap().queued.extend(&ids);
        if batch % 3 == 2 {
            // Resolving five tables of the previous batch ends their queued jobs (history).
            let body = alerts(round, batch - 1, 5, "resolved");
            let Some(removed) = post_alerts(&c, &base, &body, "removed").await else {
                return;
            };
            acked.lock().unwrap().cancelled.extend(removed);
        }
        if let Some(&id) = ids.first() {
            let r = c
                .post(format!("{base}/api/v1/merges/{id}/cancel"))
                .bearer_auth(TOKEN)
                .send()
                .await;
            let Ok(r) = r else { return };
            if r.status().is_success()
                && let Ok(job) = r.json::<Value>().await
                && job["state"] == "cancelled"
            {
                acked.lock().unwrap().cancelled.insert(id);
            }
        }
    }
}

async fn job(base: &str, id: u64) -> Option<Value> {
    let r = client()
        .get(format!("{base}/api/v1/merges/{id}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("the API answers");
    if r.status() == 404 {
        return None;
    }
    assert!(r.status().is_success(), "GET job {id}: {}", r.status());
    Some(r.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_queued_job_or_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("token"), TOKEN).expect("token");
    std::fs::create_dir_all(dir.path().join("warehouse")).expect("warehouse");
    // The MetaStore port refuses connections: every job fails at once, retryably, and is
    // re-queued with backoff, so the queue changes under the kills.
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "audit_log = \"audit.jsonl\"\nstate_dir = \"state\"\n\
             [api]\nbearer_token_file = \"token\"\n\
             [queue]\ncapacity = 100000\ncluster_capacity = 100000\nhistory = 100000\n\
             max_running = 4\ncluster_max_running = 4\n\
             [native]\nrecover_on_start = false\n\
             [[cluster]]\nname = \"c\"\nengine = \"hive\"\n\
             [cluster.metastore]\nurl = \"mysql://root@127.0.0.1:1/none\"\nconnect_timeout = \"1s\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            dir.path().join("warehouse").display()
        ),
    )
    .expect("agent.toml");
    let agent = AgentProcess::new(env!("CARGO_BIN_EXE_hsf-agent"), dir.path());
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let (mut child, mut base) = start(&agent, dir.path()).await;
    let mut max_seen = 0;
    for round in 0..5 {
        let task = tokio::spawn(load(base.clone(), round, Arc::clone(&acked)));
        let ms = rand::rng().random_range(300..1500);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        kill9(child);
        task.abort();
        let _ = task.await;
        (child, base) = start(&agent, dir.path()).await;
        let (queued, cancelled) = {
            let a = acked.lock().unwrap();
            (a.queued.clone(), a.cancelled.clone())
        };
        assert!(
            queued.len() > 20 * (round + 1),
            "round {round}: too little load to mean anything ({} jobs)",
            queued.len()
        );
        let mut lost = Vec::new();
        for &id in &queued {
            match job(&base, id).await {
                None => lost.push(id),
                Some(j) if cancelled.contains(&id) => {
                    assert_eq!(j["state"], "cancelled", "job {id}: {j}");
                }
                Some(_) => {}
            }
        }
        assert!(
            lost.is_empty(),
            "round {round} (killed after {ms} ms): acknowledged jobs lost: {lost:?}"
        );
        max_seen = max_seen.max(queued.last().copied().unwrap_or(0));
        eprintln!(
            "round {round}: killed after {ms} ms; {} acknowledged jobs and {} cancellations all present",
            queued.len(),
            cancelled.len()
        );
    }
    // Ids continue after every id handed out before the kills.
    let new = post_alerts(&client(), &base, &alerts(99, 0, 1, "firing"), "queued")
        .await
        .expect("webhook");
    let new_id = *new.first().expect("a new job");
    assert!(new_id > max_seen, "{new_id} <= {max_seen}");
    kill9(child);
}
