//! The agent's configuration file: raw TOML (documented in `deploy/agent.example.toml`, every
//! field with a default) validated once at start-up. Cluster sections reuse the exporter's
//! `metastore` and `storage` sections, so one cluster is described the same way in both.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use hive_smallfiles_core::config::{
    ByteSize, ConfigError, Environment, RawMetastore, RawStorage, StorageConfig, TableFilter,
    read_secret_file, resolve,
};
use hive_smallfiles_core::kerberos::{Kerberos, KerberosConfig, RawKerberos, ServiceName};
use hive_smallfiles_core::metastore::MetastoreConfig;
use hive_smallfiles_core::secret::Secret;
use hive_smallfiles_core::web::ServerSettings;
use serde::Deserialize;

use crate::hiveserver2::{Hs2Auth, Hs2Config, Hs2Kerberos, Hs2Transport, Qop, tls_client_config};
use crate::policy::{MaintenanceWindow, Policy};
use crate::sql::Engine;

fn invalid(cluster: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        cluster: cluster.to_owned(),
        message: message.into(),
    }
}

// === raw ===

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentConfig {
    /// JSON-lines audit log (appended). Default `audit.jsonl` beside the config file.
    #[serde(default = "default_audit")]
    pub audit_log: PathBuf,
    /// Directory of the agent's state store (`agent-state.redb`: queued jobs, cool-downs,
    /// job history, committed merges). Default: the audit log's directory.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How the agent stops.
    #[serde(default)]
    pub shutdown: RawShutdown,
    /// Webhook and API authentication.
    #[serde(default)]
    pub api: RawApi,
    /// `[server]`: HTTP timeouts and the connection cap.
    #[serde(default)]
    pub server: ServerSettings,
    /// Queue and rate limits.
    #[serde(default)]
    pub queue: RawQueue,
    /// What may be merged, and when.
    #[serde(default)]
    pub policy: RawPolicy,
    /// The native executor and the commit protocol.
    #[serde(default)]
    pub native: RawNative,
    /// Clusters.
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<RawAgentCluster>,
}

/// `[native]`: the commit protocol shared by the native and the engine-staged executors.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNative {
    /// This agent's id in lock files. Exactly one running agent per id. Default: host name.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// How long the original files of a merge are kept for rollback. Default 24h.
    #[serde(default = "d_retention", with = "humantime_serde")]
    pub backup_retention: Duration,
    /// A lock not refreshed for this long belongs to a dead agent. Default 10m.
    #[serde(default = "d_stale", with = "humantime_serde")]
    pub lock_stale_after: Duration,
    /// Local directory where merged files are assembled before upload. Default: a
    /// `hive-smallfiles-spool` directory in the system's temporary directory.
    #[serde(default)]
    pub spool_dir: Option<PathBuf>,
    /// Recover interrupted merges of every allowed table at start-up. Default true.
    #[serde(default = "d_true")]
    pub recover_on_start: bool,
    /// How often expired backups and abandoned staging are swept. Default 1h.
    #[serde(default = "d_sweep", with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// Switch commits: how long the old directory stays untouched after the switch, for
    /// queries that planned on it. Longer than your longest query. Default 1h.
    #[serde(default = "d_grace", with = "humantime_serde")]
    pub switch_grace: Duration,
    /// Switch commits: how long after the switch the agent watches the table's directory for
    /// inserts that looked the old location up just before it (their staging directory
    /// appears within this time), waits for them to finish and switches back if their files
    /// went to the old directory. Longer than your engines take from planning an insert to
    /// starting its job. Default 10s.
    #[serde(default = "d_switch_settle", with = "humantime_serde")]
    pub switch_settle: Duration,
}

impl Default for RawNative {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("defaults"))
    }
}

fn d_retention() -> Duration {
    Duration::from_secs(24 * 3600)
}
fn d_switch_settle() -> Duration {
    Duration::from_secs(10)
}
fn d_stale() -> Duration {
    Duration::from_secs(600)
}
fn d_true() -> bool {
    true
}
fn d_grace() -> Duration {
    Duration::from_secs(3600)
}
fn d_sweep() -> Duration {
    Duration::from_secs(3600)
}

