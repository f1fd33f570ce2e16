//! The alerting rules in `alerts/`: `promtool check rules` is clean and every
//! `promtool test rules` unit-test file passes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn alerts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../alerts")
}

/// The files of `alerts/` whose names end with `suffix`, sorted.
fn files(suffix: &str) -> Vec<PathBuf> {
    let dir = alerts_dir();
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(suffix))
        })
        .collect();
    found.sort();
    assert!(!found.is_empty(), "no *{suffix} in {}", dir.display());
    found
}

fn promtool(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new("promtool")
        .args(args)
        .args(files)
        .current_dir(alerts_dir())
        .output()
        .expect("run promtool (tests/run.sh installs it)")
}

fn text(out: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn rules_are_clean() {
    let rules = files(".rules.yml");
    let out = promtool(&["check", "rules"], &rules);
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(!all.to_ascii_lowercase().contains("warning"), "{all}");
    for rule_file in &rules {
        let name = rule_file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(all.contains(name), "{name} not checked: {all}");
    }
    assert!(all.contains("SUCCESS"), "{all}");
}

#[test]
fn rule_unit_tests_pass() {
    for test_file in files(".test.yml") {
        let out = promtool(&["test", "rules"], std::slice::from_ref(&test_file));
        let all = text(&out);
        assert!(out.status.success(), "{}: {all}", test_file.display());
        assert!(all.contains("SUCCESS"), "{}: {all}", test_file.display());
    }
}

#[test]
fn every_alert_has_tests_and_a_runbook_section() {
    let rules = std::fs::read_to_string(alerts_dir().join("hive-smallfiles.rules.yml"))
        .expect("read rules");
    let tests: String = files(".test.yml")
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read tests"))
        .collect();
    let runbook = std::fs::read_to_string(alerts_dir().join("../docs/runbook.md"))
        .expect("read docs/runbook.md");
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(str::trim)
        .collect();
    assert!(alerts.len() >= 12, "{alerts:?}");
    for alert in alerts {
        let anchor = format!("#{}", alert.to_ascii_lowercase());
        assert!(
            rules.contains(&format!("runbook.md{anchor}\"")),
            "{alert}: runbook_url"
        );
        assert!(
            runbook.contains(&format!("\n## {alert}\n")),
            "{alert}: runbook section"
        );
        let cases = tests.matches(&format!("alertname: {alert}\n")).count();
        assert!(cases >= 2, "{alert}: {cases} alert_rule_test cases");
    }
}
