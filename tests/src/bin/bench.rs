//! Scan benchmark of the exporter: a generated warehouse of (by default) 2,000 tables and
//! 200,000 partitions (`--preset 1m`: 10,000 tables, 1,000,000 partitions, ~20 files each),
//! its MetaStore rows in MariaDB and PostgreSQL, and its files served by the WebHDFS server of
//! this crate with injected latency and a bounded number of NameNode handlers. Prints, per
//! MetaStore backend, a full scan and an unchanged rescan (wall time, partitions/s, NameNode
//! calls by operation against the request bound, MetaStore queries, peak RSS, CPU per listed
//! file), the `/metrics` render time and series count, each against its target; and the
//! growth of the peak RSS per partition between two scales of the same run (the MetaStore
//! first filled up to a fifth of the partitions and scanned, then filled up and scanned
//! again). The machine's load averages are printed at the start, before each scan and at
//! the end: on a shared machine, wall times suffer first; CPU seconds and RSS much less.
//!
//! Three processes, one binary:
//! * `bench` (no subcommand) orchestrates: it builds the MetaStore fixtures, starts the other
//!   two, and prints the report;
//! * `bench serve-webhdfs` builds the namespace and serves it, with a line-based control port
//!   (`RESET`, `COUNTERS`) for the request counters; it ends when its standard input closes;
//! * `bench scan` is the exporter alone: one `ClusterScanner` doing a full scan and an
//!   unchanged rescan, then `/metrics` renders. Its `VmHWM` is therefore the scan's own peak
//!   (MetaStore snapshot, directory cache, snapshot and renders included, nothing of the
//!   server or of the fixture). It prints one `RESULT <json>` line.
//!
//! ```text
//! cargo run --release -p hive-smallfiles-tests --bin bench
//! cargo run --release -p hive-smallfiles-tests --bin bench -- --tables 200 --partitions-per-table 10
//! cargo run --release -p hive-smallfiles-tests --bin bench -- --preset 1m
//! ```
//!
//! Databases come from `HSF_TEST_MYSQL_URL` / `HSF_TEST_PG_URL` as for the tests.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use async_trait::async_trait;
use bytes::Bytes;
use clap::{Parser, Subcommand, ValueEnum};
use hive_smallfiles_core::exposition::Format as ExpositionFormat;
use hive_smallfiles_core::fs::factory::read_filesystem;
use hive_smallfiles_core::fs::{
    EndpointProbe, EntrySink, FileStatus, FileSystem, FsError, PageSink,
};
use hive_smallfiles_exporter::config::Config;
use hive_smallfiles_exporter::metrics::Metrics;
use hive_smallfiles_exporter::scan::ClusterScanner;
use hive_smallfiles_exporter::snapshot::ClusterSnapshot;
use hive_smallfiles_tests::metastore_fixture::{
    DbKind, FixtureDb, FixtureTable, Format, SchemaVersion, unique_db_name,
};
use hive_smallfiles_tests::webhdfs_server::{
    Namespace, NodeId, ServerHandle, ServerOptions, WebHdfsServer,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The `hdfs://` authority of every generated location.
const NAMESERVICE: &str = "benchns";
/// Environment variable handing the MetaStore password (if any) to the scan process.
const PASSWORD_ENV: &str = "HSF_BENCH_METASTORE_PASSWORD";
/// Environment variable with a command line to run the scan process under (a profiler).
const SCAN_WRAPPER_ENV: &str = "HSF_BENCH_SCAN_WRAPPER";
/// Peak RSS target, bytes (decimal megabytes: the stricter reading of "250 MB").
const RSS_TARGET_BYTES: u64 = 250_000_000;
/// Target growth of the peak RSS per partition between the two scales of a run, bytes.
const RSS_GROWTH_TARGET_BYTES: f64 = 200.0;
/// Target CPU time of the scan process per listed file (full scan), microseconds.
const CPU_PER_FILE_TARGET_US: f64 = 1.5;
/// Target number of samples in one `/metrics` render (at 1,000,000 partitions).
const SERIES_TARGET: usize = 100_000;
/// Tables per `INSERT` round of the MetaStore fixture (bounds the statements held at once).
const FIXTURE_CHUNK_TABLES: usize = 500;
/// Target share of the request bound reached while listing.
const THROUGHPUT_TARGET: f64 = 0.80;
/// Target ratio of unchanged-rescan NameNode calls to full-scan calls.
const RESCAN_TARGET: f64 = 0.05;
/// `/metrics` render target.
const RENDER_TARGET: Duration = Duration::from_millis(250);

#[derive(Debug, Parser)]
#[command(name = "bench", about = "Scan benchmark of hive-smallfiles")]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// (internal) Build the namespace and serve it over WebHDFS until stdin closes.
    ServeWebhdfs(ServeArgs),
    /// (internal) Run the exporter's scans and print one `RESULT <json>` line.
    Scan(ScanArgs),
}

/// Shape of the generated warehouse.
#[derive(Debug, Clone, Copy, clap::Args)]
struct Scale {
    /// Tables (5 % unpartitioned, 10 % partitioned by `dt`/`hr`, the rest by `dt`).
    #[arg(long, default_value_t = 2000)]
    tables: usize,
    /// Partitions per table on average: `tables * partitions_per_table` partitions in total,
    /// spread over the partitioned tables.
    #[arg(long, default_value_t = 100)]
    partitions_per_table: usize,
    /// Data files per partition directory on average (1 ..= 2n-1).
    #[arg(long, default_value_t = 4)]
    files_per_partition: usize,
}

/// The NameNode's behaviour.
#[derive(Debug, Clone, Copy, clap::Args)]
struct NameNodeArgs {
    /// Latency injected into every NameNode request, milliseconds.
    #[arg(long, default_value_t = 2.0)]
    latency_ms: f64,
    /// NameNode handlers (requests processed at once); also the exporter's
    /// `max_concurrent_requests`.
    #[arg(long, default_value_t = 16)]
    handlers: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Mariadb,
    Postgres,
}

impl BackendArg {
    fn kind(self) -> DbKind {
        match self {
            Self::Mariadb => DbKind::Mysql,
            Self::Postgres => DbKind::Postgres,
        }
    }
    fn title(self) -> &'static str {
        match self {
            Self::Mariadb => "MariaDB",
            Self::Postgres => "PostgreSQL",
        }
    }
}