/// Which executor merges a cluster's tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorChoice {
    /// Native for text and Parquet; engine-staged for other formats the engine writes and
    /// the agent can verify (ORC); the engine's in-place statements otherwise.
    #[default]
    Auto,
    /// The agent merges text and Parquet itself; other tables are skipped.
    Native,
    /// The engine rewrites into the staging directory; the agent verifies and commits.
    EngineStaged,
    /// The engine's in-place statements (CONCATENATE, INSERT OVERWRITE, COMPACT).
    Engine,
}

fn default_audit() -> PathBuf {
    PathBuf::from("audit.jsonl")
}

/// `[shutdown]`: what happens on SIGTERM/SIGINT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShutdown {
    /// How long running jobs may take to reach their next step boundary (they stop there
    /// and are queued again); jobs still running then are recorded `shutdown_timeout` and
    /// the agent exits. `--shutdown.grace-period` overrides it. Default 60s.
    #[serde(default = "d_drain", with = "humantime_serde")]
    pub drain_timeout: Duration,
    /// How long open HTTP requests may take to complete. Default 10s.
    #[serde(default = "d_http_grace", with = "humantime_serde")]
    pub http_grace: Duration,
}

impl Default for RawShutdown {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("defaults"))
    }
}

fn d_drain() -> Duration {
    Duration::from_secs(60)
}
fn d_http_grace() -> Duration {
    Duration::from_secs(10)
}

/// `[api]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    /// File whose first line is the bearer token Alertmanager (and API clients) must send.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
}

/// `[queue]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQueue {
    /// Queued jobs at most. Default 1000.
    #[serde(default = "d_capacity")]
    pub capacity: usize,
    /// Queued jobs of one cluster at most; at the bound a new job of the cluster evicts a
    /// weaker queued job of the same cluster or is dropped (`cluster_queue_full`). Default
    /// 500.
    #[serde(default = "d_cluster_capacity")]
    pub cluster_capacity: usize,
    /// Merges started per hour, all clusters. Default 30.
    #[serde(default = "d_merges")]
    pub merges_per_hour: u32,
    /// Merges started per hour per cluster. Default 10.
    #[serde(default = "d_cluster_merges")]
    pub cluster_merges_per_hour: u32,
    /// Bytes rewritten per hour, all clusters. Default 2 TiB.
    #[serde(default = "d_bytes")]
    pub bytes_per_hour: ByteSize,
    /// Bytes rewritten per hour per cluster. Default 1 TiB.
    #[serde(default = "d_cluster_bytes")]
    pub cluster_bytes_per_hour: ByteSize,
    /// Finished jobs kept for the API (and rollback by job id). Default 1000.
    #[serde(default = "d_history")]
    pub history: usize,
    /// Finished jobs older than this are pruned from the history. Default 30 days.
    #[serde(default = "d_history_age", with = "humantime_serde")]
    pub history_max_age: Duration,
    /// Jobs running at once, all clusters. Default 4.
    #[serde(default = "d_running")]
    pub max_running: usize,
    /// Jobs running at once per cluster. Default 2.
    #[serde(default = "d_cluster_running")]
    pub cluster_max_running: usize,
    /// Attempts of a job with retryable failures. Default 3.
    #[serde(default = "d_attempts")]
    pub max_attempts: u32,
    /// First retry delay (doubles, with jitter). Default 1m.
    #[serde(default = "d_backoff", with = "humantime_serde")]
    pub retry_backoff: Duration,
    /// Longest retry delay. Default 30m.
    #[serde(default = "d_backoff_max", with = "humantime_serde")]
    pub retry_backoff_max: Duration,
    /// A table merged successfully is not queued again for this long. Default 6h.
    #[serde(default = "d_cooldown", with = "humantime_serde")]
    pub cooldown: Duration,
}

impl Default for RawQueue {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("defaults"))
    }
}

fn d_capacity() -> usize {
    1000
}
fn d_history() -> usize {
    1000
}
fn d_history_age() -> Duration {
    Duration::from_secs(30 * 24 * 3600)
}
fn d_cluster_capacity() -> usize {
    500
}
fn d_merges() -> u32 {
    30
}
fn d_cluster_merges() -> u32 {
    10
}
fn d_bytes() -> ByteSize {
    ByteSize(2 << 40)
}
fn d_cluster_bytes() -> ByteSize {
    ByteSize(1 << 40)
}
fn d_running() -> usize {
    4
}
fn d_cluster_running() -> usize {
    2
}
fn d_attempts() -> u32 {
    3
}
fn d_backoff() -> Duration {
    Duration::from_secs(60)
}
fn d_backoff_max() -> Duration {
    Duration::from_secs(1800)
}
fn d_cooldown() -> Duration {
    Duration::from_secs(6 * 3600)
}

