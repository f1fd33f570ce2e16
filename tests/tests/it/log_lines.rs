//! What the binaries write to stderr, as processes with stderr on a pipe: one line per event
//! in `--log.format logfmt` (the default) and `json`, no colour when stderr is no terminal,
//! and a webhook's `groupKey` holding a newline and a fake log line stays inside its field
//! (log forgery, CWE-117).

use std::path::Path;
use std::time::Duration;

use hive_smallfiles_tests::logfmt;
use hive_smallfiles_tests::process::ServedProcess;
use hive_smallfiles_tests::services::wait_http_ok;

const FORGED_GROUP: &str = "{}:{alertname=\"x\"}\nts=2024-01-01T00:00:00.000Z level=error target=hive_smallfiles_agent msg=\"FORGED merge of prod.secrets\"";

/// Runs the agent with `args`, posts one webhook whose `groupKey` tries to forge a line, stops
/// it with SIGTERM and returns what it wrote to stderr, colours kept.
async fn agent_log(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::cli::write_agent_config(dir.path(), "log-token");
    let mut all_args = vec!["--config.file", config.to_str().unwrap()];
    all_args.extend(args);
    let mut agent = ServedProcess::start_logging(
        Path::new(crate::AGENT_BIN),
        &all_args,
        Duration::from_secs(30),
    );
    wait_http_ok(
        &format!("{}/healthz", agent.base_url),
        Some("log-token"),
        Duration::from_secs(30),
    )
    .await;
    let payload = serde_json::json!({
        "version": "4", "groupKey": FORGED_GROUP, "status": "firing",
        "receiver": "merge", "alerts": []
    });
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .post(format!("{}/api/v1/alerts", agent.base_url))
        .bearer_auth("log-token")
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    tokio::task::spawn_blocking(move || {
        let code = agent.terminate(Duration::from_secs(20));
        assert_eq!(code, Some(0), "exit after SIGTERM:\n{}", agent.raw_log());
        agent.raw_log()
    })
    .await
    .unwrap()
}

/// The `group` of the one "Webhook received." event.
fn only_group(groups: Vec<String>) -> String {
    assert_eq!(groups.len(), 1, "one Webhook received line: {groups:?}");
    groups.into_iter().next().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logfmt_lines_parse_and_a_forged_group_key_stays_in_its_field() {
    let log = agent_log(&["--log.level", "debug"]).await;
    assert!(!log.contains('\x1b'), "no colour on a pipe:\n{log}");
    let mut parsed = Vec::new();
    for line in log.lines() {
        let pairs = logfmt::parse_line(line).unwrap_or_else(|e| panic!("{e}\n{log}"));
        assert_eq!(pairs[0].0, "ts", "{line}");
        assert_eq!(pairs[1].0, "level", "{line}");
        assert!(
            pairs
                .iter()
                .all(|(_, v)| v != "FORGED merge of prod.secrets"),
            "a forged event: {line}"
        );
        parsed.push(pairs);
    }
    let value = |pairs: &[(String, String)], key: &str| {
        pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
    };
    let group = only_group(
        parsed
            .iter()
            .filter(|p| value(p, "msg").as_deref() == Some("Webhook received."))
            .filter_map(|p| value(p, "group"))
            .collect(),
    );
    assert_eq!(group, FORGED_GROUP, "the field unescapes to what was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parse_and_keep_the_group_key_whole() {
    let log = agent_log(&["--log.level", "debug", "--log.format", "json"]).await;
    assert!(!log.contains('\x1b'), "{log}");
    let mut parsed = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}\n{log}"));
        assert!(v["ts"].is_string() && v["level"].is_string(), "{line}");
        parsed.push(v);
    }
    let group = only_group(
        parsed
            .iter()
            .filter(|v| v["msg"] == "Webhook received.")
            .map(|v| v["group"].as_str().unwrap_or_default().to_owned())
            .collect(),
    );
    assert_eq!(group, FORGED_GROUP);
}
