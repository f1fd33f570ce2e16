//! Start-up recovery that cannot finish: the agent says so (`/ready` 503 with the reason, the
//! `hive_merge_recovery_unrecovered` gauge the HiveMergeRecoveryIncomplete alert watches) and
//! retries until it succeeds — here until the MetaStore database it needs exists.

use std::time::{Duration, Instant};

use hive_smallfiles_tests::metastore_fixture::{DbKind, FixtureDb, SchemaVersion, unique_db_name};
use hive_smallfiles_tests::services::Agent;

/// `(status, body)` of a GET with the bearer token.
async fn get(url: &str, token: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    match client.get(url).bearer_auth(token).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// The value of an unlabelled gauge in a text exposition.
fn gauge(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unrecovered_merges_keep_ready_false_until_a_retry_succeeds() {
    let db_name = unique_db_name("recovery");
    let dir = tempfile::tempdir().expect("tempdir");
    let token = "recovery-token-0123456789";
    std::fs::write(dir.path().join("token"), token).expect("token");
    std::fs::create_dir_all(dir.path().join("warehouse")).expect("warehouse");
    std::fs::write(
        dir.path().join("agent.toml"),
        format!(
            "audit_log = \"audit.jsonl\"\n[api]\nbearer_token_file = \"token\"\n\
             [[cluster]]\nname = \"c\"\nengine = \"hive\"\n\
             [cluster.metastore]\nurl = \"mysql://root@127.0.0.1:3306/{db_name}\"\nconnect_timeout = \"2s\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            dir.path().join("warehouse").display()
        ),
    )
    .expect("agent.toml");
    // The MetaStore database does not exist yet: recovery cannot list the staging areas.
    let agent = Agent::from_file(&dir.path().join("agent.toml")).await;
    let base = agent.base_url.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = get(&format!("{base}/ready"), token).await;
        assert_eq!(code, 503, "not ready while recovery is incomplete: {body}");
        // The first pass sets the gauge, then says why on /ready.
        if body.contains("not recovered") {
            let (_, metrics) = get(&format!("{base}/metrics"), token).await;
            assert_eq!(
                gauge(&metrics, "hive_merge_recovery_unrecovered"),
                Some(1.0),
                "{metrics}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the first recovery pass never ended: {body}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let db = FixtureDb::create(DbKind::Mysql, SchemaVersion::Hive3_1, &db_name)
        .await
        .expect("MariaDB at 127.0.0.1:3306 (tests/run.sh starts it)");
    // Retried with backoff (5 s, then 10 s): ready once a pass succeeds.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (code, body) = get(&format!("{base}/ready"), token).await;
        if code == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "recovery was not retried to success: {code} {body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (_, metrics) = get(&format!("{base}/metrics"), token).await;
    assert_eq!(
        gauge(&metrics, "hive_merge_recovery_unrecovered"),
        Some(0.0)
    );
    agent.stop().await;
    db.drop_database().await.expect("drop");
}