/// `[policy]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    /// Globs on `database.table` that may be merged. Default everything.
    #[serde(default = "d_allow")]
    pub allow: Vec<String>,
    /// Globs never merged, applied after `allow`.
    #[serde(default)]
    pub deny: Vec<String>,
    /// Merge external tables too. Default false.
    #[serde(default)]
    pub allow_external: bool,
    /// A partition is merged only when its newest file is older than this. Default 1h.
    #[serde(default = "d_quiet", with = "humantime_serde")]
    pub quiet_period: Duration,
    /// Bytes one job may rewrite. Default 100 GiB.
    #[serde(default = "d_job_bytes")]
    pub max_bytes_per_job: ByteSize,
    /// A partition is worth merging from this many excess files on. Default 2.
    #[serde(default = "d_min_excess")]
    pub min_excess_files: u64,
    /// Plan and report, change nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,
    /// Merges only inside these windows; none: any time.
    #[serde(default, rename = "window")]
    pub windows: Vec<RawWindow>,
    /// Globs on `database.table` for which in-place engine rewrites (`INSERT OVERWRITE`,
    /// `CONCATENATE`) are accepted although a concurrent writer's file can be lost. Default
    /// none: such tables are skipped (`in_place_not_acknowledged`).
    #[serde(default)]
    pub allow_in_place: Vec<String>,
    /// How staged merges commit: `auto` (default: switch the location of managed tables'
    /// partitions when the cluster has an engine, swap directories otherwise), `switch`
    /// (also external tables), `swap` (always swap directories).
    #[serde(default)]
    pub commit_mode: crate::policy::CommitModeSetting,
    /// Globs on `database.table` of tables whose writers put files into partition
    /// directories by path: always committed by directory swap. Default none.
    #[serde(default)]
    pub written_by_path: Vec<String>,
}

impl Default for RawPolicy {
    fn default() -> Self {
        toml::from_str("").unwrap_or_else(|_| unreachable!("defaults"))
    }
}

fn d_allow() -> Vec<String> {
    vec!["*".to_owned()]
}
fn d_quiet() -> Duration {
    Duration::from_secs(3600)
}
fn d_job_bytes() -> ByteSize {
    ByteSize(100 << 30)
}
fn d_min_excess() -> u64 {
    2
}

/// `[[policy.window]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWindow {
    /// Days: `mon`..`sun`. Default every day.
    #[serde(default = "d_days")]
    pub days: Vec<String>,
    /// `HH:MM` opening time.
    pub start: String,
    /// `HH:MM` closing time (before `start`: past midnight).
    pub end: String,
    /// IANA time zone. Default `UTC`.
    #[serde(default = "d_tz")]
    pub timezone: String,
}

fn d_days() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
        .map(str::to_owned)
        .to_vec()
}
fn d_tz() -> String {
    "UTC".to_owned()
}

/// `[[cluster]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAgentCluster {
    /// Cluster name, as in the exporter (alerts carry it in the `cluster` label).
    pub name: String,
    /// Engine behind `hiveserver2`: `hive`, `spark` or `impala`.
    pub engine: Engine,
    /// `auto` (default), `native`, `engine_staged` or `engine`.
    #[serde(default)]
    pub executor: ExecutorChoice,
    /// Target output file size. Default 128 MiB.
    #[serde(default = "d_target")]
    pub target_file_bytes: ByteSize,
    /// Statements after each partition's merge; `{table}` and `{partition}` are replaced.
    #[serde(default)]
    pub post_merge_statements: Vec<String>,
    /// The MetaStore database (same section as the exporter's).
    pub metastore: RawMetastore,
    /// The warehouse storage (same section as the exporter's).
    pub storage: RawStorage,
    /// `[cluster.kerberos]`: the cluster's Kerberos login (same section as the exporter's).
    /// Default: none.
    #[serde(default)]
    pub kerberos: Option<RawKerberos>,
    /// The engine's HiveServer2 endpoint; without it only the native executor runs (and no
    /// post-merge statements such as Impala's REFRESH).
    #[serde(default)]
    pub hiveserver2: Option<RawHs2>,
}

