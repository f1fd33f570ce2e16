//! The exporter and the agent in-process, as the tests run them: each service's own `run`
//! on a listener the test bound itself (`127.0.0.1:0` unless told otherwise), stopped by
//! cancelling its shutdown token, the one shutdown path the binaries use too.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hive_smallfiles_agent::config::AgentConfig;
use hive_smallfiles_agent::executor::MergeRunner;
use hive_smallfiles_agent::metrics::AgentMetrics;
use hive_smallfiles_core::config::ProcessEnv;
use hive_smallfiles_exporter::config::Config;
use hive_smallfiles_exporter::metrics::Metrics;
use hive_smallfiles_exporter::scan::ScanError;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use hive_smallfiles_agent::service::ServeOptions as AgentOptions;
pub use hive_smallfiles_exporter::service::ServeOptions as ExporterOptions;

/// How long a service may take to stop after its token is cancelled.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Logs of in-process services into the test's output (captured per test):
/// `HSF_TEST_LOG` as an `EnvFilter` directive, by default our crates at `info`. Only the
/// first call (of a process) installs it; a program that installed its own keeps it.
pub fn init_test_logging() {
    let filter = std::env::var("HSF_TEST_LOG").unwrap_or_else(|_| {
        "warn,hive_smallfiles_exporter=info,hive_smallfiles_agent=info,hive_smallfiles_core=info"
            .to_owned()
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

/// Binds `address` (`127.0.0.1:0`: any free port, chosen by the kernel and kept open).
pub async fn bind(address: &str) -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind(address)
        .await
        .unwrap_or_else(|e| panic!("bind {address}: {e}"));
    let addr = listener.local_addr().expect("local address");
    (listener, addr)
}

/// GETs `url` until it answers 2xx (with `token` as bearer token when given).
pub async fn wait_http_ok(url: &str, token: Option<&str>, timeout: Duration) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let deadline = Instant::now() + timeout;
    loop {
        let mut req = client.get(url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if req.send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{url} not ready after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// GETs `url`; (status, content type, body).
pub async fn get(url: &str, accept: Option<&str>) -> (u16, String, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut req = client.get(url);
    if let Some(a) = accept {
        req = req.header("Accept", a);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let status = r.status().as_u16();
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (status, ct, r.text().await.expect("body"))
}

/// The exporter's `service::run` on a bound listener.
#[derive(Debug)]
pub struct Exporter {
    /// `http://<address>` (TLS tests swap the scheme).
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The registry the service publishes to.
    pub metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), ScanError>>>,
}

impl Exporter {
    /// Loads `config` (a TOML file, relative paths against its directory) and starts the
    /// exporter on a free port.
    pub async fn from_file(config: &Path) -> Self {
        let config = Config::load(config, &ProcessEnv)
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        Self::start(config, ExporterOptions::default()).await
    }

    /// Starts the exporter on a free port of 127.0.0.1.
    pub async fn start(config: Config, options: ExporterOptions) -> Self {
        Self::start_on("127.0.0.1:0", config, options).await
    }

    /// Starts the exporter on `address`.
    pub async fn start_on(address: &str, config: Config, options: ExporterOptions) -> Self {
        init_test_logging();
        let (listener, addr) = bind(address).await;
        let metrics = Arc::new(Metrics::new());
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hive_smallfiles_exporter::service::run(
            config,
            options,
            Arc::clone(&metrics),
            listener,
            shutdown.clone(),
        ));
        Self {
            base_url: format!("http://{addr}"),
            addr,
            metrics,
            shutdown,
            task: Some(task),
        }
    }

    /// Waits until `/ready` answers 2xx.
    pub async fn wait_ready(&mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(t) = &self.task
                && t.is_finished()
            {
                let r = self.task.take().expect("task").await;
                panic!("the exporter stopped before it was ready: {r:?}");
            }
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .build()
                .expect("client");
            if client
                .get(format!("{}/ready", self.base_url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "exporter not ready after {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// GETs a path; (status, content type, body).
    pub async fn get(&self, path: &str, accept: Option<&str>) -> (u16, String, String) {
        get(&format!("{}{path}", self.base_url), accept).await
    }

    /// Cancels the shutdown token and waits for `run` to return; its result.
    pub async fn stop(mut self) -> Result<(), ScanError> {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(STOP_TIMEOUT, task)
            .await
            .unwrap_or_else(|_| panic!("the exporter did not stop within {STOP_TIMEOUT:?}"))
            .expect("the exporter's task panicked")
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The agent's `service::run` on a bound listener, with the runner built as the binary
/// builds it.
#[derive(Debug)]
pub struct Agent {
    /// `http://<address>`.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// The runner the service executes jobs with.
    pub runner: Arc<MergeRunner>,
    /// The agent's registry.
    pub metrics: Arc<AgentMetrics>,
    shutdown: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Agent {
    /// Loads `config` (a TOML file) and starts the agent on a free port.
    pub async fn from_file(config: &Path) -> Self {
        let config = AgentConfig::load(config, &ProcessEnv)
            .unwrap_or_else(|e| panic!("{}: {e}", config.display()));
        Self::start(config, AgentOptions::default()).await
    }

    /// Starts the agent on a free port of 127.0.0.1.
    pub async fn start(config: AgentConfig, options: AgentOptions) -> Self {
        Self::start_on("127.0.0.1:0", config, options).await
    }

    /// Starts the agent on `address`.
    pub async fn start_on(address: &str, config: AgentConfig, options: AgentOptions) -> Self {
        init_test_logging();
        let (listener, addr) = bind(address).await;
        let runner = Arc::new(
            hive_smallfiles_agent::service::build_runner(&config)
                .unwrap_or_else(|e| panic!("the agent's runner: {e}")),
        );
        let metrics = runner.metrics();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(hive_smallfiles_agent::service::run(
            config,
            options,
            Arc::clone(&runner),
            listener,
            shutdown.clone(),
        ));
        Self {
            base_url: format!("http://{addr}"),
            addr,
            runner,
            metrics,
            shutdown,
            task: Some(task),
        }
    }

    /// Cancels the shutdown token and waits for `run` to return.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(STOP_TIMEOUT, task)
            .await
            .unwrap_or_else(|_| panic!("the agent did not stop within {STOP_TIMEOUT:?}"))
            .expect("the agent's task panicked");
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