/// Named warehouse shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Preset {
    /// 10,000 tables × 100 partitions = 1,000,000 partitions, ~20 data files each (about
    /// 20M files, the shape the 1M-partition targets are stated for); the small scale is
    /// 200,000 partitions.
    #[value(name = "1m")]
    OneMillion,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A named shape; overrides `--tables`, `--partitions-per-table`,
    /// `--files-per-partition` and `--small-scale-partitions`.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    #[command(flatten)]
    scale: Scale,
    /// The first, smaller scale of the run: a scan of the first tables holding at least this
    /// many partitions (the MetaStore filled up to them), before the rest is inserted and
    /// the whole warehouse scanned; the RSS growth per partition is measured between the
    /// two. Default: a fifth of the partitions; 0: no small scale.
    #[arg(long)]
    small_scale_partitions: Option<usize>,
    #[command(flatten)]
    namenode: NameNodeArgs,
    /// MetaStore backends to run the scenario on, in order.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [BackendArg::Mariadb, BackendArg::Postgres])]
    backends: Vec<BackendArg>,
    /// The exporter's `list_concurrency` (default: the exporter's own default).
    #[arg(long)]
    list_concurrency: Option<usize>,
    /// Renders of `/metrics` timed per format.
    #[arg(long, default_value_t = 5)]
    render_iterations: usize,
    /// Keep the fixture databases (their names are printed).
    #[arg(long)]
    keep_databases: bool,
    /// Exit with status 1 when a target is missed.
    #[arg(long)]
    fail_on_miss: bool,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    scale: Scale,
    #[command(flatten)]
    namenode: NameNodeArgs,
    /// Where to write the [`ServerReady`] JSON once serving.
    #[arg(long)]
    ready_file: PathBuf,
}

#[derive(Debug, clap::Args)]
struct ScanArgs {
    /// `mysql://user@host:port/db` or `postgres://...` (password in `HSF_BENCH_METASTORE_PASSWORD`).
    #[arg(long)]
    metastore_url: String,
    /// NameNode base URL.
    #[arg(long)]
    namenode: String,
    /// `host:port` of the server's control port.
    #[arg(long)]
    control: String,
    /// The exporter's `max_concurrent_requests`.
    #[arg(long)]
    max_concurrent_requests: usize,
    /// The exporter's `list_concurrency`.
    #[arg(long)]
    list_concurrency: Option<usize>,
    /// Renders timed per format.
    #[arg(long, default_value_t = 5)]
    render_iterations: usize,
}