fn d_target() -> ByteSize {
    ByteSize(128 << 20)
}

/// `[cluster.hiveserver2]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHs2 {
    /// Host (also the `_HOST` of `kerberos_principal`, and the name the TLS certificate must
    /// carry).
    pub host: String,
    /// Port. Default 10000 (binary transport) or 10001 (HTTP transport).
    #[serde(default)]
    pub port: Option<u16>,
    /// User. Default `hive`.
    #[serde(default = "d_hs2_user")]
    pub user: String,
    /// Password file (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Password environment variable.
    #[serde(default)]
    pub password_env: Option<String>,
    /// `plain` (SASL PLAIN, also for servers without authentication), `nosasl`, or `kerberos`
    /// (SASL GSSAPI; `Negotiate` on HTTP) with the cluster's `[cluster.kerberos]` login.
    #[serde(default = "d_hs2_auth")]
    pub auth: String,
    /// The server's Kerberos principal with `auth = "kerberos"`, e.g. `hive/_HOST@REALM`
    /// (`_HOST` becomes `host`).
    #[serde(default)]
    pub kerberos_principal: Option<String>,
    /// The SASL security layer with Kerberos on the binary transport, as the server's
    /// `hive.server2.thrift.sasl.qop`: `auth` (default), `auth-int` or `auth-conf`.
    #[serde(default)]
    pub qop: Option<String>,
    /// `binary` (default) or `http` (`hive.server2.transport.mode`).
    #[serde(default = "d_hs2_transport")]
    pub transport: String,
    /// The HTTP transport's path (`hive.server2.thrift.http.path`). Default `cliservice`.
    #[serde(default)]
    pub http_path: Option<String>,
    /// TLS (`hive.server2.use.SSL`): the certificate is verified against `ca_file` and must
    /// name `host`. Default false.
    #[serde(default)]
    pub tls: bool,
    /// PEM bundle of the CAs trusted for TLS. Default: the Mozilla root program's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Session configuration sent when opening a session (e.g. a queue name).
    #[serde(default)]
    pub session_conf: BTreeMap<String, String>,
    /// Timeout of connecting. Default 10s.
    #[serde(default = "d_hs2_connect", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

fn d_hs2_transport() -> String {
    "binary".to_owned()
}
fn d_hs2_user() -> String {
    "hive".to_owned()
}
fn d_hs2_auth() -> String {
    "plain".to_owned()
}
fn d_hs2_connect() -> Duration {
    Duration::from_secs(10)
}

