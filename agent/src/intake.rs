//! Intake: the pure step from one Alertmanager payload to merge requests.
//!
//! [`intake`] owns the per-alert rules and nothing else (no locks, no I/O, no clock):
//!
//! * a **firing** alert with non-empty `cluster`, `database` and `table` labels (and an
//!   optional `partition` label, a partition name `k1=v1/k2=v2`) becomes a request for that
//!   table; alerts of one table fold into one [`AlertRequest`] (union of partitions and
//!   fingerprints, max priority). An alert without a `partition` label asks for the whole
//!   table, which absorbs partition requests (an empty partition set means "let the planner
//!   choose among all partitions");
//! * a **resolved** alert withdraws its fingerprint from the table's queued item (the queue
//!   removes the item once no firing alert and no manual request backs it; running jobs are
//!   never touched);
//! * a firing alert for a table still in its post-merge cool-down is dropped (`cooldown`);
//! * alerts with an `action` label other than `merge` are not for this agent
//!   (`ignored_action`); alerts missing or with unusable labels are dropped
//!   (`invalid_labels`), alerts of clusters the agent does not manage too
//!   (`unknown_cluster`), alerts with a status other than firing/resolved
//!   (`invalid_status`).
//!
//! Priority (ordering only) comes from the first number found in the labels, then the
//! annotations, under `excess_files`, `priority` or `value`.
//!
//! Folding *across* payloads (Alertmanager re-sends groups every `repeat_interval` and after
//! failures) is the queue's job; it uses the same [`AlertRequest`] values, so re-sending a
//! payload is idempotent.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use crate::alertmanager::{Alert, AlertStatus, WebhookPayload};
use crate::work::{Source, TableKey, WorkItem};

/// Drop reasons (values of `intake_dropped{reason}`).
pub mod reason {
    /// Missing or unusable `cluster`/`database`/`table`/`partition` labels.
    pub const INVALID_LABELS: &str = "invalid_labels";
    /// The table was merged within its cool-down.
    pub const COOLDOWN: &str = "cooldown";
    /// An `action` label other than `merge`.
    pub const IGNORED_ACTION: &str = "ignored_action";
    /// A cluster the agent does not manage.
    pub const UNKNOWN_CLUSTER: &str = "unknown_cluster";
    /// An alert status other than firing or resolved.
    pub const INVALID_STATUS: &str = "invalid_status";
    /// The queue is full (counted by the queue).
    pub const QUEUE_FULL: &str = "queue_full";
    /// A job for the table is running (counted by the queue).
    pub const RUNNING: &str = "running";
}

/// Labels the intake reads.
pub mod labels {
    /// Cluster label.
    pub const CLUSTER: &str = "cluster";
    /// Database label.
    pub const DATABASE: &str = "database";
    /// Table label.
    pub const TABLE: &str = "table";
    /// Optional partition name label.
    pub const PARTITION: &str = "partition";
    /// Optional action label; only `merge` (or absent) is for this agent.
    pub const ACTION: &str = "action";
    /// Keys searched (labels, then annotations) for the ordering priority.
    pub const PRIORITY_KEYS: [&str; 3] = ["excess_files", "priority", "value"];
}

/// Settings of the intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeSettings {
    /// Clusters the agent manages; `None` accepts any cluster name.
    pub clusters: Option<BTreeSet<String>>,
    /// Longest accepted `cluster`, `database` or `table` label (bytes). Default 256.
    pub max_name_len: usize,
    /// Longest accepted `partition` label (bytes). Default 4096.
    pub max_partition_len: usize,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        Self {
            clusters: None,
            max_name_len: 256,
            max_partition_len: 4096,
        }
    }
}

/// What the intake needs to know about the agent's state.
pub trait IntakeView {
    /// End of the table's post-merge cool-down, if any.
    fn cooldown_until(&self, key: &TableKey) -> Option<SystemTime>;
}

impl IntakeView for HashMap<TableKey, SystemTime> {
    fn cooldown_until(&self, key: &TableKey) -> Option<SystemTime> {
        self.get(key).copied()
    }
}

/// One firing alert's contribution to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The partition it names; `None`: the whole table.
    pub partition: Option<String>,
    /// Its priority.
    pub priority: u64,
}

/// Firing alerts of one table, folded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRequest {
    /// The table.
    pub key: TableKey,
    /// Fingerprint → what that alert asked for.
    pub origins: BTreeMap<String, Origin>,
}

impl AlertRequest {
    /// Partitions asked for; empty when any alert asked for the whole table.
    pub fn partitions(&self) -> BTreeSet<String> {
        partitions_of(self.origins.values())
    }