fn main() -> ExitCode {
    let mut cli = Cli::parse();
    if cli.run.preset == Some(Preset::OneMillion) {
        cli.run.scale = Scale {
            tables: 10_000,
            partitions_per_table: 100,
            files_per_partition: 20,
        };
        cli.run.small_scale_partitions = Some(200_000);
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HSF_BENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Some(Sub::ServeWebhdfs(a)) => runtime().and_then(|rt| rt.block_on(serve(a))),
        Some(Sub::Scan(a)) => scan_runtime().and_then(|rt| rt.block_on(scan(a))),
        None => orchestrate(&cli.run),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A single-threaded runtime, as the exporter's scan threads have (one per cluster).
fn scan_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// A multi-threaded runtime like the exporter's own.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

// === the generated warehouse ===

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Unpartitioned,
    Daily,
    Hourly,
}

/// One generated table: the MetaStore side and the directories of the filesystem side.
#[derive(Debug)]
struct TableSpec {
    index: usize,
    database: String,
    name: String,
    format: Format,
    layout: Layout,
    /// Partition values in key order, with the partition's directory below the table's.
    partitions: Vec<(Vec<String>, String)>,
}

impl TableSpec {
    /// `/warehouse/<db>.db/<table>`.
    fn dir(&self) -> String {
        format!("/warehouse/{}.db/{}", self.database, self.name)
    }

    /// Directories holding data files: the partitions', or the table's own.
    fn data_dirs(&self) -> Vec<String> {
        let dir = self.dir();
        if self.layout == Layout::Unpartitioned {
            vec![dir]
        } else {
            self.partitions
                .iter()
                .map(|(_, rel)| format!("{dir}/{rel}"))
                .collect()
        }
    }

    fn fixture(&self) -> FixtureTable {
        let dir = self.dir();
        let mut t = FixtureTable::new(
            &self.database,
            &self.name,
            self.format,
            &format!("hdfs://{NAMESERVICE}{dir}"),
        );
        t = match self.layout {
            Layout::Unpartitioned => return t,
            Layout::Daily => t.partitioned_by(&[("dt", "string")]),
            Layout::Hourly => t.partitioned_by(&[("dt", "string"), ("hr", "string")]),
        };
        for (values, rel) in &self.partitions {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            t = t.partition_at(&values, &format!("hdfs://{NAMESERVICE}{dir}/{rel}"));
        }
        t
    }
}

/// Deterministic 64-bit mixing (splitmix64 finaliser).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// `YYYY-MM-DD` of a day number since 1970-01-01 (proleptic Gregorian calendar).
fn date(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// 2023-01-01 as days since the epoch.
const FIRST_DAY: i64 = 19_358;
/// Hourly partitions per day.
const HOURS: usize = 24;

fn warehouse(scale: &Scale) -> Vec<TableSpec> {
    let layout = |i: usize| match i % 20 {
        7 => Layout::Unpartitioned,
        3 | 13 => Layout::Hourly,
        _ => Layout::Daily,
    };
    let partitioned = (0..scale.tables)
        .filter(|&i| layout(i) != Layout::Unpartitioned)
        .count();
    let total = scale.tables * scale.partitions_per_table;
    let databases = (scale.tables / 100).max(1);
    let mut k = 0;
    (0..scale.tables)
        .map(|i| {
            let layout = layout(i);
            let count = if layout == Layout::Unpartitioned {
                0
            } else {
                let n = total / partitioned + usize::from(k < total % partitioned);
                k += 1;
                n
            };
            let partitions = (0..count)
                .map(|p| match layout {
                    Layout::Hourly => {
                        let (d, h) = (date(FIRST_DAY + (p / HOURS) as i64), p % HOURS);
                        let h = format!("{h:02}");
                        let rel = format!("dt={d}/hr={h}");
                        (vec![d, h], rel)
                    }
                    _ => {
                        let d = date(FIRST_DAY + p as i64);
                        let rel = format!("dt={d}");
                        (vec![d], rel)
                    }
                })
                .collect();
            TableSpec {
                index: i,
                database: format!("bench_db{:02}", i % databases),
                name: format!("t{i:05}"),
                format: [Format::Parquet, Format::Orc, Format::Text][i % 3],
                layout,
                partitions,
            }
        })
        .collect()
}

/// One synthetic file of a data directory.
struct SynthFile {
    /// Name below the data directory (may contain one `/` for a subdirectory).
    name: String,
    len: u64,
    mtime_ms: i64,
}

const MIB: u64 = 1 << 20;

/// A length from a skewed distribution: many small files, a few large ones.
fn file_len(h: u64) -> u64 {
    let r = h >> 8;
    match h % 100 {
        0..=2 => 0,
        3..=39 => 1 + r % MIB,
        40..=69 => MIB + r % (15 * MIB),
        70..=84 => 16 * MIB + r % (48 * MIB),
        85..=94 => 64 * MIB + r % (64 * MIB),
        _ => 128 * MIB + r % (384 * MIB),
    }
}

/// The files of data directory `dir_index` of table `t`: 1 ..= 2n-1 data files (n per table
/// directory times ten when unpartitioned), `_SUCCESS` in a quarter of them and a
/// `HIVE_UNION_SUBDIR_1` in one of 200.
fn files_of(t: &TableSpec, dir_index: usize, per_dir: usize) -> Vec<SynthFile> {
    let seed = mix(((t.index as u64) << 32) ^ dir_index as u64);
    let per_dir = per_dir.max(1);
    let count = if t.layout == Layout::Unpartitioned {
        per_dir * 10
    } else {
        1 + (seed % (2 * per_dir as u64 - 1)) as usize
    };
    let mut files: Vec<SynthFile> = (0..count)
        .map(|k| {
            let h = mix(seed ^ (k as u64 + 1));
            let name = match t.format {
                Format::Parquet => format!("part-{k:05}-{:016x}-c000.snappy.parquet", h >> 1),
                _ => format!("{k:06}_0"),
            };
            SynthFile {
                name,
                len: file_len(h),
                mtime_ms: 1_700_000_000_000 + (h % (30 * 86_400_000)) as i64,
            }
        })
        .collect();
    if seed % 4 == 0 {
        files.push(SynthFile {
            name: "_SUCCESS".to_owned(),
            len: 0,
            mtime_ms: 1_700_000_000_000,
        });
    }
    if seed % 200 == 1 {
        files.push(SynthFile {
            name: "HIVE_UNION_SUBDIR_1/000000_0".to_owned(),
            len: 1000 + seed % MIB,
            mtime_ms: 1_700_000_000_000,
        });
    }
    files
}

// === the WebHDFS server process ===

/// What the server process reports once it serves.
#[derive(Debug, Serialize, Deserialize)]
struct ServerReady {
    namenode: String,
    control: String,
    /// Inodes (files, directories) in the namespace.
    files: u64,
    directories: u64,
    /// Visible files (no `_`/`.` prefix) and their bytes: what the scan must find.
    visible_files: u64,
    visible_bytes: u64,
    build_seconds: f64,
}

/// Request counters as the server saw them since the last `RESET`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
struct ServerCounters {
    /// NameNode requests by operation.
    by_op: BTreeMap<String, u64>,
    /// NameNode requests answered with a status >= 400.
    errors: u64,
    /// Highest number of NameNode requests processed at once.
    max_concurrent: u64,
    /// CPU time (user + system) of the server process so far, seconds.
    cpu_seconds: f64,
}

impl ServerCounters {
    fn total(&self) -> u64 {
        self.by_op.values().sum()
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let ns = Namespace::new_shared();
    let (mut visible_files, mut visible_bytes) = (0u64, 0u64);
    for t in warehouse(&args.scale) {
        for (d, dir) in t.data_dirs().iter().enumerate() {
            for f in files_of(&t, d, args.scale.files_per_partition) {
                if !f.name.starts_with('_') {
                    visible_files += 1;
                    visible_bytes += f.len;
                }
                ns.add_synthetic_file(&format!("{dir}/{}", f.name), f.len, f.mtime_ms)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
            }
        }
    }
    let (directories, files) = ns.counts();
    let server = WebHdfsServer::start(
        ServerOptions::new()
            .namespace(ns)
            .latency(Duration::from_secs_f64(args.namenode.latency_ms / 1000.0))
            .max_handlers(args.namenode.handlers)
            // No request log: the counters are all the benchmark reads.
            .request_log_capacity(0),
    )
    .await?;
    let control = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let ready = ServerReady {
        namenode: server.base_url(),
        control: control.local_addr()?.to_string(),
        files,
        directories,
        visible_files,
        visible_bytes,
        build_seconds: started.elapsed().as_secs_f64(),
    };
    let handle = server.handle();
    tokio::spawn(async move {
        while let Ok((stream, _)) = control.accept().await {
            tokio::spawn(control_session(stream, handle.clone()));
        }
    });
    let tmp = args.ready_file.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&ready)?)?;
    std::fs::rename(&tmp, &args.ready_file)?;
    // Serve until the orchestrator closes our standard input (or goes away).
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// One control connection: `RESET` → `OK`; `COUNTERS` → one line of [`ServerCounters`] JSON.
async fn control_session(stream: tokio::net::TcpStream, handle: ServerHandle) {
    let (read, mut write) = stream.into_split();
    let mut lines = tokio::io::BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let reply = match line.trim() {
            "RESET" => {
                handle.reset_counters();
                "OK".to_owned()
            }
            "COUNTERS" => {
                let mut c = ServerCounters {
                    max_concurrent: handle.max_concurrent() as u64,
                    cpu_seconds: cpu_seconds(),
                    ..ServerCounters::default()
                };
                for ((node, op, status), n) in handle.counters() {
                    if matches!(node, NodeId::NameNode(_)) {
                        *c.by_op.entry(op).or_default() += n;
                        if status >= 400 {
                            c.errors += n;
                        }
                    }
                }
                serde_json::to_string(&c).unwrap_or_default()
            }
            other => format!("ERR unknown command {other:?}"),
        };
        if write
            .write_all(format!("{reply}\n").as_bytes())
            .await
            .is_err()
        {
            return;
        }
    }
}

/// The scan process's end of the control port.
struct Control {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl Control {
    async fn connect(addr: &str) -> anyhow::Result<Self> {
        let (read, write) = tokio::net::TcpStream::connect(addr).await?.into_split();
        Ok(Self {
            lines: tokio::io::BufReader::new(read).lines(),
            write,
        })
    }

    async fn call(&mut self, command: &str) -> anyhow::Result<String> {
        self.write
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        self.lines.next_line().await?.context("control port closed")
    }

    async fn reset(&mut self) -> anyhow::Result<()> {
        match self.call("RESET").await?.as_str() {
            "OK" => Ok(()),
            other => bail!("RESET: {other}"),
        }
    }

    async fn counters(&mut self) -> anyhow::Result<ServerCounters> {
        Ok(serde_json::from_str(&self.call("COUNTERS").await?)?)
    }
}

// === the scan process ===

/// Wraps the exporter's filesystem client to time the listing phase: from the start of the
/// first listing to the end of the last one.
#[derive(Debug)]
struct TimedFs {
    inner: Arc<dyn FileSystem>,
    window: Mutex<(Option<Instant>, Option<Instant>)>,
}

impl TimedFs {
    /// The window since the last call, and resets it.
    fn take_window(&self) -> (Option<Instant>, Option<Instant>) {
        std::mem::take(&mut *self.window.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[async_trait]
impl FileSystem for TimedFs {
    async fn list_status(&self, path: &str, sink: &mut PageSink<'_>) -> Result<(), FsError> {
        {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            w.0.get_or_insert_with(Instant::now);
        }
        let r = self.inner.list_status(path, sink).await;
        self.window.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(Instant::now());
        r
    }

    async fn list_entries(&self, path: &str, sink: &mut EntrySink<'_>) -> Result<(), FsError> {
        {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            w.0.get_or_insert_with(Instant::now);
        }
        let r = self.inner.list_entries(path, sink).await;
        self.window.lock().unwrap_or_else(|e| e.into_inner()).1 = Some(Instant::now());
        r
    }

    async fn file_status(&self, path: &str) -> Result<FileStatus, FsError> {
        self.inner.file_status(path).await
    }

    async fn probe(&self) -> Vec<EndpointProbe> {
        self.inner.probe().await
    }

    async fn read_range(&self, path: &str, offset: u64, length: u64) -> Result<Bytes, FsError> {
        self.inner.read_range(path, offset, length).await
    }
}

/// Figures of one scan.
#[derive(Debug, Serialize, Deserialize)]
struct PhaseResult {
    success: bool,
    error: Option<String>,
    wall_seconds: f64,
    /// Scan start to the first listing: NameNode probe, MetaStore read, planning.
    before_listing_seconds: f64,
    /// First listing start to last listing end.
    listing_seconds: f64,
    namenode: ServerCounters,
    metastore_queries: u64,
    tables_scanned: u64,
    tables_failed: u64,
    tables_skipped: u64,
    partitions_listed: u64,
    partitions_missing: u64,
    partitions_failed: u64,
    listings: u64,
    reused_directories: u64,
    cached_directories: usize,
    files: u64,
    bytes: u64,
    small_files: u64,
    /// `VmHWM` and `VmRSS` after the scan, KiB.
    vm_hwm_kib: u64,
    vm_rss_kib: u64,
    /// User + system CPU of the scan process during the scan, seconds.
    cpu_seconds: f64,
}

/// Timing of one exposition format.
#[derive(Debug, Serialize, Deserialize)]
struct RenderResult {
    format: String,
    iterations: usize,
    min_ms: f64,
    mean_ms: f64,
    max_ms: f64,
    bytes: usize,
    series: usize,
}

/// Everything the scan process reports.
#[derive(Debug, Serialize, Deserialize)]
struct ScanReport {
    max_concurrent_requests: usize,
    list_concurrency: usize,
    full: PhaseResult,
    rescan: PhaseResult,
    renders: Vec<RenderResult>,
    /// `VmHWM` at the end (after the renders), KiB.
    vm_hwm_kib: u64,
}

/// A field of `/proc/self/status` in KiB (0 where unavailable).
fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field)?.strip_prefix(':').map(str::to_owned))
        })
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User + system CPU time of this process, seconds (from `/proc/self/stat`, 100 ticks/s).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
}

