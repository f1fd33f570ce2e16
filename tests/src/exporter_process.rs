//! Runs the real `hive-smallfiles-exporter` binary as a child process for end-to-end tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Path of the exporter binary of this build profile, building it if it is missing.
pub fn binary() -> PathBuf {
    workspace_binary("hive-smallfiles-exporter")
}

/// Path of a binary of this workspace (`hive-smallfiles-exporter`, `hive-smallfiles-agent`),
/// built (once per test process) with the rest of the workspace's binaries.
pub fn workspace_binary(name: &str) -> PathBuf {
    profile_dir().join(name)
}

fn profile_dir() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        // Test executables live in target/<profile>/deps, other binaries in target/<profile>.
        let exe = std::env::current_exe().expect("current exe");
        let exe_dir = exe.parent().expect("executable directory");
        let profile_dir = if exe_dir.ends_with("deps") {
            exe_dir.parent().expect("target/<profile>")
        } else {
            exe_dir
        };
        if !exe_dir.ends_with("deps") {
            // A program of this workspace (the demo): its build script built the binaries.
            return profile_dir.to_owned();
        }
        // Tests: make sure the binary is there and current. The whole workspace's binaries,
        // so the features match what the test run compiled and nothing is rebuilt.
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "--quiet", "--workspace", "--bins"]);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("cargo build runs");
        assert!(status.success(), "building the workspace binaries failed");
        profile_dir.to_owned()
    })
    .clone()
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// A running exporter.
#[derive(Debug)]
pub struct ExporterProcess {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base_url: String,
}

impl ExporterProcess {
    /// Starts `serve` with this config file (and extra flags) on a free port.
    pub fn start(config: &Path, extra: &[&str]) -> Self {
        Self::start_on(config, free_port(), extra)
    }

    /// Starts `serve` on a given port.
    pub fn start_on(config: &Path, port: u16, extra: &[&str]) -> Self {
        let child = Command::new(binary())
            .arg("--config.file")
            .arg(config)
            .arg("--web.listen-address")
            .arg(format!("127.0.0.1:{port}"))
            .args(extra)
            .arg("serve")
            .stdin(Stdio::null())
            .spawn()
            .expect("start exporter");
        Self {
            child,
            base_url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until `/ready` answers 200.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exporter exited early: {status}");
            }
            if let Ok(r) = client.get(format!("{}/ready", self.base_url)).send().await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "exporter not ready after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// GETs a path; returns (status, content type, body).
    pub async fn get(&self, path: &str, accept: Option<&str>) -> (u16, String, String) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut req = client.get(format!("{}{path}", self.base_url));
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, ct, r.text().await.expect("body"))
    }

    /// Sends SIGTERM and waits for a clean exit; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = self.child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ExporterProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
