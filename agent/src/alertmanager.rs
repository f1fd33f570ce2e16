//! Alertmanager's webhook payload (version "4") as it arrives on the wire.
//!
//! This module owns the wire types and their lenient parsing: unknown fields (newer
//! Alertmanager releases add `notification_reason`, `routeLabels`, ...) are ignored, `null`
//! maps and strings read as empty, and timestamps stay strings until asked for (a bad
//! timestamp never rejects a payload). What *does* reject a payload, with a typed
//! [`PayloadError`]: malformed JSON, a `version` other than "4", a missing `alerts` array.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize};

/// The only payload version this agent understands.
pub const PAYLOAD_VERSION: &str = "4";

/// Why a webhook body was rejected (answered with a 4xx: Alertmanager does not retry).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    /// Not JSON, or JSON of the wrong shape.
    #[error("malformed webhook payload: {0}")]
    Malformed(String),
    /// `version` is not "4" (or absent).
    #[error("unsupported webhook payload version {0:?} (expected \"4\")")]
    Version(String),
    /// No `alerts` array.
    #[error("webhook payload has no alerts array")]
    MissingAlerts,
}

/// Alert or group status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// Firing.
    Firing,
    /// Resolved.
    Resolved,
    /// Anything else (kept so one odd alert does not reject the whole payload).
    #[default]
    Unknown,
}

impl AlertStatus {
    /// Metric label value.
    pub fn label(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Unknown => "unknown",
        }
    }
}

impl<'de> Deserialize<'de> for AlertStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        Ok(match s.as_deref() {
            Some("firing") => Self::Firing,
            Some("resolved") => Self::Resolved,
            _ => Self::Unknown,
        })
    }
}

/// Label or annotation map.
pub type KV = BTreeMap<String, String>;

/// The webhook body.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Payload version ("4").
    #[serde(default, deserialize_with = "null_default")]
    pub version: String,
    /// Stable id of the alert group.
    #[serde(default, deserialize_with = "null_default")]
    pub group_key: String,
    /// Alerts cut by the receiver's `max_alerts`.
    #[serde(default, deserialize_with = "lenient_u64")]
    pub truncated_alerts: u64,
    /// Group status (`firing` if any alert fires).
    #[serde(default)]
    pub status: AlertStatus,
    /// Receiver name (regex-quoted by Alertmanager).
    #[serde(default, deserialize_with = "null_default")]
    pub receiver: String,
    /// Labels the group is keyed by.
    #[serde(default, deserialize_with = "null_default")]
    pub group_labels: KV,
    /// Labels every alert shares.
    #[serde(default, deserialize_with = "null_default")]
    pub common_labels: KV,
    /// Annotations every alert shares.
    #[serde(default, deserialize_with = "null_default")]
    pub common_annotations: KV,
    /// Alertmanager's external URL.
    #[serde(default, rename = "externalURL", deserialize_with = "null_default")]
    pub external_url: String,
    /// The alerts (required).
    #[serde(default)]
    pub alerts: Option<Vec<Alert>>,
}

/// One alert of a payload.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alert {
    /// `firing` or `resolved`.
    #[serde(default)]
    pub status: AlertStatus,
    /// Labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: KV,
    /// Annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: KV,
    /// RFC 3339 start time.
    #[serde(default, deserialize_with = "null_default")]
    pub starts_at: String,
    /// RFC 3339 end time; Go's zero time for firing alerts.
    #[serde(default, deserialize_with = "null_default")]
    pub ends_at: String,
    /// Link to the rule's expression.
    #[serde(default, rename = "generatorURL", deserialize_with = "null_default")]
    pub generator_url: String,
    /// Stable hash of the label set.
    #[serde(default, deserialize_with = "null_default")]
    pub fingerprint: String,
}

impl Alert {
    /// Start time, if valid and not Go's zero time.
    pub fn starts_at(&self) -> Option<SystemTime> {
        parse_time(&self.starts_at)
    }

    /// End time, if valid and not Go's zero time (firing alerts carry the zero time).
    pub fn ends_at(&self) -> Option<SystemTime> {
        parse_time(&self.ends_at)
    }

    /// The fingerprint, or (if Alertmanager left it out) a stable hash of the labels.
    pub fn fingerprint_or_hash(&self) -> String {
        if !self.fingerprint.is_empty() {
            return self.fingerprint.clone();
        }
        // FNV-1a over the sorted label pairs: stable across processes and releases.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for (k, v) in &self.labels {
            for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xfe]) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        format!("{h:016x}")
    }
}