async fn scan_once(
    scanner: &mut ClusterScanner,
    fs: &TimedFs,
    control: &mut Control,
) -> anyhow::Result<(PhaseResult, Arc<ClusterSnapshot>)> {
    control.reset().await?;
    let server_cpu_before = control.counters().await?.cpu_seconds;
    fs.take_window();
    let queries_before = scanner.metastore_queries();
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let snapshot = scanner.scan(&CancellationToken::new()).await;
    let wall = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    let mut namenode = control.counters().await?;
    namenode.cpu_seconds -= server_cpu_before;
    let (first, last) = fs.take_window();
    let listing = match (first, last) {
        (Some(a), Some(b)) => b.saturating_duration_since(a),
        _ => Duration::ZERO,
    };
    let before = first.map_or(wall, |a| a.saturating_duration_since(started));
    let s = &snapshot.scan;
    let sum = |f: fn(&hive_smallfiles_exporter::snapshot::TableStats) -> u64| {
        snapshot.tables.iter().map(f).sum::<u64>()
    };
    let result = PhaseResult {
        success: s.success,
        error: s.error.clone(),
        wall_seconds: wall.as_secs_f64(),
        before_listing_seconds: before.as_secs_f64(),
        listing_seconds: listing.as_secs_f64(),
        namenode,
        metastore_queries: scanner.metastore_queries() - queries_before,
        tables_scanned: s.tables.scanned,
        tables_failed: s.tables.failed,
        tables_skipped: s.tables.skipped,
        partitions_listed: s.partitions.listed,
        partitions_missing: s.partitions.missing,
        partitions_failed: s.partitions.failed,
        listings: s.listings,
        reused_directories: s.reused_directories,
        cached_directories: scanner.cached_directories(),
        files: sum(|t| t.counts.files),
        bytes: sum(|t| t.counts.bytes),
        small_files: sum(|t| t.counts.small_files),
        vm_hwm_kib: proc_status_kib("VmHWM"),
        vm_rss_kib: proc_status_kib("VmRSS"),
        cpu_seconds: cpu,
    };
    Ok((result, snapshot))
}

