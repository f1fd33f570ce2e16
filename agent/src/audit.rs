//! The audit log: one JSON object per line, appended, for every step of every job (plan,
//! each statement sent, row counts, files before/after, result). Lines are written whole and
//! flushed, so a crash loses at most the line being written.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::events::JobEvent;
use crate::work::JobId;

/// An append-only JSON-lines file.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AuditLog {
    /// Opens (creating) the log for appending.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one event of a job. Failures are logged, never fatal for the job.
    pub fn record(&self, job: JobId, event: &JobEvent<'_>) {
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let mut line = json!({ "ts": ts, "job": job });
        match (line.as_object_mut(), serde_json::to_value(event)) {
            (Some(obj), Ok(Value::Object(fields))) => obj.extend(fields),
            (_, Err(e)) => {
                tracing::error!(error = %e, "An audit event could not be serialized.");
            }
            _ => {}
        }
        let mut text = line.to_string();
        text.push('\n');
        let result = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit lock poisoned"))
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.flush()
            });
        if let Err(e) = result {
            tracing::error!(path = %self.path.display(), error = %e, "Writing the audit log failed.");
        }
    }

    /// The highest job id in the log (0 when empty), so ids stay unique across restarts.
    pub fn max_job_id(&self) -> JobId {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return 0;
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v.get("job").and_then(Value::as_u64))
            .max()
            .unwrap_or(0)
    }

    /// Every event of one job, oldest first (for `GET /api/v1/merges/{id}`).
    pub fn events_of(&self, job: JobId) -> Vec<Value> {
        let Ok(text) = std::fs::read_to_string(&self.path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v.get("job").and_then(Value::as_u64) == Some(job))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_json_lines() {
        let dir = tempfile::tempdir().unwrap();
        let log = AuditLog::open(&dir.path().join("a/audit.jsonl")).unwrap();
        log.record(1, &JobEvent::Statement { sql: "SELECT 1" });
        log.record(2, &JobEvent::Statement { sql: "SELECT 2" });
        let outcome = crate::work::JobOutcome::DryRun {
            strategy: "native".into(),
            partitions: 1,
        };
        log.record(1, &JobEvent::Finished { outcome: &outcome });
        let events = log.events_of(1);
        assert_eq!(events.len(), 2);
        assert_eq!(events[0]["event"], "statement");
        assert_eq!(events[0]["sql"], "SELECT 1");
        assert_eq!(events[1]["event"], "finished");
        assert_eq!(events[1]["outcome"]["result"], "dry_run");
        assert_eq!(log.max_job_id(), 2);
    }
}
