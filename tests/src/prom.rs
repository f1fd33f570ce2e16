//! Reading Prometheus text exposition in tests, and running the real `promtool`.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

/// One sample: metric name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Metric name.
    pub name: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Value.
    pub value: f64,
}

/// Parses text format 0.0.4 samples (comments skipped), unescaping label values.
pub fn parse(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, rest) = match line.find('{') {
            Some(i) => (&line[..i], &line[i..]),
            None => {
                let (n, v) = line.split_once(' ').unwrap_or((line, "NaN"));
                out.push(Sample {
                    name: n.to_owned(),
                    labels: BTreeMap::new(),
                    value: v.trim().parse().unwrap_or(f64::NAN),
                });
                continue;
            }
        };
        let mut labels = BTreeMap::new();
        let bytes: Vec<char> = rest.chars().collect();
        let mut i = 1;
        while i < bytes.len() && bytes[i] != '}' {
            let mut key = String::new();
            while bytes[i] != '=' {
                key.push(bytes[i]);
                i += 1;
            }
            i += 2; // ="
            let mut val = String::new();
            while bytes[i] != '"' {
                if bytes[i] == '\\' {
                    i += 1;
                    val.push(match bytes[i] {
                        'n' => '\n',
                        c => c,
                    });
                } else {
                    val.push(bytes[i]);
                }
                i += 1;
            }
            i += 1;
            if i < bytes.len() && bytes[i] == ',' {
                i += 1;
            }
            labels.insert(key.trim().to_owned(), val);
        }
        let value: String = bytes[i + 1..].iter().collect();
        let value = value.split_whitespace().next().unwrap_or("NaN");
        out.push(Sample {
            name: name.to_owned(),
            labels,
            value: value.parse().unwrap_or(f64::NAN),
        });
    }
    out
}

/// The value of the sample with this name whose labels include all of `want`.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Runs `promtool check metrics` on `text`; returns its combined output (empty = clean).
/// Panics if promtool is missing: the test setup installs it.
pub fn promtool_check_metrics(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus) must be installed: run tests/run.sh");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write to promtool");
    let out = child.wait_with_output().expect("promtool runs");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
