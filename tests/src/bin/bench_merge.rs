//! Merge throughput of the native executor against plain `cat` of the same files on the same
//! disk, measured in the same run: a generated partition of small text files (plain and gzip)
//! and one of small Parquet files, each merged through the whole commit protocol (read,
//! merge, upload into staging, verify by reading back, manifest, re-list, swap, reconcile) on
//! the local `file:` backend, and — for text — over the in-process WebHDFS server.
//!
//! Prints, per format, MB/s of source bytes (compressed bytes for gzip), the ratio to `cat`
//! of the same files and the target it is held against (text ≥ 0.5 of `cat`, gzip text ≥ 0.3
//! of `cat`, Parquet ≥ 200 MB/s), the CPU seconds of the merge and of `cat`, the merge's peak
//! RSS (the process's high-water mark, reset before each merge) and the load average. Each
//! case runs `--rounds` times on a fresh partition; the median round is reported.
//!
//! ```text
//! cargo run --release -p hive-smallfiles-tests --bin bench_merge
//! cargo run --release -p hive-smallfiles-tests --bin bench_merge -- --text-files 4000 --file-kib 64
//! ```

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hive_smallfiles_agent::native::format::{NativeFormat, TextCompression};
use hive_smallfiles_agent::native::lock::Identity;
use hive_smallfiles_agent::native::writer::NativeWriter;
use hive_smallfiles_agent::native::{CommitSettings, Committer, Target};
use hive_smallfiles_core::fs::local::LocalFs;
use hive_smallfiles_core::fs::webhdfs::{WebHdfs, WebHdfsConfig, WebHdfsMetrics};
use hive_smallfiles_core::fs::write::FileSystemWrite;
use hive_smallfiles_tests::webhdfs_server::{ServerOptions, WebHdfsServer};

/// Command line.
#[derive(Debug, Parser)]
struct Args {
    /// Small text files in the text partition.
    #[arg(long, default_value_t = 2000)]
    text_files: usize,
    /// Size of one text file, KiB.
    #[arg(long, default_value_t = 64)]
    file_kib: usize,
    /// Small Parquet files in the Parquet partition.
    #[arg(long, default_value_t = 400)]
    parquet_files: usize,
    /// Rows per Parquet file.
    #[arg(long, default_value_t = 5000)]
    parquet_rows: usize,
    /// Output file size to aim for, MiB.
    #[arg(long, default_value_t = 128)]
    target_mib: u64,
    /// Rounds per case (each on a fresh partition); the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Directory to work in (default: a temporary directory).
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn text_file(i: usize, kib: usize) -> Vec<u8> {
    let mut s = String::with_capacity(kib * 1024 + 100);
    let mut n = 0;
    while s.len() < kib * 1024 {
        s.push_str(&format!(
            "{i}\t{n}\t2024-01-01 10:00:{:02}\tsome text value {}\t{}\n",
            n % 60,
            i * 7 + n,
            n as f64 * 0.25
        ));
        n += 1;
    }
    s.into_bytes()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Writes a partition; returns its total bytes.
fn write_partition(dir: &Path, files: impl Iterator<Item = (String, Vec<u8>)>) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let mut total = 0;
    for (name, data) in files {
        total += data.len() as u64;
        std::fs::write(dir.join(name), data).unwrap();
    }
    total
}

/// CPU seconds (user + system) of this process and of its waited-for children, from
/// `/proc/self/stat` (fields 14–17, in clock ticks of 1/100 s on Linux).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // rest[0] is field 3 (state): utime = field 14 = rest[11].
    let tick = 100.0;
    let get = |i: usize| f.get(i).copied().unwrap_or(0.0) / tick;
    (get(11) + get(12), get(13) + get(14))
}

/// This process's peak RSS in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Resets the peak RSS to the current RSS (`echo 5 > /proc/self/clear_refs`, Linux ≥ 4.0).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// One timed run: wall seconds and CPU seconds.
#[derive(Debug, Clone, Copy)]
struct Timed {
    wall: f64,
    cpu: f64,
}