fn time_render(metrics: &Metrics, format: ExpositionFormat, iterations: usize) -> RenderResult {
    let mut times = Vec::with_capacity(iterations);
    let mut last = String::new();
    for _ in 0..iterations.max(1) {
        let started = Instant::now();
        last = metrics.render(format);
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let series = last
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .count();
    RenderResult {
        format: match format {
            ExpositionFormat::Text => "text 0.0.4".to_owned(),
            ExpositionFormat::OpenMetrics => "OpenMetrics".to_owned(),
        },
        iterations: times.len(),
        min_ms: times.iter().copied().fold(f64::INFINITY, f64::min),
        mean_ms: times.iter().sum::<f64>() / times.len() as f64,
        max_ms: times.iter().copied().fold(0.0, f64::max),
        bytes: last.len(),
        series,
    }
}

async fn scan(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let password = std::env::var(PASSWORD_ENV).ok();
    let password_line = if password.is_some() {
        format!("password_env = \"{PASSWORD_ENV}\"")
    } else {
        String::new()
    };
    let list_concurrency = args
        .list_concurrency
        .map(|n| format!("list_concurrency = {n}"))
        .unwrap_or_default();
    let text = format!(
        r#"
        [[cluster]]
        name = "bench"
        {list_concurrency}
        [cluster.metastore]
        url = {url:?}
        {password_line}
        [cluster.storage]
        type = "webhdfs"
        namenodes = [{namenode:?}]
        authorities = [{NAMESERVICE:?}]
        max_concurrent_requests = {max}
        "#,
        url = args.metastore_url,
        namenode = args.namenode,
        max = args.max_concurrent_requests,
    );
    let env: BTreeMap<String, String> = password
        .map(|p| BTreeMap::from([(PASSWORD_ENV.to_owned(), p)]))
        .unwrap_or_default();
    let config = Config::from_toml(&text, Path::new("."), &env)?
        .clusters
        .remove(0);
    let list_concurrency = config.list_concurrency;
    let metrics = Metrics::new();
    let fs = Arc::new(TimedFs {
        inner: read_filesystem(&config.storage, &metrics.webhdfs)?,
        window: Mutex::new((None, None)),
    });
    let mut scanner = ClusterScanner::new(config, Arc::clone(&fs) as Arc<dyn FileSystem>);
    let mut control = Control::connect(&args.control).await?;

    let (full, snapshot) = scan_once(&mut scanner, &fs, &mut control).await?;
    metrics.snapshots.publish(snapshot);
    let (rescan, snapshot) = scan_once(&mut scanner, &fs, &mut control).await?;
    metrics.snapshots.publish(snapshot);
    let renders = vec![
        time_render(&metrics, ExpositionFormat::Text, args.render_iterations),
        time_render(
            &metrics,
            ExpositionFormat::OpenMetrics,
            args.render_iterations,
        ),
    ];
    let report = ScanReport {
        max_concurrent_requests: args.max_concurrent_requests,
        list_concurrency,
        full,
        rescan,
        renders,
        vm_hwm_kib: proc_status_kib("VmHWM"),
    };
    println!("RESULT {}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

// === the orchestrator ===

/// Kills (if still running) and reaps a child process when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        // The server ends when its stdin closes; give it a moment before killing it.
        for _ in 0..50 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn scale_args(s: &Scale, n: &NameNodeArgs) -> Vec<String> {
    vec![
        format!("--tables={}", s.tables),
        format!("--partitions-per-table={}", s.partitions_per_table),
        format!("--files-per-partition={}", s.files_per_partition),
        format!("--latency-ms={}", n.latency_ms),
        format!("--handlers={}", n.handlers),
    ]
}

fn start_server(run: &RunArgs, dir: &Path) -> anyhow::Result<(ChildGuard, PathBuf)> {
    let ready = dir.join("webhdfs-ready.json");
    let child = Command::new(std::env::current_exe()?)
        .arg("serve-webhdfs")
        .args(scale_args(&run.scale, &run.namenode))
        .arg(format!("--ready-file={}", ready.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .context("starting the WebHDFS server process")?;
    Ok((ChildGuard(child), ready))
}

fn wait_ready(server: &mut ChildGuard, ready: &Path) -> anyhow::Result<ServerReady> {
    loop {
        if let Ok(bytes) = std::fs::read(ready) {
            return Ok(serde_json::from_slice(&bytes)?);
        }
        if let Some(status) = server.0.try_wait()? {
            bail!("the WebHDFS server process exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The MetaStore URL (and password) the exporter needs for a fixture database.
fn metastore_url(db: &FixtureDb) -> (String, Option<String>) {
    let c = db.metastore_config();
    let scheme = match db.kind() {
        DbKind::Mysql => "mysql",
        DbKind::Postgres => "postgres",
    };
    let user = percent_encoding::utf8_percent_encode(&c.user, percent_encoding::NON_ALPHANUMERIC);
    (
        format!("{scheme}://{user}@{}:{}/{}", c.host, c.port, c.database),
        c.password.map(|p| p.expose().to_owned()),
    )
}

fn run_scan(
    run: &RunArgs,
    ready: &ServerReady,
    url: &str,
    password: Option<&str>,
) -> anyhow::Result<ScanReport> {
    // A profiler command line to run the scan process under (`perf record -g`, `heaptrack`).
    let wrapper = std::env::var(SCAN_WRAPPER_ENV).unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut cmd = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(std::env::current_exe()?);
            c
        }
        None => Command::new(std::env::current_exe()?),
    };
    cmd.arg("scan")
        .arg(format!("--metastore-url={url}"))
        .arg(format!("--namenode={}", ready.namenode))
        .arg(format!("--control={}", ready.control))
        .arg(format!(
            "--max-concurrent-requests={}",
            run.namenode.handlers
        ))
        .arg(format!("--render-iterations={}", run.render_iterations))
        .stdout(Stdio::piped());
    if let Some(n) = run.list_concurrency {
        cmd.arg(format!("--list-concurrency={n}"));
    }
    match password {
        Some(p) => cmd.env(PASSWORD_ENV, p),
        None => cmd.env_remove(PASSWORD_ENV),
    };
    let output = cmd.output().context("running the scan process")?;
    if !output.status.success() {
        bail!("the scan process failed: {}", output.status);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .context("the scan process printed no RESULT line")?;
    Ok(serde_json::from_str(line)?)
}

/// Mean and minimum round trip (ms) of `n` sequential `GETFILESTATUS /` requests: what one
/// request costs with the injected latency, client and server included.
async fn round_trips(namenode: &str, n: usize) -> anyhow::Result<(f64, f64)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .no_proxy()
        .build()?;
    let url = format!("{namenode}/webhdfs/v1/?op=GETFILESTATUS&user.name=hive");
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let response = client.get(&url).send().await?.error_for_status()?;
        response.bytes().await?;
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mean = times.iter().sum::<f64>() / n.max(1) as f64;
    Ok((mean, times.iter().copied().fold(f64::INFINITY, f64::min)))
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn verdict(met: bool) -> &'static str {
    if met { "MET" } else { "MISSED" }
}

fn ops(c: &ServerCounters) -> String {
    let mut parts: Vec<String> = c.by_op.iter().map(|(op, n)| format!("{op} {n}")).collect();
    if parts.is_empty() {
        parts.push("none".to_owned());
    }
    format!(
        "{} (total {}, errors {}, server max concurrent {})",
        parts.join(", "),
        c.total(),
        c.errors,
        c.max_concurrent
    )
}

/// What a scan of the first `tables` tables must find (computed from the generator, not
/// from the scan).
#[derive(Debug, Clone, Copy, Default)]
struct Expected {
    tables: u64,
    /// Partition directories (the table's own directory for an unpartitioned table).
    partitions: u64,
    visible_files: u64,
    visible_bytes: u64,
}

impl Expected {
    /// The totals of `specs`, from the same generator the server's namespace was built with.
    fn of(specs: &[TableSpec], files_per_partition: usize) -> Self {
        let mut e = Self {
            tables: specs.len() as u64,
            ..Self::default()
        };
        for t in specs {
            let dirs = t.data_dirs().len();
            e.partitions += dirs as u64;
            for d in 0..dirs {
                for f in files_of(t, d, files_per_partition) {
                    if !f.name.starts_with('_') {
                        e.visible_files += 1;
                        e.visible_bytes += f.len;
                    }
                }
            }
        }
        e
    }
}

/// Prints one backend's figures at one scale; returns the missed targets.
fn print_backend(title: &str, r: &ScanReport, expected: &Expected, bound: f64) -> Vec<String> {
    let mut missed = Vec::new();
    let mut check = |name: &str, met: bool| {
        if !met {
            missed.push(format!("{title}: {name}"));
        }
        verdict(met)
    };
    println!("--- {title} ---");
    for (label, p) in [
        ("full scan", &r.full),
        ("rescan, nothing changed", &r.rescan),
    ] {
        let parts = p.partitions_listed + p.partitions_missing + p.partitions_failed;
        println!(
            "{label}: wall {:.2} s (NameNode probe + MetaStore read + planning {:.2} s, \
             listing {:.2} s), {} partition directories -> {:.0} partitions/s; CPU of the scan \
             process {:.1} s, of the server process {:.1} s",
            p.wall_seconds,
            p.before_listing_seconds,
            p.listing_seconds,
            parts,
            parts as f64 / p.wall_seconds,
            p.cpu_seconds,
            p.namenode.cpu_seconds,
        );
        println!("  NameNode calls: {}", ops(&p.namenode));
        println!(
            "  scanner: {} listings, {} directories reused, {} cached; MetaStore queries {}",
            p.listings, p.reused_directories, p.cached_directories, p.metastore_queries
        );
        println!(
            "  result: success {}, tables {} scanned / {} failed / {} skipped, partitions {} listed \
             / {} missing / {} failed, {} files, {} bytes, {} small{}",
            p.success,
            p.tables_scanned,
            p.tables_failed,
            p.tables_skipped,
            p.partitions_listed,
            p.partitions_missing,
            p.partitions_failed,
            p.files,
            p.bytes,
            p.small_files,
            p.error
                .as_ref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
        let correct = p.success
            && p.tables_scanned == expected.tables
            && p.tables_failed == 0
            && p.partitions_listed == expected.partitions
            && p.files == expected.visible_files
            && p.bytes == expected.visible_bytes;
        println!(
            "  correct (all tables and partitions listed, files and bytes equal the generator's \
             {} / {}): {}",
            expected.visible_files,
            expected.visible_bytes,
            check(&format!("{label} correct"), correct)
        );
        println!(
            "  peak RSS so far (VmHWM): {:.1} MiB ({:.1} MB); RSS now {:.1} MiB",
            mib(p.vm_hwm_kib),
            p.vm_hwm_kib as f64 * 1024.0 / 1e6,
            mib(p.vm_rss_kib)
        );
    }
    let cpu_per_file_us = r.full.cpu_seconds * 1e6 / r.full.files.max(1) as f64;
    println!(
        "CPU of the scan process per listed file (full scan, user + system): {:.1} s / {} files \
         = {cpu_per_file_us:.2} µs  [target <= {CPU_PER_FILE_TARGET_US} µs: {}]",
        r.full.cpu_seconds,
        r.full.files,
        check("CPU per file", cpu_per_file_us <= CPU_PER_FILE_TARGET_US)
    );
    let full_calls = r.full.namenode.total();
    let listing_calls = r
        .full
        .namenode
        .by_op
        .get("LISTSTATUS_BATCH")
        .copied()
        .unwrap_or(0)
        + r.full
            .namenode
            .by_op
            .get("LISTSTATUS")
            .copied()
            .unwrap_or(0);
    let achieved = listing_calls as f64 / r.full.listing_seconds.max(1e-9);
    let share = achieved / bound;
    println!(
        "request throughput (full scan, listing phase): {achieved:.0} requests/s = {:.1} % of \
         the bound {bound:.0} requests/s; over the whole scan {:.0} requests/s  \
         [target >= {:.0} %: {}]",
        share * 100.0,
        full_calls as f64 / r.full.wall_seconds,
        THROUGHPUT_TARGET * 100.0,
        check("request throughput", share >= THROUGHPUT_TARGET)
    );
    let ratio = r.rescan.namenode.total() as f64 / full_calls.max(1) as f64;
    println!(
        "unchanged rescan NameNode calls: {} of {} = {:.2} %  [target <= {:.0} %: {}]",
        r.rescan.namenode.total(),
        full_calls,
        ratio * 100.0,
        RESCAN_TARGET * 100.0,
        check("rescan calls", ratio <= RESCAN_TARGET)
    );
    for x in &r.renders {
        println!(
            "/metrics {}: {} bytes, {} series, render min {:.1} / mean {:.1} / max {:.1} ms \
             over {}  [target < {} ms: {}]",
            x.format,
            x.bytes,
            x.series,
            x.min_ms,
            x.mean_ms,
            x.max_ms,
            x.iterations,
            RENDER_TARGET.as_millis(),
            check(
                &format!("render {}", x.format),
                x.max_ms < RENDER_TARGET.as_secs_f64() * 1000.0
            )
        );
    }
    if let Some(x) = r.renders.first() {
        println!(
            "series in one /metrics render ({}): {}  [target <= {SERIES_TARGET} at 1,000,000 \
             partitions: {}]",
            x.format,
            x.series,
            check("series", x.series <= SERIES_TARGET)
        );
    }
    // The target is stated for a full scan plus an unchanged rescan; the renders that follow
    // are reported beside it.
    let hwm = r.rescan.vm_hwm_kib * 1024;
    println!(
        "peak RSS of the scan process (VmHWM, full scan + unchanged rescan): {:.1} MiB = {:.1} \
         MB  [target < {} MB: {}]; with the renders after them {:.1} MiB = {:.1} MB",
        mib(r.rescan.vm_hwm_kib),
        hwm as f64 / 1e6,
        RSS_TARGET_BYTES / 1_000_000,
        check("peak RSS", hwm < RSS_TARGET_BYTES),
        mib(r.vm_hwm_kib),
        (r.vm_hwm_kib * 1024) as f64 / 1e6,
    );
    missed
}

/// The 1-, 5- and 15-minute load averages.
fn load_averages() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" / "))
        .unwrap_or_else(|| "unknown".to_owned())
}

/// Inserts the MetaStore rows of `specs` in rounds of [`FIXTURE_CHUNK_TABLES`] tables (multi-row
/// INSERTs, one transaction per round), so that a million partitions never sit in memory as
/// statements at once.
async fn insert_fixtures(db: &FixtureDb, specs: &[TableSpec]) -> anyhow::Result<()> {
    for chunk in specs.chunks(FIXTURE_CHUNK_TABLES) {
        let fixtures: Vec<FixtureTable> = chunk.iter().map(TableSpec::fixture).collect();
        db.insert(&fixtures).await?;
    }
    Ok(())
}

/// How many of the first tables hold at least `partitions` partition directories.
fn tables_for(specs: &[TableSpec], partitions: usize) -> usize {
    let mut sum = 0;
    for (i, t) in specs.iter().enumerate() {
        if sum >= partitions {
            return i;
        }
        sum += t.data_dirs().len();
    }
    specs.len()
}

fn orchestrate(run: &RunArgs) -> anyhow::Result<ExitCode> {
    if run.backends.is_empty() {
        bail!("no backend selected");
    }
    let started = Instant::now();
    let dir = tempfile::tempdir()?;
    let (mut server, ready_file) = start_server(run, dir.path())?;

    let specs = warehouse(&run.scale);
    let partitions: usize = specs.iter().map(|t| t.partitions.len()).sum();
    let count = |l: Layout| specs.iter().filter(|t| t.layout == l).count();
    let databases = (run.scale.tables / 100).max(1);
    println!("== hive-smallfiles scan benchmark ==");
    println!(
        "machine load at the start (1 / 5 / 15-minute load averages, {} cores): {}",
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
        load_averages()
    );
    println!(
        "warehouse: {} tables in {databases} databases ({} by dt, {} by dt/hr, {} unpartitioned), \
         {partitions} partitions, ~{} data files per partition",
        specs.len(),
        count(Layout::Daily),
        count(Layout::Hourly),
        count(Layout::Unpartitioned),
        run.scale.files_per_partition,
    );
    let small_target = run
        .small_scale_partitions
        .unwrap_or(partitions / 5)
        .min(partitions);
    let small_tables = if small_target == 0 {
        0
    } else {
        tables_for(&specs, small_target)
    };
    let small_tables = if small_tables >= specs.len() {
        0
    } else {
        small_tables
    };
    let full = Expected::of(&specs, run.scale.files_per_partition);
    let small = Expected::of(&specs[..small_tables], run.scale.files_per_partition);
    if small_tables > 0 {
        println!(
            "two scales: the first {} tables ({} partition directories, {} visible files), \
             then all {} ({} partition directories, {} visible files)",
            small.tables,
            small.partitions,
            small.visible_files,
            full.tables,
            full.partitions,
            full.visible_files
        );
    }

    // MetaStore fixtures up to the first scale, all backends at once, while the server
    // builds its namespace.
    let rt = runtime()?;
    let first_part = if small_tables > 0 {
        &specs[..small_tables]
    } else {
        &specs[..]
    };
    let dbs = rt.block_on(async {
        let builds = run.backends.iter().map(|b| async move {
            let started = Instant::now();
            let name = unique_db_name(&format!("bench_{b:?}"));
            let db = FixtureDb::create(b.kind(), SchemaVersion::Hive3_1, &name).await?;
            insert_fixtures(&db, first_part).await?;
            anyhow::Ok((*b, db, started.elapsed()))
        });
        futures::future::join_all(builds).await
    });
    let mut databases_built = Vec::new();
    let mut first_error = None;
    for r in dbs {
        match r {
            Ok(x) => databases_built.push(x),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let outcome = (|| -> anyhow::Result<Vec<String>> {
        if let Some(e) = first_error.take() {
            return Err(e.context("building the MetaStore fixtures"));
        }
        for (b, db, took) in &databases_built {
            println!(
                "MetaStore fixture (Hive 3.1 schema) on {}: database {}, {} tables inserted in \
                 {:.1} s (both backends at once)",
                b.title(),
                db.db_name(),
                first_part.len(),
                took.as_secs_f64()
            );
        }
        let ready = wait_ready(&mut server, &ready_file)?;
        let (rt_mean, rt_min) = rt.block_on(round_trips(&ready.namenode, 100))?;
        let bound = run.namenode.handlers as f64 / (run.namenode.latency_ms / 1000.0);
        println!(
            "WebHDFS server (own process): {} inodes ({} directories), {} visible files, \
             {:.1} TiB; namespace built in {:.1} s; latency {} ms, {} handlers",
            ready.files + ready.directories,
            ready.directories,
            ready.visible_files,
            ready.visible_bytes as f64 / (1u64 << 40) as f64,
            ready.build_seconds,
            run.namenode.latency_ms,
            run.namenode.handlers,
        );
        if ready.visible_files != full.visible_files || ready.visible_bytes != full.visible_bytes {
            bail!(
                "the server holds {} visible files / {} bytes, the generator says {} / {}",
                ready.visible_files,
                ready.visible_bytes,
                full.visible_files,
                full.visible_bytes
            );
        }
        println!(
            "one request at a time (GETFILESTATUS /, 100 in a row): round trip mean {rt_mean:.2} ms, \
             min {rt_min:.2} ms"
        );
        println!(
            "exporter: max_concurrent_requests {}; bound = {} / {} ms = {bound:.0} requests/s",
            run.namenode.handlers, run.namenode.handlers, run.namenode.latency_ms
        );
        let mut missed = Vec::new();
        for (b, db, _) in &databases_built {
            let (url, password) = metastore_url(db);
            let mut small_report = None;
            if small_tables > 0 {
                println!();
                println!(
                    "machine load before the {} scans at {} partitions: {}",
                    b.title(),
                    small.partitions,
                    load_averages()
                );
                let report = run_scan(run, &ready, &url, password.as_deref())
                    .with_context(|| format!("scanning with {}", b.title()))?;
                let title = format!("{} at {} partitions", b.title(), small.partitions);
                // The small scale's own figures are informative; its targets are not checked
                // (they are stated for the full scale), except correctness.
                let small_missed = print_backend(&title, &report, &small, bound);
                missed.extend(small_missed.into_iter().filter(|m| m.contains("correct")));
                let started = Instant::now();
                rt.block_on(insert_fixtures(db, &specs[small_tables..]))?;
                let took = started.elapsed().as_secs_f64();
                println!(
                    "MetaStore fixture on {}: the other {} tables inserted in {took:.1} s \
                     (full scan at this scale: {:.1} s)",
                    b.title(),
                    specs.len() - small_tables,
                    report.full.wall_seconds
                );
                small_report = Some(report);
            }
            println!();
            println!(
                "machine load before the {} scans at {} partitions: {}",
                b.title(),
                full.partitions,
                load_averages()
            );
            let report = run_scan(run, &ready, &url, password.as_deref())
                .with_context(|| format!("scanning with {}", b.title()))?;
            if b == &databases_built[0].0 {
                println!("exporter list_concurrency {}", report.list_concurrency);
            }
            let title = format!("{} at {} partitions", b.title(), full.partitions);
            missed.extend(print_backend(&title, &report, &full, bound));
            if let Some(small_report) = small_report {
                // Peaks of the scans (full + unchanged rescan) at each scale, as the target
                // is stated; the same with the renders' peaks is printed beside it.
                let (big, small_hwm) = (report.rescan.vm_hwm_kib, small_report.rescan.vm_hwm_kib);
                let partitions = (full.partitions - small.partitions).max(1) as f64;
                let per = (big as f64 - small_hwm as f64) * 1024.0 / partitions;
                let with_renders = (report.vm_hwm_kib as f64 - small_report.vm_hwm_kib as f64)
                    * 1024.0
                    / partitions;
                println!(
                    "peak RSS growth per partition ({}, scans): ({:.1} MiB - {:.1} MiB) / ({} - \
                     {}) partitions = {per:.0} bytes  [target <= {RSS_GROWTH_TARGET_BYTES:.0} \
                     bytes: {}]; with the renders' peaks {with_renders:.0} bytes",
                    b.title(),
                    mib(big),
                    mib(small_hwm),
                    full.partitions,
                    small.partitions,
                    verdict(per <= RSS_GROWTH_TARGET_BYTES)
                );
                if per > RSS_GROWTH_TARGET_BYTES {
                    missed.push(format!("{}: RSS growth per partition", b.title()));
                }
            }
        }
        Ok(missed)
    })();
    if !run.keep_databases {
        rt.block_on(async {
            for (_, db, _) in databases_built {
                if let Err(e) = db.drop_database().await {
                    eprintln!("bench: dropping a fixture database: {e:#}");
                }
            }
        });
    }
    drop(server);
    let missed = outcome?;
    println!();
    println!(
        "machine load at the end (1 / 5 / 15-minute load averages): {}",
        load_averages()
    );
    if missed.is_empty() {
        println!(
            "all targets met ({:.0} s in all)",
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "targets missed: {} ({:.0} s in all)",
            missed.join("; "),
            started.elapsed().as_secs_f64()
        );
    }
    let _ = std::io::stdout().flush();
    Ok(if missed.is_empty() || !run.fail_on_miss {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(FIRST_DAY), "2023-01-01");
        assert_eq!(date(FIRST_DAY + 59), "2023-03-01");
        assert_eq!(date(FIRST_DAY + 365 + 59), "2024-02-29");
    }

    #[test]
    fn warehouse_shape() {
        let scale = Scale {
            tables: 2000,
            partitions_per_table: 100,
            files_per_partition: 4,
        };
        let w = warehouse(&scale);
        assert_eq!(w.len(), 2000);
        assert_eq!(w.iter().map(|t| t.partitions.len()).sum::<usize>(), 200_000);
        assert_eq!(
            w.iter()
                .filter(|t| t.layout == Layout::Unpartitioned)
                .count(),
            100
        );
        let files: usize = w
            .iter()
            .take(100)
            .flat_map(|t| (0..t.data_dirs().len()).map(move |d| files_of(t, d, 4).len()))
            .sum();
        assert!(files > 0);
    }
}