    /// Highest priority of the alerts.
    pub fn priority(&self) -> u64 {
        self.origins.values().map(|o| o.priority).max().unwrap_or(0)
    }

    /// As a work item.
    pub fn to_work_item(&self) -> WorkItem {
        WorkItem {
            key: self.key.clone(),
            partitions: self.partitions(),
            priority: self.priority(),
            fingerprints: self.origins.keys().cloned().collect(),
            source: Source::Alert,
            dry_run: false,
        }
    }
}

/// Union of partitions; empty if any origin asks for the whole table.
pub fn partitions_of<'a>(origins: impl IntoIterator<Item = &'a Origin>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for o in origins {
        match &o.partition {
            Some(p) => {
                out.insert(p.clone());
            }
            None => return BTreeSet::new(),
        }
    }
    out
}

/// What one payload asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntakeDecision {
    /// Requests, one per table, in table order.
    pub requests: Vec<AlertRequest>,
    /// Resolved fingerprints by table.
    pub resolved: BTreeMap<TableKey, BTreeSet<String>>,
    /// Alerts dropped, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Alerts received, by status label (`firing`, `resolved`, `unknown`).
    pub received: BTreeMap<&'static str, u64>,
}

/// Applies the intake rules to one payload (see the module docs).
pub fn intake(
    payload: &WebhookPayload,
    now: SystemTime,
    view: &dyn IntakeView,
    settings: &IntakeSettings,
) -> IntakeDecision {
    let mut d = IntakeDecision::default();
    let mut requests: BTreeMap<TableKey, AlertRequest> = BTreeMap::new();
    for alert in payload.alerts() {
        *d.received.entry(alert.status.label()).or_default() += 1;
        if let Some(action) = alert.labels.get(labels::ACTION)
            && action != "merge"
        {
            *d.dropped.entry(reason::IGNORED_ACTION).or_default() += 1;
            continue;
        }
        let (key, partition) = match table_of(alert, settings) {
            Ok(x) => x,
            Err(r) => {
                *d.dropped.entry(r).or_default() += 1;
                continue;
            }
        };
        match alert.status {
            AlertStatus::Firing => {
                if view.cooldown_until(&key).is_some_and(|until| until > now) {
                    *d.dropped.entry(reason::COOLDOWN).or_default() += 1;
                    continue;
                }
                let origin = Origin {
                    partition,
                    priority: priority_of(alert),
                };
                let req = requests.entry(key.clone()).or_insert_with(|| AlertRequest {
                    key,
                    origins: BTreeMap::new(),
                });
                let fp = alert.fingerprint_or_hash();
                match req.origins.get_mut(&fp) {
                    // The same alert twice in one payload: keep the higher priority.
                    Some(o) => o.priority = o.priority.max(origin.priority),
                    None => {
                        req.origins.insert(fp, origin);
                    }
                }
            }
            AlertStatus::Resolved => {
                d.resolved
                    .entry(key)
                    .or_default()
                    .insert(alert.fingerprint_or_hash());
            }
            AlertStatus::Unknown => {
                *d.dropped.entry(reason::INVALID_STATUS).or_default() += 1;
            }
        }
    }
    d.requests = requests.into_values().collect();
    d
}

fn table_of(
    alert: &Alert,
    settings: &IntakeSettings,
) -> Result<(TableKey, Option<String>), &'static str> {
    let name = |label: &str| -> Result<String, &'static str> {
        match alert.labels.get(label) {
            Some(v) if valid_name(v, settings.max_name_len) => Ok(v.clone()),
            _ => Err(reason::INVALID_LABELS),
        }
    };
    let key = TableKey {
        cluster: name(labels::CLUSTER)?,
        database: name(labels::DATABASE)?,
        table: name(labels::TABLE)?,
    };
    let partition = match alert.labels.get(labels::PARTITION) {
        // Prometheus drops empty labels; treat an empty one the same way.
        None => None,
        Some(p) if p.is_empty() => None,
        Some(p) if valid_partition(p, settings.max_partition_len) => Some(p.clone()),
        Some(_) => return Err(reason::INVALID_LABELS),
    };
    if let Some(clusters) = &settings.clusters
        && !clusters.contains(&key.cluster)
    {
        return Err(reason::UNKNOWN_CLUSTER);
    }
    Ok((key, partition))
}

fn valid_name(v: &str, max: usize) -> bool {
    !v.is_empty() && v.len() <= max && !v.chars().any(char::is_control)
}

