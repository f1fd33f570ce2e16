//! The tests' Kerberos realm: a real MIT KDC on loopback (`tests/scripts/kdc.sh`, realm
//! `HSF.TEST`), its krb5.conf and the keytabs of the principals the tests use.
//!
//! A test that needs the realm calls [`Kdc::unavailable`] through [`require!`](crate::require):
//! when the KDC is not running (and cannot be started) the test is skipped and says so. GSSAPI
//! reads `KRB5_CONFIG` from the environment, which the workspace's `.cargo/config.toml` points at
//! the realm's krb5.conf for every test process; [`Kdc::apply_env`] checks it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The realm of the test KDC.
pub const REALM: &str = "HSF.TEST";

/// Paths of the running test realm.
#[derive(Debug, Clone)]
pub struct Kdc {
    dir: PathBuf,
    /// `Some` for a private instance (its port); `None` for the shared one (kdc.sh's default
    /// or `HSF_KDC_PORT`).
    port: Option<u16>,
}

impl Kdc {
    /// The realm's directory (`HSF_KDC_DIR`, default `/tmp/hsf-kdc`).
    fn dir() -> PathBuf {
        std::env::var_os("HSF_KDC_DIR").map_or_else(|| PathBuf::from("/tmp/hsf-kdc"), PathBuf::from)
    }

