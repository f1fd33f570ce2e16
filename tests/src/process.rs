//! Our binaries as child processes, for the few tests where a real process matters (signals,
//! the command line, SIGKILL at a fail point). The tests crate builds them itself as its own
//! `[[bin]]` targets (`hsf-exporter`, `hsf-agent`), so a test passes
//! `env!("CARGO_BIN_EXE_hsf-exporter")` and nothing runs `cargo build`.
//!
//! A served process binds `--web.listen-address 127.0.0.1:0` itself; its address comes from
//! its `Listening` log line (`address=…`, info level, standard error).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1, for external programs (Prometheus, Alertmanager) that take
/// a port number and cannot be handed a listener. The port is free when this returns, and
/// may be taken by someone else before the program binds it; our own services never use
/// this (they run on listeners the tests keep bound).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// Removes ANSI escape sequences (colours of the log format).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters… final byte (a letter).
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The address of a `Listening … address=<addr>` log line (logfmt, or the `address` of a
/// JSON line).
pub fn listening_address(line: &str) -> Option<SocketAddr> {
    let line = strip_ansi(line);
    if !line.contains("Listening") {
        return None;
    }
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
        return v["address"].as_str()?.parse().ok();
    }
    line.split_whitespace()
        .find_map(|w| w.strip_prefix("address="))
        .and_then(|a| a.trim_matches('"').parse().ok())
}

/// A served process (`serve`) on a port it chose, killed on drop.
#[derive(Debug)]
pub struct ServedProcess {
    child: Child,
    /// The bound address, from the log.
    pub addr: SocketAddr,
    /// `http://<addr>`.
    pub base_url: String,
    log: Arc<Mutex<String>>,
    raw_log: Arc<Mutex<String>>,
}

impl ServedProcess {
    /// Starts `binary` with `args` followed by `--web.listen-address 127.0.0.1:0
    /// --log.level info serve`, and waits (up to `timeout`) for its `Listening` line.
    pub fn start(binary: &Path, args: &[&str], timeout: Duration) -> Self {
        let mut args = args.to_vec();
        args.extend(["--log.level", "info"]);
        Self::start_logging(binary, &args, timeout)
    }

    /// Like [`start`](Self::start), but `args` choose the log level and `NO_COLOR` is not
    /// set (for tests of the log lines themselves; stderr is a pipe).
    pub fn start_logging(binary: &Path, args: &[&str], timeout: Duration) -> Self {
        let mut child = Command::new(binary)
            .args(args)
            .args(["--web.listen-address", "127.0.0.1:0"])
            .arg("serve")
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let raw_log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn({
            let log = Arc::clone(&log);
            let raw_log = Arc::clone(&raw_log);
            move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = listening_address(&line) {
                        let _ = tx.send(addr);
                    }
                    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                    l.push_str(&strip_ansi(&line));
                    l.push('\n');
                    let mut r = raw_log.lock().unwrap_or_else(|p| p.into_inner());
                    r.push_str(&line);
                    r.push('\n');
                }
            }
        });
        let deadline = Instant::now() + timeout;
        let addr = loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(addr) => break addr,
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = child.try_wait() {
                        // Let the reader drain what is left.
                        std::thread::sleep(Duration::from_millis(100));
                        panic!(
                            "{} exited with {status} before listening:\n{}",
                            binary.display(),
                            log.lock().unwrap_or_else(|p| p.into_inner())
                        );
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "{} printed no `Listening … address=` line in {timeout:?}:\n{}",
                        binary.display(),
                        log.lock().unwrap_or_else(|p| p.into_inner())
                    );
                }
            }
        };
        Self {
            child,
            addr,
            base_url: format!("http://{addr}"),
            log,
            raw_log,
        }
    }

    /// What the process logged so far, as written (colours kept).
    pub fn raw_log(&self) -> String {
        self.raw_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// What the process logged so far (colours removed).
    pub fn log(&self) -> String {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends SIGTERM and waits (up to `timeout`) for the exit; its code (`None`: killed by
    /// a signal, or killed here after the timeout).
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ServedProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs a service script of `tests/scripts/` with `start` (they are idempotent: a no-op when
/// the service runs); `Err` naming `what` and the script's own error output when it fails.
pub fn start_service_script(script: &Path, what: &str) -> Result<(), String> {
    let out = Command::new(script)
        .arg("start")
        .output()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} did not start: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_plain_and_coloured_lines() {
        let plain = "2025-01-01T00:00:00.000000Z  INFO hive_smallfiles_agent::service: Listening; webhook at http://127.0.0.1:4321/api/v1/alerts address=127.0.0.1:4321 audit_log=a.jsonl";
        assert_eq!(
            listening_address(plain),
            Some("127.0.0.1:4321".parse().unwrap())
        );
        let coloured = "\x1b[2m2025\x1b[0m \x1b[32m INFO\x1b[0m \x1b[2mx\x1b[0m\x1b[2m:\x1b[0m Listening; metrics at http://127.0.0.1:9/metrics \x1b[3maddress\x1b[0m\x1b[2m=\x1b[0m127.0.0.1:9";
        assert_eq!(
            listening_address(coloured),
            Some("127.0.0.1:9".parse().unwrap())
        );
        assert_eq!(listening_address("Scan started. address=1.2.3.4:5"), None);
        let json = r#"{"ts":"2025-01-01T00:00:00Z","level":"info","msg":"Listening; metrics at http://127.0.0.1:9/metrics","address":"127.0.0.1:9"}"#;
        assert_eq!(
            listening_address(json),
            Some("127.0.0.1:9".parse().unwrap())
        );
    }
}