/// `cat <files> > out` on the same disk, page cache dropped as far as we can (not at all
/// without root: both sides then read from the cache alike).
fn cat_run(dir: &Path, out: &Path) -> Timed {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let (_, children) = cpu_seconds();
    let started = Instant::now();
    let status = Command::new("cat")
        .args(&files)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success());
    // cat's output is on disk as far as the merge's is (the merge fsyncs its files).
    std::fs::File::open(out).unwrap().sync_all().unwrap();
    let wall = started.elapsed().as_secs_f64();
    std::fs::remove_file(out).unwrap();
    Timed {
        wall,
        cpu: cpu_seconds().1 - children,
    }
}

/// Merges the partition; the run and the number of output files.
async fn merge_run(
    fs: Arc<dyn FileSystemWrite>,
    partition: &str,
    format: NativeFormat,
    target: u64,
    spool: &Path,
) -> (Timed, u64) {
    let committer = Committer::new(
        fs,
        CommitSettings {
            identity: Identity::new("bench", Duration::from_secs(600)),
            backup_retention: Duration::from_secs(0),
            switch_grace: Duration::from_secs(0),
            switch_settle: Duration::from_secs(0),
            spool_dir: spool.to_owned(),
        },
    );
    let writer = NativeWriter {
        format,
        target_bytes: target,
    };
    let t = Target {
        cluster: "bench".into(),
        table: "bench.t".into(),
        partition: "dt=1".into(),
        path: partition.to_owned(),
    };
    let (cpu0, _) = cpu_seconds();
    let started = Instant::now();
    let report = committer.merge(1, &t, &writer, None).await.expect("merge");
    let wall = started.elapsed().as_secs_f64();
    (
        Timed {
            wall,
            cpu: cpu_seconds().0 - cpu0,
        },
        report.files_after,
    )
}

/// What a format is held against.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// At least this fraction of `cat`'s MB/s.
    OfCat(f64),
    /// At least this many MB/s.
    MbPerS(f64),
}

/// (label, format, file maker, number of files, goal).
type Case<'a> = (
    &'a str,
    NativeFormat,
    Box<dyn Fn(usize) -> (String, Vec<u8>) + 'a>,
    usize,
    Goal,
);

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
}

