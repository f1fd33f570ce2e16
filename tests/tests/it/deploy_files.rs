//! Checks of the deployment files (`deploy/`): every YAML file's syntax and Kubernetes
//! objects' shape, and the sharded deployments (Kubernetes, systemd, Prometheus) agreeing
//! with each other and with the exporter's `shard = "i/n"` setting. The dashboards are
//! checked in `dashboards.rs`.

use std::path::{Path, PathBuf};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`, sorted.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| suffixes.iter().any(|s| n.ends_with(s)))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn deploy_yaml_files_parse() {
    let files = files(&repo_root().join("deploy"), &[".yml", ".yaml"]);
    assert!(files.len() >= 5, "YAML files under deploy/: {files:?}");
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read YAML");
        let mut documents = 0;
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = <serde_norway::Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if !value.is_null() {
                documents += 1;
            }
            if path.components().any(|c| c.as_os_str() == "kubernetes") && !value.is_null() {
                let kind = value.get("kind").and_then(serde_norway::Value::as_str);
                assert!(
                    kind.is_some(),
                    "{}: a document without kind",
                    path.display()
                );
                if kind != Some("Kustomization") {
                    assert!(
                        value.get("apiVersion").is_some()
                            && value["metadata"].get("name").is_some(),
                        "{}: {kind:?} without apiVersion or metadata.name",
                        path.display()
                    );
                }
            }
        }
        let commented_out_only = text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'));
        assert!(
            documents > 0 || commented_out_only,
            "{}: empty",
            path.display()
        );
    }
}

fn read(path: &str) -> String {
    let p = repo_root().join(path);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The YAML documents of a file.
fn yaml_documents(path: &str) -> Vec<serde_norway::Value> {
    let text = read(path);
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            <serde_norway::Value as serde::Deserialize>::deserialize(doc)
                .unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// A TOML text without its `shard = …` lines, and the shards those lines name.
fn without_shard(toml: &str) -> (String, Vec<String>) {
    let mut shards = Vec::new();
    let mut rest = String::new();
    for line in toml.lines() {
        match line
            .trim()
            .strip_prefix("shard")
            .and_then(|l| l.trim_start().strip_prefix('='))
        {
            Some(value) => shards.push(value.trim().trim_matches('"').to_owned()),
            None => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    (rest, shards)
}

/// The sharded Kubernetes deployment: a StatefulSet of n exporters, pod i reading
/// `shard-i.toml`, whose every cluster says `shard = "i/n"`; the files are the base
/// configuration plus that line, so that the shards split one and the same set of tables.
#[test]
fn sharded_kubernetes_exporters_agree() {
    let docs = yaml_documents("deploy/kubernetes/sharded/exporter.yaml");
    let sts = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("a StatefulSet");
    let replicas = sts["spec"]["replicas"].as_u64().expect("replicas");
    assert!(replicas >= 2, "replicas {replicas}");
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .filter_map(serde_norway::Value::as_str)
        .collect();
    assert!(
        args.contains(&"--config.file=/etc/hive-smallfiles/config/shard-$(SHARD_INDEX).toml"),
        "{args:?}"
    );
    let env = container["env"].as_sequence().expect("env");
    let index = env
        .iter()
        .find(|e| e["name"] == "SHARD_INDEX")
        .expect("SHARD_INDEX");
    assert_eq!(
        index["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    let config_map = sts["spec"]["template"]["spec"]["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "config")
        .and_then(|v| v["configMap"]["name"].as_str())
        .expect("config volume");

    let cm = yaml_documents("deploy/kubernetes/sharded/configmap-exporter.yaml");
    assert_eq!(cm[0]["metadata"]["name"], config_map);
    let data = cm[0]["data"].as_mapping().expect("data");
    assert_eq!(data.len() as u64, replicas, "one file per pod");
    let base = yaml_documents("deploy/kubernetes/configmap-exporter.yaml");
    let base_toml = base[0]["data"]["exporter.toml"].as_str().expect("base");
    let clusters = base_toml.matches("[[cluster]]").count();
    for i in 0..replicas {
        let key = format!("shard-{i}.toml");
        let text = data
            .get(key.as_str())
            .and_then(serde_norway::Value::as_str)
            .unwrap_or_else(|| panic!("no {key}"));
        let (rest, shards) = without_shard(text);
        assert_eq!(
            rest, base_toml,
            "{key}: not the base configuration plus shard"
        );
        assert_eq!(shards.len(), clusters, "{key}: a shard per cluster");
        for s in shards {
            assert_eq!(s, format!("{i}/{replicas}"), "{key}");
        }
    }

    // The overlay replaces the base's Deployment and its ConfigMap, keeps its Service
    // (job "hive-smallfiles-exporter" of the rules) and adds its own files.
    let k = &yaml_documents("deploy/kubernetes/sharded/kustomization.yaml")[0];
    let resources: Vec<&str> = k["resources"]
        .as_sequence()
        .expect("resources")
        .iter()
        .filter_map(serde_norway::Value::as_str)
        .collect();
    assert_eq!(
        resources,
        ["..", "configmap-exporter.yaml", "exporter.yaml"]
    );
    let patches: String = k["patches"]
        .as_sequence()
        .expect("patches")
        .iter()
        .filter_map(|p| p["patch"].as_str())
        .collect();
    assert!(patches.contains("kind: Deployment\n"), "{patches}");
    assert!(patches.contains("kind: ConfigMap\n"), "{patches}");
    assert_eq!(patches.matches("$patch: delete").count(), 2, "{patches}");
    let headless = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("governing Service");
    assert_eq!(sts["spec"]["serviceName"], headless["metadata"]["name"]);
    assert!(
        headless["metadata"]["labels"]
            .get("app.kubernetes.io/part-of")
            .is_none(),
        "the ServiceMonitor would scrape every pod twice"
    );
}

/// The systemd template unit is the single unit with per-instance configuration and listen
/// address; the hardening and everything else stay the same.
#[test]
fn systemd_template_unit_follows_the_single_unit() {
    let single = read("deploy/systemd/hive-smallfiles-exporter.service");
    let template = read("deploy/systemd/hive-smallfiles-exporter@.service");
    let directives = |text: &str| -> Vec<String> {
        let mut out = Vec::new();
        let mut continued = String::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            continued.push_str(line.trim_end_matches('\\').trim());
            continued.push(' ');
            if !line.ends_with('\\') {
                let l = continued.trim().to_owned();
                if !l.is_empty() {
                    out.push(l);
                }
                continued.clear();
            }
        }
        out
    };
    let (s, t) = (directives(&single), directives(&template));
    let per_instance = |l: &String| {
        l.starts_with("Description=")
            || l.starts_with("ExecStart")
            || l.starts_with("EnvironmentFile=")
    };
    let same_s: Vec<&String> = s.iter().filter(|l| !per_instance(l)).collect();
    let same_t: Vec<&String> = t.iter().filter(|l| !per_instance(l)).collect();
    assert_eq!(same_s, same_t);
    let exec: Vec<&String> = t.iter().filter(|l| l.starts_with("ExecStart")).collect();
    assert_eq!(exec.len(), 2, "{exec:?}");
    for l in exec {
        assert!(
            l.contains("--config.file /etc/hive-smallfiles/exporter-%i.toml"),
            "{l}"
        );
    }
    assert!(
        t.iter()
            .any(|l| l == "EnvironmentFile=/etc/hive-smallfiles/exporter-%i.env")
    );
    assert!(
        t.iter().any(|l| l.starts_with("ExecStart=")
            && l.ends_with("--web.listen-address ${LISTEN_ADDRESS}"))
    );
}

/// The merge alert of the Kubernetes PrometheusRule is the maintained one of `alerts/`.
#[test]
fn prometheus_rule_copy_matches_the_rules() {
    fn merge_alert(groups: &serde_norway::Value) -> (String, String) {
        let rule = groups
            .as_sequence()
            .expect("groups")
            .iter()
            .flat_map(|g| g["rules"].as_sequence().into_iter().flatten())
            .find(|r| r["alert"] == "HiveTableSmallFiles")
            .expect("HiveTableSmallFiles");
        let expr: String = rule["expr"]
            .as_str()
            .expect("expr")
            .lines()
            .map(|l| l.split('#').next().unwrap_or_default())
            .flat_map(str::split_whitespace)
            .collect::<Vec<_>>()
            .join(" ");
        (expr, rule["for"].as_str().unwrap_or_default().to_owned())
    }
    let rules = &yaml_documents("alerts/hive-smallfiles.rules.yml")[0];
    let operator = &yaml_documents("deploy/kubernetes/prometheusrule.yaml")[0];
    assert_eq!(
        merge_alert(&operator["spec"]["groups"]),
        merge_alert(&rules["groups"])
    );
}

/// Every exporter (shards, HA replicas) is scraped under the job name the rules use.
#[test]
fn prometheus_scrapes_the_jobs_the_rules_name() {
    let config = &yaml_documents("deploy/prometheus/prometheus.yml")[0];
    let jobs: Vec<&str> = config["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
        .iter()
        .filter_map(|j| j["job_name"].as_str())
        .collect();
    let rules = read("alerts/hive-smallfiles.rules.yml");
    for job in ["hive-smallfiles-exporter", "hive-smallfiles-agent"] {
        assert!(jobs.contains(&job), "{jobs:?}");
        assert!(rules.contains(&format!("job=\"{job}\"")), "{job}");
    }
}