impl RawHs2 {
    /// Validates `[cluster.hiveserver2]` of `cluster`; `login` is the cluster's Kerberos
    /// login (`[cluster.kerberos]`), required with `auth = "kerberos"`.
    pub fn validate(
        self,
        cluster: &str,
        base: &Path,
        env: &dyn Environment,
        login: Option<&Kerberos>,
    ) -> Result<Hs2Config, ConfigError> {
        let bad = |m: String| invalid(cluster, format!("hiveserver2.{m}"));
        let auth = match self.auth.as_str() {
            "plain" | "none" => Hs2Auth::Plain,
            "nosasl" => Hs2Auth::NoSasl,
            "kerberos" => Hs2Auth::Kerberos,
            other => return Err(bad(format!("auth {other:?}: plain, nosasl or kerberos"))),
        };
        let transport = match self.transport.as_str() {
            "binary" => {
                if self.http_path.is_some() {
                    return Err(bad("http_path needs transport = \"http\"".into()));
                }
                Hs2Transport::Binary
            }
            "http" => Hs2Transport::Http {
                path: self
                    .http_path
                    .as_deref()
                    .unwrap_or("cliservice")
                    .trim_matches('/')
                    .to_owned(),
            },
            other => return Err(bad(format!("transport {other:?}: binary or http"))),
        };
        let password = match (&self.password_file, &self.password_env) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    cluster,
                    "set only one of hiveserver2 password_file and password_env",
                ));
            }
            (Some(f), None) => Some(read_secret_file(
                cluster,
                "hiveserver2 password",
                &resolve(base, f),
            )?),
            (None, Some(v)) => {
                Some(Secret::new(env.var(v).ok_or_else(|| {
                    invalid(cluster, format!("{v} is not set"))
                })?))
            }
            (None, None) => None,
        };
        let qop = self
            .qop
            .as_deref()
            .map(|q| q.parse::<Qop>().map_err(bad))
            .transpose()?;
        if auth == Hs2Auth::Kerberos {
            if password.is_some() {
                return Err(bad(
                    "password_file/password_env with auth = \"kerberos\": Kerberos uses the \
                     [cluster.kerberos] login, never a password"
                        .into(),
                ));
            }
            let Some(principal) = &self.kerberos_principal else {
                return Err(bad(
                    "kerberos_principal is required with auth = \"kerberos\" (the server's \
                     hive.server2.authentication.kerberos.principal, e.g. hive/_HOST@EXAMPLE.COM)"
                        .into(),
                ));
            };
            ServiceName::from_pattern(principal, &self.host)
                .map_err(|e| bad(format!("kerberos_principal: {e}")))?;
        } else if self.kerberos_principal.is_some() || qop.is_some() {
            return Err(bad(
                "kerberos_principal and qop need auth = \"kerberos\"".into()
            ));
        }
        if self.ca_file.is_some() && !self.tls {
            return Err(bad("ca_file needs tls = true".into()));
        }
        let tls = if self.tls {
            let ca = self.ca_file.as_ref().map(|f| resolve(base, f));
            Some(tls_client_config(ca.as_deref()).map_err(bad)?)
        } else {
            None
        };
        let port = self.port.unwrap_or(match transport {
            Hs2Transport::Binary => 10000,
            Hs2Transport::Http { .. } => 10001,
        });
        let kerberos = match (auth, self.kerberos_principal) {
            (Hs2Auth::Kerberos, Some(principal)) => Some(Hs2Kerberos {
                login: login.cloned().ok_or_else(|| {
                    bad("auth = \"kerberos\" needs the cluster's [cluster.kerberos] login".into())
                })?,
                principal,
                qop: qop.unwrap_or_default(),
            }),
            _ => None,
        };
        Ok(Hs2Config {
            host: self.host,
            port,
            user: self.user,
            password,
            auth,
            transport,
            tls,
            kerberos,
            connect_timeout: self.connect_timeout,
            poll_interval: Duration::from_millis(200),
            session_conf: self.session_conf.into_iter().collect(),
        })
    }
}

// === validated ===

/// Validated agent configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Audit log path.
    pub audit_log: PathBuf,
    /// State store directory.
    pub state_dir: PathBuf,
    /// Shutdown timings.
    pub shutdown: RawShutdown,
    /// Bearer token for the webhook and API, if any.
    pub bearer_token: Option<Secret>,
    /// Queue settings as written.
    pub queue: RawQueue,
    /// Policy.
    pub policy: Policy,
    /// Clusters by name.
    pub clusters: BTreeMap<String, AgentCluster>,
    /// The commit protocol's settings.
    pub native: NativeSettings,
    /// HTTP timeouts and the connection cap.
    pub server: ServerSettings,
}

/// Validated `[native]`.
#[derive(Debug, Clone)]
pub struct NativeSettings {
    /// Agent id in lock files.
    pub agent_id: String,
    /// Backup retention.
    pub backup_retention: Duration,
    /// Lock staleness.
    pub lock_stale_after: Duration,
    /// Spool directory.
    pub spool_dir: PathBuf,
    /// Recover at start-up.
    pub recover_on_start: bool,
    /// Sweep interval.
    pub sweep_interval: Duration,
    /// Switch commits: the old directory's grace period.
    pub switch_grace: Duration,
    /// Switch commits: how long writers are watched for after the switch.
    pub switch_settle: Duration,
}

/// One validated cluster.
#[derive(Debug, Clone)]
pub struct AgentCluster {
    /// Name.
    pub name: String,
    /// Engine.
    pub engine: Engine,
    /// Target output file size.
    pub target_file_bytes: u64,
    /// Extra statements after each partition.
    pub post_merge_statements: Vec<String>,
    /// MetaStore connection.
    pub metastore: MetastoreConfig,
    /// Storage.
    pub storage: StorageConfig,
    /// Kerberos login of the cluster's clients, if secured.
    pub kerberos: Option<KerberosConfig>,
    /// HiveServer2 connection, if an engine may be used.
    pub hiveserver2: Option<Hs2Config>,
    /// Executor choice.
    pub executor: ExecutorChoice,
}

