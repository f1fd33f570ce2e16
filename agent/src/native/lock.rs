//! The exclusive lock of one partition: a file `lock` in the partition's staging area,
//! created with `overwrite=false`, which HDFS (and `O_EXCL` locally) makes atomic — two
//! agents never merge the same partition.
//!
//! The file holds who took it. A lock is *stale*, and may be broken, when its holder is a
//! dead process of this agent (same agent id and host, another instance, and its process
//! gone, a zombie, or its id reused by a process started at another time — what `kill -9` or
//! a crash leaves), or when it was not refreshed for
//! `stale_after` (its modification time; holders refresh it while they work). A live process
//! with the same agent id (the service while an operator runs `recover`) is respected. Breaking deletes the file and
//! creates it anew with `overwrite=false`, so of two agents breaking the same stale lock only
//! one gets it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_core::fs::{FileSystem, FsError};
use serde::{Deserialize, Serialize};

/// Contents of a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockOwner {
    /// Configured agent id (one running process per id).
    pub agent: String,
    /// Random id of this process.
    pub instance: String,
    /// Host name.
    pub host: String,
    /// Process id.
    pub pid: u32,
    /// The process's start time (`/proc/<pid>/stat` field 22, clock ticks since boot), so that
    /// a reused process id is not taken for the holder. Absent in locks of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<u64>,
    /// What it is doing (`merge <id>`, `rollback <id>`, `recover`).
    pub purpose: String,
}

/// Who this process is, for lock files.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Configured agent id.
    pub agent: String,
    /// Random per process.
    pub instance: String,
    /// Locks older than this (not refreshed) are stale.
    pub stale_after: Duration,
}

impl Identity {
    /// A new process identity.
    pub fn new(agent: &str, stale_after: Duration) -> Self {
        Self {
            agent: agent.to_owned(),
            instance: format!("{:016x}", rand::random::<u64>()),
            stale_after,
        }
    }

    fn owner(&self, purpose: &str) -> LockOwner {
        LockOwner {
            agent: self.agent.clone(),
            instance: self.instance.clone(),
            host: hostname(),
            pid: std::process::id(),
            started: proc_stat(std::process::id()).map(|s| s.started),
            purpose: purpose.to_owned(),
        }
    }
}

/// What `/proc/<pid>/stat` says of a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcStat {
    /// Its state: `R`, `S`, `D`, `T`, … ; `Z` for a zombie, `X` for dead.
    state: char,
    /// Start time in clock ticks since boot.
    started: u64,
}