    /// `kdc.sh <args>` for this instance.
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(Self::script());
        c.args(args);
        if let Some(port) = self.port {
            c.env("HSF_KDC_DIR", &self.dir)
                .env("HSF_KDC_PORT", port.to_string());
        }
        c
    }

    /// A realm of the test's own (see the module documentation), started; `Err` with the
    /// reason when it cannot be. Stopped and removed when the returned value is dropped.
    pub fn private() -> Result<PrivateKdc, String> {
        // A free port now (the KDC binds it, TCP and UDP, a moment later).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let dir = std::env::temp_dir().join(format!("hsf-kdc-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let kdc = PrivateKdc(Self {
            dir,
            port: Some(port),
        });
        kdc.start()?;
        Ok(kdc)
    }

    /// The script that creates and starts the realm.
    pub fn script() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kdc.sh")
    }

    /// The running realm, starting it with `kdc.sh start` when it is not running; `Err` with
    /// the reason when it cannot be started.
    pub fn get() -> Result<Self, String> {
        crate::process::start_service_script(&Self::script(), "the test KDC")?;
        Ok(Self {
            dir: Self::dir(),
            port: None,
        })
    }

    /// `None` when the realm runs (or was started); `Some(reason)` otherwise, for
    /// [`require!`](crate::require).
    pub fn unavailable() -> Option<String> {
        Self::get().err()
    }

    /// Checks that this process reads the realm's krb5.conf: GSSAPI takes it from
    /// `KRB5_CONFIG`, which the workspace's cargo configuration sets for the tests (an
    /// environment that already names another file wins, and fails here).
    pub fn apply_env(&self) {
        let want = self.krb5_conf();
        let have = std::env::var_os("KRB5_CONFIG").map(PathBuf::from);
        assert_eq!(
            have.as_deref(),
            Some(want.as_path()),
            "KRB5_CONFIG must name the test realm's krb5.conf (.cargo/config.toml sets it for cargo's test runs)"
        );
    }

    /// The client configuration file.
    pub fn krb5_conf(&self) -> PathBuf {
        self.dir.join("krb5.conf")
    }

    /// The realm's directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Keytab of `hsf/localhost@HSF.TEST`, the exporter's and agent's principal.
    pub fn client_keytab(&self) -> PathBuf {
        self.dir.join("hsf.keytab")
    }

    /// `hsf/localhost@HSF.TEST`.
    pub fn client_principal(&self) -> String {
        format!("hsf/localhost@{REALM}")
    }

    /// Keytab of `hsf-short@HSF.TEST`: 2-minute tickets renewable for 10 minutes.
    pub fn short_keytab(&self) -> PathBuf {
        self.dir.join("short.keytab")
    }

    /// `hsf-short@HSF.TEST`.
    pub fn short_principal(&self) -> String {
        format!("hsf-short@{REALM}")
    }

    /// Keytab of `hsf-other@HSF.TEST`, a principal servers may refuse.
    pub fn other_keytab(&self) -> PathBuf {
        self.dir.join("other.keytab")
    }

    /// `hsf-other@HSF.TEST`.
    pub fn other_principal(&self) -> String {
        format!("hsf-other@{REALM}")
    }

    /// Keytab of `HTTP/localhost@HSF.TEST`, for SPNEGO acceptors.
    pub fn http_keytab(&self) -> PathBuf {
        self.dir.join("http.keytab")
    }

    /// Keytab of `hive/localhost@HSF.TEST`, for the Kerberized Thrift Server.
    pub fn hive_keytab(&self) -> PathBuf {
        self.dir.join("hive.keytab")
    }

    /// Keytab of `hsf-tiny@HSF.TEST`: 20-second tickets.
    pub fn tiny_keytab(&self) -> PathBuf {
        self.dir.join("tiny.keytab")
    }

    /// `hsf-tiny@HSF.TEST`.
    pub fn tiny_principal(&self) -> String {
        format!("hsf-tiny@{REALM}")
    }

    /// Stops the KDC (to test an unreachable KDC); [`Kdc::start`] brings it back. Use a
    /// [`Kdc::private`] realm for that: other tests share the default one.
    pub fn stop(&self) {
        let _ = self.command(&["stop"]).status();
    }

    /// Starts the KDC (again, after [`Kdc::stop`]).
    pub fn start(&self) -> Result<(), String> {
        let out = self
            .command(&["start"])
            .output()
            .map_err(|e| format!("cannot run {}: {e}", Self::script().display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "the test KDC did not start: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Runs `kadmin.local -q query` on this realm (e.g. `cpw -randkey hsf-other`), returning
    /// its output; `Err` with its standard error when it fails.
    pub fn kadmin(&self, query: &str) -> Result<String, String> {
        let out = self
            .command(&["kadmin", query])
            .output()
            .map_err(|e| format!("cannot run kadmin.local: {e}"))?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // kadmin.local exits 0 even when the query fails; it says so on standard error.
        if !out.status.success() || stderr.contains("while ") {
            return Err(stderr.trim().to_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Environment of a child test process running in a private realm (directory, port).
const PRIVATE_DIR_ENV: &str = "HSF_KDC_PRIVATE_DIR";
const PRIVATE_PORT_ENV: &str = "HSF_KDC_PRIVATE_PORT";

impl Kdc {
    /// Runs `body` against a [`Kdc::private`] realm. GSSAPI reads the realm's krb5.conf from
    /// `KRB5_CONFIG`, fixed for a process, so the test runs again in a child process (this test
    /// binary, `test` being the test's full path, e.g. `kerberos::kdc_outage`) whose
    /// `KRB5_CONFIG` names the private realm; the parent owns the realm and fails when the
    /// child does. Skips (see [`require!`](crate::require)) when no KDC can be started.
    pub fn in_private_realm(test: &str, body: impl FnOnce(&Kdc)) {
        if let (Some(dir), Some(port)) = (
            std::env::var_os(PRIVATE_DIR_ENV),
            std::env::var(PRIVATE_PORT_ENV)
                .ok()
                .and_then(|p| p.parse().ok()),
        ) {
            let kdc = Self {
                dir: PathBuf::from(dir),
                port: Some(port),
            };
            kdc.apply_env();
            body(&kdc);
            return;
        }
        let kdc = match Self::private() {
            Ok(k) => k,
            Err(why) => {
                crate::skip::skip(&why);
                return;
            }
        };
        let exe = std::env::current_exe().expect("the test binary's path");
        let out = Command::new(exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env("KRB5_CONFIG", kdc.krb5_conf())
            .env(PRIVATE_DIR_ENV, kdc.path())
            .env(PRIVATE_PORT_ENV, kdc.port.unwrap_or_default().to_string())
            .output()
            .expect("the test binary runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "{test} failed in its private realm (output above)"
        );
    }
}

/// A [`Kdc::private`] realm: stopped and its directory removed on drop.
#[derive(Debug)]
pub struct PrivateKdc(Kdc);

impl std::ops::Deref for PrivateKdc {
    type Target = Kdc;
    fn deref(&self) -> &Kdc {
        &self.0
    }
}

impl Drop for PrivateKdc {
    fn drop(&mut self) {
        self.0.stop();
        let _ = std::fs::remove_dir_all(&self.0.dir);
    }
}