fn default_agent_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "hive-smallfiles-agent".to_owned())
}

fn parse_day(d: &str) -> Option<Weekday> {
    match d.trim().to_ascii_lowercase().get(..3)? {
        "mon" => Some(Weekday::Mon),
        "tue" => Some(Weekday::Tue),
        "wed" => Some(Weekday::Wed),
        "thu" => Some(Weekday::Thu),
        "fri" => Some(Weekday::Fri),
        "sat" => Some(Weekday::Sat),
        "sun" => Some(Weekday::Sun),
        _ => None,
    }
}

impl AgentConfig {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path, env: &dyn Environment) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text, path.parent().unwrap_or_else(|| Path::new(".")), env)
    }

    /// Parses and validates TOML text; relative paths are relative to `base`.
    pub fn from_toml(text: &str, base: &Path, env: &dyn Environment) -> Result<Self, ConfigError> {
        let raw: RawAgentConfig =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let bearer_token = raw
            .api
            .bearer_token_file
            .as_ref()
            .map(|f| read_secret_file("-", "bearer token", &resolve(base, f)))
            .transpose()?;
        raw.server.validate().map_err(|m| invalid("-", m))?;
        let q = &raw.queue;
        if q.capacity == 0
            || q.cluster_capacity == 0
            || q.merges_per_hour == 0
            || q.cluster_merges_per_hour == 0
            || q.max_running == 0
            || q.cluster_max_running == 0
        {
            return Err(invalid("-", "queue limits must be > 0"));
        }
        let p = raw.policy;
        let tables = TableFilter::new(&p.allow, &p.deny).map_err(|m| invalid("-", m))?;
        let mut windows = Vec::new();
        for w in &p.windows {
            let time = |s: &str| {
                NaiveTime::parse_from_str(s, "%H:%M")
                    .map_err(|_| invalid("-", format!("policy.window: {s:?} is not HH:MM")))
            };
            let days = w
                .days
                .iter()
                .map(|d| {
                    parse_day(d)
                        .ok_or_else(|| invalid("-", format!("policy.window: unknown day {d:?}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let timezone: chrono_tz::Tz = w.timezone.parse().map_err(|_| {
                invalid(
                    "-",
                    format!("policy.window: unknown time zone {:?}", w.timezone),
                )
            })?;
            windows.push(MaintenanceWindow {
                days,
                start: time(&w.start)?,
                end: time(&w.end)?,
                timezone,
            });
        }
        let policy = Policy {
            tables,
            allow_external: p.allow_external,
            quiet_period: p.quiet_period,
            max_bytes_per_job: p.max_bytes_per_job.0,
            min_excess_files: p.min_excess_files,
            windows,
            dry_run: p.dry_run,
            allow_in_place: TableFilter::new(&p.allow_in_place, &[])
                .map_err(|m| invalid("-", format!("policy.allow_in_place: {m}")))?,
            commit_mode: p.commit_mode,
            written_by_path: TableFilter::new(&p.written_by_path, &[])
                .map_err(|m| invalid("-", format!("policy.written_by_path: {m}")))?,
        };
        let mut names = HashSet::new();
        let mut clusters = BTreeMap::new();
        for c in raw.clusters {
            if !names.insert(c.name.clone()) {
                return Err(invalid(&c.name, "duplicate cluster name"));
            }
            let metastore = c.metastore.validate(&c.name, base, env)?;
            let kerberos = c
                .kerberos
                .map(|k| k.validate_cluster(&c.name, base))
                .transpose()?;
            let storage = c.storage.validate(&c.name, base, kerberos.as_ref())?;
            // The HiveServer2 client logs in with the cluster's login (shared per process).
            let login = kerberos.as_ref().map(Kerberos::shared);
            let hiveserver2 = c
                .hiveserver2
                .map(|h| h.validate(&c.name, base, env, login.as_ref()))
                .transpose()?;
            if hiveserver2.is_none()
                && matches!(
                    c.executor,
                    ExecutorChoice::Engine | ExecutorChoice::EngineStaged
                )
            {
                return Err(invalid(
                    &c.name,
                    "executor engine and engine_staged need [cluster.hiveserver2]",
                ));
            }
            if c.target_file_bytes.0 == 0 {
                return Err(invalid(&c.name, "target_file_bytes must be > 0"));
            }
            clusters.insert(
                c.name.clone(),
                AgentCluster {
                    name: c.name,
                    engine: c.engine,
                    target_file_bytes: c.target_file_bytes.0,
                    post_merge_statements: c.post_merge_statements,
                    metastore,
                    storage,
                    kerberos,
                    hiveserver2,
                    executor: c.executor,
                },
            );
        }
        if clusters.is_empty() {
            return Err(invalid("-", "no [[cluster]] configured"));
        }
        let audit_log = resolve(base, &raw.audit_log);
        let n = raw.native;
        if n.lock_stale_after < Duration::from_secs(4) {
            return Err(invalid("-", "native.lock_stale_after must be at least 4s"));
        }
        let native = NativeSettings {
            agent_id: n
                .agent_id
                .filter(|a| !a.trim().is_empty())
                .unwrap_or_else(default_agent_id),
            backup_retention: n.backup_retention,
            lock_stale_after: n.lock_stale_after,
            spool_dir: n.spool_dir.map_or_else(
                || std::env::temp_dir().join("hive-smallfiles-spool"),
                |d| resolve(base, &d),
            ),
            recover_on_start: n.recover_on_start,
            sweep_interval: n.sweep_interval.max(Duration::from_secs(1)),
            switch_grace: n.switch_grace,
            switch_settle: n.switch_settle,
        };
        Ok(Self {
            native,
            state_dir: raw.state_dir.as_ref().map_or_else(
                || {
                    audit_log
                        .parent()
                        .map_or_else(|| base.to_owned(), Path::to_owned)
                },
                |d| resolve(base, d),
            ),
            shutdown: raw.shutdown,
            audit_log,
            bearer_token,
            queue: raw.queue,
            policy,
            clusters,
            server: raw.server,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs2(extra: &str) -> Result<Hs2Config, String> {
        let text = format!(
            "[[cluster]]\nname = \"c\"\nengine = \"hive\"\n[cluster.metastore]\nurl = \"mysql://h@db/m\"\n[cluster.storage]\ntype = \"local\"\nroot = \"/w\"\n[cluster.hiveserver2]\nhost = \"HS2.example.com\"\n{extra}"
        );
        let env: BTreeMap<String, String> = [("HS2_PW".to_owned(), "pw".to_owned())].into();
        AgentConfig::from_toml(&text, Path::new("."), &env)
            .map(|c| c.clusters["c"].hiveserver2.clone().unwrap())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn hiveserver2_transport_tls_and_kerberos_settings() {
        let c = hs2("").unwrap();
        assert_eq!(
            (c.port, c.auth, &c.transport),
            (10000, Hs2Auth::Plain, &Hs2Transport::Binary)
        );
        assert!(c.tls.is_none() && c.kerberos.is_none());
        let c = hs2("transport = \"http\"\nhttp_path = \"/gateway/default/hive/\"\ntls = true")
            .unwrap();
        assert_eq!(c.port, 10001);
        assert_eq!(
            c.transport,
            Hs2Transport::Http {
                path: "gateway/default/hive".into()
            }
        );
        assert!(c.tls.is_some());
        let c = hs2("transport = \"http\"").unwrap();
        assert_eq!(
            c.transport,
            Hs2Transport::Http {
                path: "cliservice".into()
            }
        );
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.pem");
        let e = hs2(&format!("tls = true\nca_file = \"{}\"", missing.display())).unwrap_err();
        assert!(e.contains("cannot read ca_file"), "{e}");
        for (extra, want) in [
            ("ca_file = \"/x.pem\"", "ca_file needs tls = true"),
            ("http_path = \"x\"", "http_path needs transport"),
            ("transport = \"thrift\"", "binary or http"),
            ("auth = \"gssapi\"", "plain, nosasl or kerberos"),
            ("qop = \"auth\"", "need auth = \"kerberos\""),
            ("auth = \"kerberos\"", "kerberos_principal is required"),
            (
                "auth = \"kerberos\"\nkerberos_principal = \"hive/_HOST@R\"\npassword_env = \"HS2_PW\"",
                "never a password",
            ),
            (
                "auth = \"kerberos\"\nkerberos_principal = \"hive/_HOST@R\"\nqop = \"privacy\"",
                "auth, auth-int or auth-conf",
            ),
            (
                "auth = \"kerberos\"\nkerberos_principal = \"hive/_HOST@R\"",
                "needs the cluster's [cluster.kerberos] login",
            ),
        ] {
            let e = hs2(extra).unwrap_err();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn example_config_parses() {
        let dir = tempfile::tempdir().unwrap();
        let text = include_str!("../../deploy/agent.example.toml");
        for f in [
            "metastore.password",
            "webhook.token",
            "hiveserver2.password",
        ] {
            std::fs::write(dir.path().join(f), "secret\n").unwrap();
        }
        let text = text.replace(
            "/etc/hive-smallfiles/",
            &format!("{}/", dir.path().display()),
        );
        let c = AgentConfig::from_toml(&text, dir.path(), &BTreeMap::new()).unwrap();
        assert_eq!(c.bearer_token.as_ref().unwrap().expose(), "secret");
        let prod = &c.clusters["prod"];
        assert_eq!(prod.engine, Engine::Hive);
        let hs2 = prod.hiveserver2.as_ref().unwrap();
        assert_eq!(hs2.port, 10000);
        assert_eq!(hs2.auth, Hs2Auth::Kerberos);
        assert!(hs2.password.is_none(), "no password with Kerberos");
        let k = hs2.kerberos.as_ref().unwrap();
        assert_eq!(
            (k.principal.as_str(), k.qop),
            ("hive/_HOST@EXAMPLE.COM", Qop::Auth)
        );
        assert_eq!(
            k.login.principal().as_deref(),
            Some("hsf/agent.example.com@EXAMPLE.COM")
        );
        assert_eq!(c.policy.windows.len(), 1);
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn shutdown_timings_and_state_dir() {
        let base = "[[cluster]]\nname = \"c\"\nengine = \"spark\"\n[cluster.metastore]\nurl = \"mysql://h@db/m\"\n[cluster.storage]\ntype = \"local\"\nroot = \"/w\"\n";
        let env = BTreeMap::new();
        let dir = Path::new("/etc/agent");
        let c = AgentConfig::from_toml(base, dir, &env).unwrap();
        assert_eq!(c.shutdown.drain_timeout, Duration::from_secs(60));
        assert_eq!(c.shutdown.http_grace, Duration::from_secs(10));
        assert_eq!(c.state_dir, dir, "beside the audit log by default");
        let text = format!(
            "audit_log = \"/var/log/a/audit.jsonl\"\n[shutdown]\ndrain_timeout = \"5m\"\nhttp_grace = \"3s\"\n{base}"
        );
        let c = AgentConfig::from_toml(&text, dir, &env).unwrap();
        assert_eq!(c.shutdown.drain_timeout, Duration::from_secs(300));
        assert_eq!(c.shutdown.http_grace, Duration::from_secs(3));
        assert_eq!(c.state_dir, Path::new("/var/log/a"));
        let text = format!("state_dir = \"state\"\n{base}");
        let c = AgentConfig::from_toml(&text, dir, &env).unwrap();
        assert_eq!(c.state_dir, Path::new("/etc/agent/state"));
    }

    #[test]
    fn rejects_bad_windows_and_auth() {
        let base = "[[cluster]]\nname = \"c\"\nengine = \"spark\"\n[cluster.metastore]\nurl = \"mysql://h@db/m\"\n[cluster.storage]\ntype = \"local\"\nroot = \"/w\"\n[cluster.hiveserver2]\nhost = \"h\"\n";
        let env = BTreeMap::new();
        assert!(AgentConfig::from_toml(base, Path::new("."), &env).is_ok());
        let bad_auth = base.replace("host = \"h\"", "host = \"h\"\nauth = \"kerberos\"");
        assert!(AgentConfig::from_toml(&bad_auth, Path::new("."), &env).is_err());
        let bad_tz = format!(
            "[[policy.window]]\nstart = \"01:00\"\nend = \"05:00\"\ntimezone = \"Mars/Olympus\"\n{base}"
        );
        assert!(
            AgentConfig::from_toml(&bad_tz, Path::new("."), &env)
                .unwrap_err()
                .to_string()
                .contains("time zone")
        );
        let bad_engine = base.replace("spark", "presto");
        assert!(AgentConfig::from_toml(&bad_engine, Path::new("."), &env).is_err());
    }
}
