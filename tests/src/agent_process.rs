//! The agent binary as a child process of the crash tests: commands run to completion, or
//! stopped at one of the agent's fail points (`HIVE_SMALLFILES_FAILPOINT`, `…_MARKER`,
//! `…_RESUME`) to be killed there with SIGKILL, and `recover` afterwards. The binary is the
//! tests crate's own `hsf-agent` (`env!("CARGO_BIN_EXE_hsf-agent")` in the test).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a child may take to reach a fail point.
const FAILPOINT_TIMEOUT: Duration = Duration::from_secs(120);

/// The agent with its configuration in `<dir>/agent.toml`; fail point markers go to `<dir>`.
#[derive(Debug, Clone)]
pub struct AgentProcess {
    binary: PathBuf,
    dir: PathBuf,
}

impl AgentProcess {
    /// The agent `binary` whose files (configuration, markers) live in `dir`.
    pub fn new(binary: impl AsRef<Path>, dir: &Path) -> Self {
        Self {
            binary: binary.as_ref().to_owned(),
            dir: dir.to_owned(),
        }
    }

    /// The configuration file the agent is started with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("agent.toml")
    }

    /// The agent command with `args`, output piped, no fail point inherited from the test.
    pub fn command(&self, args: &[String]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--config.file")
            .arg(self.config_path())
            .arg("--log.level")
            .arg("warn")
            .args(args)
            .env_remove("HIVE_SMALLFILES_FAILPOINT")
            .env_remove("HIVE_SMALLFILES_FAILPOINT_MARKER")
            .env_remove("HIVE_SMALLFILES_FAILPOINT_RESUME")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs to completion; (exit code, stdout). Standard error is echoed to the test's.
    pub async fn run(&self, args: &[String]) -> (i32, String) {
        let mut cmd = self.command(args);
        let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            eprintln!("agent {args:?} stderr:\n{stderr}");
        }
        (out.status.code().unwrap_or(-1), stdout)
    }

    /// Starts the child with `failpoint` armed and returns once it stands there. With
    /// `resume`, the child goes on when that file appears (the test acts in between).
    pub async fn run_to_failpoint(
        &self,
        args: &[String],
        failpoint: &str,
        resume: Option<&Path>,
    ) -> Child {
        let marker = self.dir.join(format!("reached-{failpoint}"));
        let _ = std::fs::remove_file(&marker);
        let mut cmd = self.command(args);
        cmd.env("HIVE_SMALLFILES_FAILPOINT", failpoint)
            .env("HIVE_SMALLFILES_FAILPOINT_MARKER", &marker)
            .stderr(Stdio::inherit());
        if let Some(r) = resume {
            cmd.env("HIVE_SMALLFILES_FAILPOINT_RESUME", r);
        }
        let mut child = cmd.spawn().unwrap();
        let deadline = Instant::now() + FAILPOINT_TIMEOUT;
        while !marker.exists() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut out = String::new();
                if let Some(mut s) = child.stdout.take() {
                    let _ = std::io::Read::read_to_string(&mut s, &mut out);
                }
                panic!("agent exited with {status} before reaching fail point {failpoint}: {out}");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("fail point {failpoint} not reached in {FAILPOINT_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        child
    }

    /// `recover`: it must exit 0 and recover every merge directory without an error.
    pub async fn recover(&self) -> serde_json::Value {
        let (code, out) = self.run(&["recover".to_owned()]).await;
        assert_eq!(code, 0, "recover failed: {out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(
            v.as_array().unwrap().iter().all(|r| r["error"].is_null()),
            "recover reported errors: {v}"
        );
        v
    }
}

/// Lets a child paused by [`AgentProcess::run_to_failpoint`] with `resume` go on and waits
/// for it: its exit code and standard output.
pub async fn resume_and_wait(child: Child, resume: &Path) -> (Option<i32>, String) {
    std::fs::write(resume, b"go").unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Kills a child with SIGKILL (no shutdown path runs) and reaps it.
pub fn kill9(mut child: Child) {
    child.kill().unwrap();
    let _ = child.wait();
}