impl WebhookPayload {
    /// Parses and validates a webhook body.
    pub fn parse(body: &[u8]) -> Result<Self, PayloadError> {
        // serde reads structs from JSON arrays too; a payload is an object.
        if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(PayloadError::Malformed("expected a JSON object".into()));
        }
        let payload: Self =
            serde_json::from_slice(body).map_err(|e| PayloadError::Malformed(e.to_string()))?;
        if payload.version != PAYLOAD_VERSION {
            return Err(PayloadError::Version(payload.version));
        }
        if payload.alerts.is_none() {
            return Err(PayloadError::MissingAlerts);
        }
        Ok(payload)
    }

    /// The alerts (empty if absent; [`parse`](Self::parse) rejects that case).
    pub fn alerts(&self) -> &[Alert] {
        self.alerts.as_deref().unwrap_or(&[])
    }
}

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let v = Option::<serde_json::Value>::deserialize(d)?;
    Ok(match v {
        Some(serde_json::Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        Some(serde_json::Value::String(s)) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// Parses an RFC 3339 timestamp (`2024-05-01T10:00:00.123456789+02:00`, `...Z`). Go's zero
/// time (year 1) and anything before the Unix epoch or unparsable read as `None`.
pub fn parse_time(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    // Go's zero time `0001-01-01T00:00:00Z` ("no end") is before the epoch, too.
    if t.timestamp() < 0 {
        return None;
    }
    Some(SystemTime::from(t))
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    const SAMPLE: &str = r#"{
      "receiver": "hive\\-merge",
      "status": "firing",
      "alerts": [
        {
          "status": "firing",
          "labels": {"alertname": "HiveSmallFiles", "cluster": "prod", "database": "sales", "table": "orders"},
          "annotations": {"excess_files": "1200"},
          "startsAt": "2024-05-01T10:00:00.123456789+02:00",
          "endsAt": "0001-01-01T00:00:00Z",
          "generatorURL": "http://prom/graph",
          "fingerprint": "a1b2c3d4e5f60718",
          "somethingNew": {"x": 1}
        }
      ],
      "groupLabels": {"alertname": "HiveSmallFiles"},
      "commonLabels": {"alertname": "HiveSmallFiles"},
      "commonAnnotations": {},
      "externalURL": "http://am:9093",
      "version": "4",
      "groupKey": "{}:{alertname=\"HiveSmallFiles\"}",
      "truncatedAlerts": 0,
      "notification_reason": "new_alerts",
      "routeLabels": null
    }"#;

    #[test]
    fn parses_version_4_and_ignores_unknown_fields() {
        let p = WebhookPayload::parse(SAMPLE.as_bytes()).unwrap();
        assert_eq!(p.status, AlertStatus::Firing);
        assert_eq!(p.receiver, "hive\\-merge");
        assert_eq!(p.external_url, "http://am:9093");
        let a = &p.alerts()[0];
        assert_eq!(a.labels["table"], "orders");
        assert_eq!(a.fingerprint_or_hash(), "a1b2c3d4e5f60718");
        assert_eq!(a.ends_at(), None, "Go zero time means none");
        let start = a.starts_at().unwrap();
        assert_eq!(
            start.duration_since(UNIX_EPOCH).unwrap(),
            Duration::new(1_714_550_400, 123_456_789)
        );
    }

    #[test]
    fn rejections_are_typed() {
        type Check = fn(&PayloadError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("not json", |e| matches!(e, PayloadError::Malformed(_))),
            ("[]", |e| matches!(e, PayloadError::Malformed(_))),
            (
                r#"{"version":"3","alerts":[]}"#,
                |e| matches!(e, PayloadError::Version(v) if v == "3"),
            ),
            (r#"{"alerts":[]}"#, |e| {
                matches!(e, PayloadError::Version(_))
            }),
            (r#"{"version":"4"}"#, |e| *e == PayloadError::MissingAlerts),
            (r#"{"version":"4","alerts":null}"#, |e| {
                *e == PayloadError::MissingAlerts
            }),
            (r#"{"version":"4","alerts":{}}"#, |e| {
                matches!(e, PayloadError::Malformed(_))
            }),
        ];
        for (body, check) in cases {
            let err = WebhookPayload::parse(body.as_bytes()).unwrap_err();
            assert!(check(&err), "{body}: {err:?}");
        }
    }

    #[test]
    fn lenient_fields() {
        let p = WebhookPayload::parse(
            br#"{"version":"4","alerts":[{"status":"weird","labels":null,"fingerprint":null}],
                 "truncatedAlerts":"3","groupLabels":null}"#,
        )
        .unwrap();
        assert_eq!(p.truncated_alerts, 3);
        assert_eq!(p.alerts()[0].status, AlertStatus::Unknown);
        assert!(p.alerts()[0].labels.is_empty());
        // Missing fingerprint: a stable hash of the labels.
        let a = Alert {
            labels: [("a".to_owned(), "b".to_owned())].into(),
            ..Alert::default()
        };
        assert_eq!(
            a.fingerprint_or_hash(),
            Alert::clone(&a).fingerprint_or_hash()
        );
        assert_eq!(a.fingerprint_or_hash().len(), 16);
    }

    #[test]
    fn timestamps() {
        let t = |s: &str| parse_time(s).map(|t| t.duration_since(UNIX_EPOCH).unwrap());
        assert_eq!(t("1970-01-01T00:00:00Z"), Some(Duration::ZERO));
        assert_eq!(
            t("2000-03-01T00:00:00Z"),
            Some(Duration::from_secs(951_868_800))
        );
        assert_eq!(
            t("2024-02-29T23:59:59.5-01:00"),
            Some(Duration::new(1_709_254_799, 500_000_000))
        );
        assert_eq!(t("0001-01-01T00:00:00Z"), None);
        assert_eq!(t("2024-13-01T00:00:00Z"), None);
        assert_eq!(t("2024-01-01T00:00:00"), None);
        assert_eq!(t("garbage"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("2024-01-01T00:00:00.Z"), None);
        assert_eq!(t("2024-02-30T00:00:00Z"), None);
        assert_eq!(t("1969-12-31T23:59:59Z"), None);
        // Lowercase, a space separator and surrounding blanks; digits past nanoseconds dropped.
        assert_eq!(
            t(" 1970-01-01 00:00:01.1234567891z "),
            Some(Duration::new(1, 123_456_789))
        );
    }
}