/// Reads `/proc/<pid>/stat` (proc(5)); `None` when there is no such process.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_proc_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// The state (field 3) and start time (field 22) of a `/proc/<pid>/stat` line. The command
/// name (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted after the last `)`.
fn parse_proc_stat(line: &str) -> Option<ProcStat> {
    let rest = &line[line.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    // Fields 4..=21 come between the state and the start time.
    let started = fields.nth(18)?.parse().ok()?;
    Some(ProcStat { state, started })
}

/// Whether the process that wrote a lock still runs on this host: a process of that id that
/// is not a zombie (a killed process stays one until its parent reaps it, and holds nothing)
/// and, when the lock says when its writer started, that started then (not a reused id).
fn process_alive(pid: u32, started: Option<u64>) -> bool {
    if pid == std::process::id() {
        return true;
    }
    match proc_stat(pid) {
        None => false,
        Some(ProcStat {
            state: 'Z' | 'X', ..
        }) => false,
        Some(s) => started.is_none_or(|t| t == s.started),
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_default()
}

/// Why a lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Someone else holds it.
    #[error("partition is locked by agent {} (instance {}, host {}, pid {}): {}", .0.agent, .0.instance, .0.host, .0.pid, .0.purpose)]
    Held(LockOwner),
    /// Filesystem error.
    #[error("lock file: {0}")]
    Fs(#[from] FsError),
}

/// A held lock; release it with [`PartitionLock::release`] (a dropped lock stays on disk
/// and goes stale, which is what a crash leaves too).
#[derive(Debug)]
pub struct PartitionLock {
    fs: Arc<dyn FileSystemWrite>,
    path: String,
    owner: LockOwner,
    refresher: Option<tokio::task::JoinHandle<()>>,
}

/// Reads a lock file's owner (`None` when absent; an unreadable lock counts as foreign).
pub async fn read_owner(fs: &dyn FileSystem, path: &str) -> Result<Option<LockOwner>, FsError> {
    let data = match fs.read_range(path, 0, 64 * 1024).await {
        Ok(d) => d,
        Err(FsError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(Some(serde_json::from_slice(&data).unwrap_or(LockOwner {
        agent: "?".into(),
        instance: "?".into(),
        host: "?".into(),
        pid: 0,
        started: None,
        purpose: format!("unreadable lock: {}", String::from_utf8_lossy(&data)),
    })))
}

impl PartitionLock {
    /// Takes the lock at `path` (its directory is created), breaking a stale one.
    pub async fn acquire(
        fs: Arc<dyn FileSystemWrite>,
        path: &str,
        me: &Identity,
        purpose: &str,
    ) -> Result<Self, LockError> {
        let owner = me.owner(purpose);
        let body = Bytes::from(serde_json::to_vec(&owner).unwrap_or_default());
        for _attempt in 0..2 {
            match fs.create(path, body.clone(), false, Some(0o644)).await {
                Ok(()) => return Ok(Self::held(fs, path, owner, me)),
                Err(FsError::AlreadyExists { .. }) => {}
                Err(e) => return Err(e.into()),
            }
            let status = match fs.file_status(path).await {
                Ok(s) => s,
                Err(FsError::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let Some(current) = read_owner(fs.as_ref(), path).await? else {
                continue;
            };
            // A retried create whose first attempt went through answers AlreadyExists.
            if current.agent == me.agent && current.instance == me.instance {
                return Ok(Self::held(fs, path, owner, me));
            }
            let age_ms = chrono::Utc::now().timestamp_millis() - status.modification_time_ms;
            let previous_incarnation = current.agent == me.agent
                && current.instance != me.instance
                && current.host == hostname()
                && !process_alive(current.pid, current.started);
            let expired = age_ms > i64::try_from(me.stale_after.as_millis()).unwrap_or(i64::MAX);
            if !(previous_incarnation || expired) {
                return Err(LockError::Held(current));
            }
            tracing::warn!(lock = path, holder = ?current, age_ms, "Breaking a stale lock.");
            fs.delete(path, false).await?;
        }
        match read_owner(fs.as_ref(), path).await? {
            Some(current) => Err(LockError::Held(current)),
            None => Err(LockError::Fs(FsError::AlreadyExists {
                path: path.to_owned(),
            })),
        }
    }

    fn held(fs: Arc<dyn FileSystemWrite>, path: &str, owner: LockOwner, me: &Identity) -> Self {
        // Refresh well inside the stale period (its modification time is the heartbeat).
        let every = (me.stale_after / 4).max(Duration::from_secs(1));
        let refresher = {
            let fs = Arc::clone(&fs);
            let path = path.to_owned();
            let owner = owner.clone();
            tokio::spawn(async move {
                let body = Bytes::from(serde_json::to_vec(&owner).unwrap_or_default());
                loop {
                    tokio::time::sleep(every).await;
                    match read_owner(fs.as_ref(), &path).await {
                        Ok(Some(o)) if o == owner => {
                            if let Err(e) = fs.create(&path, body.clone(), true, Some(0o644)).await
                            {
                                tracing::warn!(lock = %path, error = %e, "Refreshing the lock failed.");
                            }
                        }
                        Ok(other) => {
                            tracing::error!(lock = %path, holder = ?other, "Our lock was taken over or removed.");
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(lock = %path, error = %e, "Reading the lock failed.");
                        }
                    }
                }
            })
        };
        Self {
            fs,
            path: path.to_owned(),
            owner,
            refresher: Some(refresher),
        }
    }

    /// Whether the lock file still names this holder.
    pub async fn still_held(&self) -> Result<bool, FsError> {
        Ok(read_owner(self.fs.as_ref(), &self.path).await? == Some(self.owner.clone()))
    }

    /// Deletes the lock file if it is still ours.
    pub async fn release(mut self) -> Result<(), FsError> {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
        if self.still_held().await? {
            self.fs.delete(&self.path, false).await?;
        }
        Ok(())
    }
}

impl Drop for PartitionLock {
    fn drop(&mut self) {
        if let Some(r) = self.refresher.take() {
            r.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    #[test]
    fn parses_proc_stat_with_odd_command_names() {
        let line =
            "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1234 56";
        assert_eq!(
            parse_proc_stat(line),
            Some(ProcStat {
                state: 'S',
                started: 987_654
            })
        );
        assert_eq!(parse_proc_stat("4242 (x) Z"), None);
        assert_eq!(parse_proc_stat("garbage"), None);
    }

    #[test]
    fn this_process_is_alive_and_knows_its_start_time() {
        let me = proc_stat(std::process::id()).expect("/proc/self/stat");
        assert!(process_alive(std::process::id(), Some(me.started)));
    }

    /// A killed process that its parent has not reaped yet is a zombie: `/proc/<pid>` exists,
    /// but it holds nothing, so its locks are broken (the restart-right-after-kill -9 case).
    #[test]
    fn zombies_and_reused_ids_are_not_alive() {
        let mut child = Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()
            .expect("sleep");
        let pid = child.id();
        let started = proc_stat(pid).expect("child's stat").started;
        assert!(process_alive(pid, Some(started)));
        assert!(process_alive(pid, None));
        // The same id with another start time: a different process.
        assert!(!process_alive(pid, Some(started + 1)));
        child.kill().expect("kill");
        // Not reaped yet: a zombie.
        let deadline = Instant::now() + Duration::from_secs(10);
        while proc_stat(pid).is_some_and(|s| s.state != 'Z') {
            assert!(
                Instant::now() < deadline,
                "the killed child never became a zombie"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
        assert!(!process_alive(pid, Some(started)));
        child.wait().expect("reap");
        assert!(!process_alive(pid, Some(started)));
    }
}
