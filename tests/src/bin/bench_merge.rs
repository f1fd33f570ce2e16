//! Merge throughput of the native executor against plain `cat` of the same files on the same
//! disk: a generated partition of small text files (plain and gzip) and one of small Parquet
//! files, each merged through the whole commit protocol (read, merge, upload into staging,
//! verify by reading back, manifest, re-list, swap, reconcile) on the local `file:` backend,
//! and — for text — over the in-process WebHDFS server. Prints MB/s of source bytes.
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

/// `cat <files> > out` on the same disk, page cache dropped as far as we can (not at all
/// without root: both sides then read from the cache alike).
fn cat_seconds(dir: &Path, out: &Path) -> f64 {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
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
    let s = started.elapsed().as_secs_f64();
    std::fs::remove_file(out).unwrap();
    s
}

async fn merge_seconds(
    fs: Arc<dyn FileSystemWrite>,
    partition: &str,
    format: NativeFormat,
    target: u64,
    spool: &Path,
) -> (f64, u64) {
    let committer = Committer::new(
        fs,
        CommitSettings {
            identity: Identity::new("bench", Duration::from_secs(600)),
            backup_retention: Duration::from_secs(0),
            switch_grace: Duration::from_secs(0),
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
    let started = Instant::now();
    let report = committer.merge(1, &t, &writer, None).await.expect("merge");
    (started.elapsed().as_secs_f64(), report.files_after)
}

/// (label, format, file maker, number of files).
type Case<'a> = (
    &'a str,
    NativeFormat,
    Box<dyn Fn(usize) -> (String, Vec<u8>) + 'a>,
    usize,
);

fn mb_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs
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
    println!(
        "native merge throughput vs cat (source bytes / wall time), target {} MiB",
        args.target_mib
    );
    println!("(text.gz counts compressed source bytes; the merge decompresses and recompresses)");

    let cases: Vec<Case<'_>> = vec![
        (
            "text",
            NativeFormat::Text(TextCompression::None),
            Box::new(|i| (format!("{i:06}_0"), text_file(i, args.file_kib))),
            args.text_files,
        ),
        (
            "text.gz",
            NativeFormat::Text(TextCompression::Gzip),
            Box::new(|i| (format!("{i:06}_0.gz"), gzip(&text_file(i, args.file_kib)))),
            args.text_files / 4,
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
        ),
    ];
    for (label, format, make, n) in &cases {
        let dir = root.join(format!("t_{}/dt=1", label.replace('.', "_")));
        let bytes = write_partition(&dir, (0..*n).map(make));
        let cat = cat_seconds(&dir, &base.join("cat.out"));
        let (secs, outputs) = merge_seconds(
            Arc::clone(&fs),
            &dir.display().to_string(),
            *format,
            target,
            &spool,
        )
        .await;
        println!(
            "{label:8} local   {n:5} files {:8.1} MB -> {outputs} file(s): merge {secs:6.2} s = {:7.1} MB/s | cat {cat:6.2} s = {:7.1} MB/s | merge/cat {:.2}",
            bytes as f64 / 1e6,
            mb_s(bytes, secs),
            mb_s(bytes, cat),
            cat / secs
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
    let (secs, outputs) = merge_seconds(
        Arc::new(client),
        "/w/t/dt=1",
        NativeFormat::Text(TextCompression::None),
        target,
        &spool,
    )
    .await;
    println!(
        "{:8} webhdfs {:5} files {:8.1} MB -> {outputs} file(s): merge {secs:6.2} s = {:7.1} MB/s (in-process server, no disk)",
        "text",
        args.text_files,
        bytes as f64 / 1e6,
        mb_s(bytes, secs)
    );
    server.shutdown().await;
    ExitCode::SUCCESS
}