/// The median of a non-empty list of runs, by wall time.
fn median(mut runs: Vec<Timed>) -> Timed {
    runs.sort_by(|a, b| a.wall.total_cmp(&b.wall));
    runs[runs.len() / 2]
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let tmp = tempfile::tempdir().unwrap();
    let base = args.dir.clone().unwrap_or_else(|| tmp.path().to_owned());
    let target = args.target_mib << 20;
    let root = base.join("warehouse");
    let spool = base.join("spool");
    let fs: Arc<dyn FileSystemWrite> = Arc::new(LocalFs::new(root.clone()));
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    println!(
        "native merge throughput vs cat (source bytes / wall time), target {} MiB, {cores} cores, load {} at start, median of {} round(s)",
        args.target_mib,
        load(),
        args.rounds
    );
    println!("(text.gz counts compressed source bytes)");

    let cases: Vec<Case<'_>> = vec![
        (
            "text",
            NativeFormat::Text(TextCompression::None),
            Box::new(|i| (format!("{i:06}_0"), text_file(i, args.file_kib))),
            args.text_files,
            Goal::OfCat(0.5),
        ),
        (
            "text.gz",
            NativeFormat::Text(TextCompression::Gzip),
            Box::new(|i| (format!("{i:06}_0.gz"), gzip(&text_file(i, args.file_kib)))),
            args.text_files / 4,
            Goal::OfCat(0.3),
        ),
        (
            "parquet",
            NativeFormat::Parquet,
            Box::new(|i| {
                (
                    format!("part-{i:05}.snappy.parquet"),
                    hive_smallfiles_tests::samples::parquet_file(
                        (i * args.parquet_rows) as i64,
                        args.parquet_rows,
                        "name",
                    ),
                )
            }),
            args.parquet_files,
            Goal::MbPerS(200.0),
        ),
    ];
    let mut all_met = true;
    for (label, format, make, n, goal) in &cases {
        let (mut merges, mut cats, mut rss) = (Vec::new(), Vec::new(), 0f64);
        let (mut bytes, mut outputs) = (0, 0);
        for round in 0..args.rounds.max(1) {
            let dir = root.join(format!("t_{}_{round}/dt=1", label.replace('.', "_")));
            bytes = write_partition(&dir, (0..*n).map(make));
            cats.push(cat_run(&dir, &base.join("cat.out")));
            reset_peak_rss();
            let (run, out) = merge_run(
                Arc::clone(&fs),
                &dir.display().to_string(),
                *format,
                target,
                &spool,
            )
            .await;
            rss = rss.max(peak_rss_mib());
            merges.push(run);
            outputs = out;
            let _ = std::fs::remove_dir_all(dir.parent().unwrap_or(&dir));
        }
        let (merge, cat) = (median(merges), median(cats));
        let (merge_mb, cat_mb) = (mb_s(bytes, merge.wall), mb_s(bytes, cat.wall));
        let ratio = cat.wall / merge.wall;
        let (goal_text, met) = match goal {
            Goal::OfCat(r) => (format!("target ≥ {r:.2} of cat"), ratio >= *r),
            Goal::MbPerS(m) => (format!("target ≥ {m:.0} MB/s"), merge_mb >= *m),
        };
        all_met &= met;
        println!(
            "{label:8} local   {n:5} files {:8.1} MB -> {outputs} file(s): merge {:6.2} s = {merge_mb:7.1} MB/s, {:5.2} CPU s, peak RSS {rss:6.1} MiB | cat {:6.2} s = {cat_mb:7.1} MB/s, {:5.2} CPU s | merge/cat {ratio:.2} | {goal_text}: {}",
            bytes as f64 / 1e6,
            merge.wall,
            merge.cpu,
            cat.wall,
            cat.cpu,
            if met { "met" } else { "MISSED" },
        );
    }

    // Text over WebHDFS (in-process server, in memory): protocol and HTTP overhead.
    let server = WebHdfsServer::start(ServerOptions::new().default_user("hive"))
        .await
        .unwrap();
    let handle = server.handle();
    let ns = handle.namespace();
    let mut bytes = 0u64;
    for i in 0..args.text_files {
        let data = text_file(i, args.file_kib);
        bytes += data.len() as u64;
        ns.add_file(&format!("/w/t/dt=1/{i:06}_0"), data).unwrap();
    }
    let client = WebHdfs::new(
        WebHdfsConfig {
            cluster: "bench".into(),
            namenodes: vec![url::Url::parse(&server.handle().namenode_url(0)).unwrap()],
            user: Some("hive".into()),
            delegation_token: None,
            request_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            max_concurrent_requests: 16,
            max_retries: 2,
            retry_initial_backoff: Duration::from_millis(50),
            retry_max_backoff: Duration::from_secs(1),
            ca_file: None,
            spnego: None,
        },
        WebHdfsMetrics::default(),
    )
    .unwrap();
    reset_peak_rss();
    let (run, outputs) = merge_run(
        Arc::new(client),
        "/w/t/dt=1",
        NativeFormat::Text(TextCompression::None),
        target,
        &spool,
    )
    .await;
    println!(
        "{:8} webhdfs {:5} files {:8.1} MB -> {outputs} file(s): merge {:6.2} s = {:7.1} MB/s, {:5.2} CPU s (server included), peak RSS {:6.1} MiB (in-process server, no disk)",
        "text",
        args.text_files,
        bytes as f64 / 1e6,
        run.wall,
        mb_s(bytes, run.wall),
        run.cpu,
        peak_rss_mib()
    );
    server.shutdown().await;
    println!("load {} at the end", load());
    println!(
        "{}",
        if all_met {
            "all targets met"
        } else {
            "some targets MISSED (see above; on a busy machine compare the ratios)"
        }
    );
    ExitCode::SUCCESS
}