/// Whether `p` looks like a partition name (`k1=v1/k2=v2`, non-empty keys).
pub fn valid_partition(p: &str, max: usize) -> bool {
    p.len() <= max
        && !p.chars().any(char::is_control)
        && p.split('/').all(|seg| {
            seg.split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && !k.contains('='))
        })
}

/// The ordering priority of an alert (0 if none is given).
pub fn priority_of(alert: &Alert) -> u64 {
    for map in [&alert.labels, &alert.annotations] {
        for key in labels::PRIORITY_KEYS {
            if let Some(v) = map.get(key)
                && let Ok(f) = v.trim().parse::<f64>()
                && f.is_finite()
            {
                // Saturating float-to-int conversion; negative values become 0.
                return f.max(0.0) as u64;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(c: &str, d: &str, t: &str) -> TableKey {
        TableKey {
            cluster: c.into(),
            database: d.into(),
            table: t.into(),
        }
    }

    fn payload(alerts: &str) -> WebhookPayload {
        WebhookPayload::parse(
            format!(r#"{{"version":"4","status":"firing","alerts":[{alerts}]}}"#).as_bytes(),
        )
        .unwrap()
    }

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    }

    struct Case {
        name: &'static str,
        alerts: &'static str,
        /// (table, partitions, fingerprints, priority)
        want: Vec<(TableKey, Vec<&'static str>, Vec<&'static str>, u64)>,
        resolved: Vec<(TableKey, Vec<&'static str>)>,
        dropped: Vec<(&'static str, u64)>,
    }

    #[test]
    fn table_driven() {
        let cases = vec![
            Case {
                name: "one firing alert",
                alerts: r#"{"status":"firing","fingerprint":"f1","labels":{"cluster":"c","database":"db","table":"t"},
                            "annotations":{"excess_files":"120"}}"#,
                want: vec![(key("c", "db", "t"), vec![], vec!["f1"], 120)],
                resolved: vec![],
                dropped: vec![],
            },
            Case {
                name: "partitions fold, max priority, duplicates collapse",
                alerts: r#"{"status":"firing","fingerprint":"f1","labels":{"cluster":"c","database":"db","table":"t","partition":"dt=1","excess_files":"5"}},
                           {"status":"firing","fingerprint":"f2","labels":{"cluster":"c","database":"db","table":"t","partition":"dt=2"},"annotations":{"value":"7.9e1"}},
                           {"status":"firing","fingerprint":"f2","labels":{"cluster":"c","database":"db","table":"t","partition":"dt=2"}},
                           {"status":"firing","fingerprint":"f3","labels":{"cluster":"c","database":"db","table":"u","partition":"dt=1/h=3"}}"#,
                want: vec![
                    (
                        key("c", "db", "t"),
                        vec!["dt=1", "dt=2"],
                        vec!["f1", "f2"],
                        79,
                    ),
                    (key("c", "db", "u"), vec!["dt=1/h=3"], vec!["f3"], 0),
                ],
                resolved: vec![],
                dropped: vec![],
            },
            Case {
                name: "whole-table alert absorbs partitions",
                alerts: r#"{"status":"firing","fingerprint":"f1","labels":{"cluster":"c","database":"db","table":"t","partition":"dt=1"}},
                           {"status":"firing","fingerprint":"f2","labels":{"cluster":"c","database":"db","table":"t","partition":""}}"#,
                want: vec![(key("c", "db", "t"), vec![], vec!["f1", "f2"], 0)],
                resolved: vec![],
                dropped: vec![],
            },
            Case {
                name: "resolved alerts are withdrawals",
                alerts: r#"{"status":"resolved","fingerprint":"f1","labels":{"cluster":"c","database":"db","table":"t"},"endsAt":"2024-01-01T00:00:00Z"},
                           {"status":"firing","fingerprint":"f2","labels":{"cluster":"c","database":"db","table":"u"}}"#,
                want: vec![(key("c", "db", "u"), vec![], vec!["f2"], 0)],
                resolved: vec![(key("c", "db", "t"), vec!["f1"])],
                dropped: vec![],
            },
            Case {
                name: "invalid labels, actions, status",
                alerts: r#"{"status":"firing","fingerprint":"a","labels":{"cluster":"c","database":"db"}},
                           {"status":"firing","fingerprint":"b","labels":{"cluster":"","database":"db","table":"t"}},
                           {"status":"firing","fingerprint":"c","labels":{"cluster":"c","database":"db","table":"t","partition":"nope"}},
                           {"status":"firing","fingerprint":"d","labels":{"cluster":"c","database":"db","table":"t","action":"notify"}},
                           {"status":"firing","fingerprint":"e","labels":{"cluster":"c","database":"db","table":"t","action":"merge"}},
                           {"status":"pending","fingerprint":"f","labels":{"cluster":"c","database":"db","table":"t"}},
                           {"status":"firing","fingerprint":"g","labels":{"cluster":"elsewhere","database":"db","table":"t"}},
                           {"status":"resolved","fingerprint":"h","labels":{}}"#,
                want: vec![(key("c", "db", "t"), vec![], vec!["e"], 0)],
                resolved: vec![],
                dropped: vec![
                    (reason::INVALID_LABELS, 4),
                    (reason::IGNORED_ACTION, 1),
                    (reason::INVALID_STATUS, 1),
                    (reason::UNKNOWN_CLUSTER, 1),
                ],
            },
            Case {
                name: "cool-down drops firing alerts of recently merged tables only",
                alerts: r#"{"status":"firing","fingerprint":"f1","labels":{"cluster":"c","database":"db","table":"merged"}},
                           {"status":"firing","fingerprint":"f2","labels":{"cluster":"c","database":"db","table":"expired"}},
                           {"status":"resolved","fingerprint":"f3","labels":{"cluster":"c","database":"db","table":"merged"}}"#,
                want: vec![(key("c", "db", "expired"), vec![], vec!["f2"], 0)],
                resolved: vec![(key("c", "db", "merged"), vec!["f3"])],
                dropped: vec![(reason::COOLDOWN, 1)],
            },
        ];
        let mut cooldowns = HashMap::new();
        cooldowns.insert(key("c", "db", "merged"), now() + Duration::from_secs(60));
        cooldowns.insert(key("c", "db", "expired"), now() - Duration::from_secs(1));
        let settings = IntakeSettings {
            clusters: Some(["c".to_owned()].into()),
            ..IntakeSettings::default()
        };
        for case in cases {
            let d = intake(&payload(case.alerts), now(), &cooldowns, &settings);
            let got: Vec<_> = d
                .requests
                .iter()
                .map(|r| {
                    let w = r.to_work_item();
                    (
                        w.key,
                        w.partitions.into_iter().collect::<Vec<_>>(),
                        w.fingerprints.into_iter().collect::<Vec<_>>(),
                        w.priority,
                    )
                })
                .collect();
            let want: Vec<_> = case
                .want
                .iter()
                .map(|(k, p, f, pr)| {
                    (
                        k.clone(),
                        p.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                        f.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>(),
                        *pr,
                    )
                })
                .collect();
            assert_eq!(got, want, "{}", case.name);
            let resolved: BTreeMap<_, BTreeSet<String>> = case
                .resolved
                .iter()
                .map(|(k, f)| (k.clone(), f.iter().map(|s| (*s).to_owned()).collect()))
                .collect();
            assert_eq!(d.resolved, resolved, "{}", case.name);
            let dropped: BTreeMap<_, _> = case.dropped.iter().copied().collect();
            assert_eq!(d.dropped, dropped, "{}", case.name);
        }
    }

    #[test]
    fn received_counts_by_status() {
        let d = intake(
            &payload(
                r#"{"status":"firing","labels":{}},{"status":"resolved","labels":{}},{"status":"x"}"#,
            ),
            now(),
            &HashMap::new(),
            &IntakeSettings::default(),
        );
        assert_eq!(
            d.received,
            [("firing", 1), ("resolved", 1), ("unknown", 1)].into()
        );
    }

    #[test]
    fn priorities_and_partition_names() {
        let alert = |l: &[(&str, &str)], a: &[(&str, &str)]| Alert {
            labels: l.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            annotations: a.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect(),
            ..Alert::default()
        };
        assert_eq!(priority_of(&alert(&[], &[])), 0);
        assert_eq!(
            priority_of(&alert(&[("excess_files", "10")], &[("value", "99")])),
            10
        );
        assert_eq!(priority_of(&alert(&[], &[("priority", "-3")])), 0);
        assert_eq!(
            priority_of(&alert(&[], &[("value", "NaN"), ("priority", "4")])),
            4
        );
        assert_eq!(priority_of(&alert(&[], &[("value", "1e300")])), u64::MAX);
        assert!(valid_partition("dt=2024-01-01/h=3", 100));
        assert!(valid_partition("k=", 100));
        assert!(!valid_partition("dt", 100));
        assert!(!valid_partition("=x", 100));
        assert!(!valid_partition("a=1//b=2", 100));
        assert!(!valid_partition("a=1", 2));
    }
}
