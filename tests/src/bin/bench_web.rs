//! HTTP soak of the agent: the agent as its own process (this binary re-executed as
//! `bench_web agent …`, which is the agent's command line) under, at once,
//!
//! * slow-header connections (slowloris: a partial request header, then one byte a second;
//!   a connection the agent closes is opened again),
//! * a basic-auth flood: connections sending wrong passwords in a loop (each request a new
//!   password by default, so that no cache helps),
//! * Alertmanager webhooks carrying a steady number of alerts per second (valid credentials),
//!
//! while a valid client (basic auth, keep-alive, as Prometheus scrapes) measures its latency,
//! and a probe opens a new connection for `/healthz` every second. Prints the valid client's
//! p50/p99 against the target, the load achieved, the agent's CPU seconds and peak RSS, and
//! its `hive_merge_http_*` counters; exits non-zero when the p99 misses the target.
//!
//! ```text
//! cargo run --release -p hive-smallfiles-tests --bin bench_web
//! HSF_SOAK_SECONDS=300 nice cargo run --release -p hive-smallfiles-tests --bin bench_web
//! cargo run --release -p hive-smallfiles-tests --bin bench_web -- --slow 200 --flood 50 --alerts-per-second 1000 --nofile 512
//! ```

use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Parser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// The valid client's p99 target.
const P99_TARGET: Duration = Duration::from_millis(100);
/// Environment variable overriding `--seconds`.
const SECONDS_ENV: &str = "HSF_SOAK_SECONDS";
/// The valid user's password; the flood's passwords differ from it.
const PASSWORD: &str = "soak-password";

#[derive(Debug, Parser)]
#[command(name = "bench_web", about = "HTTP soak of the agent")]
struct Args {
    /// Duration of the load, seconds (environment: HSF_SOAK_SECONDS).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Slow-header connections held open.
    #[arg(long, default_value_t = 200)]
    slow: usize,
    /// Connections sending wrong passwords in a loop.
    #[arg(long, default_value_t = 50)]
    flood: usize,
    /// The flood repeats one wrong password instead of a new one per request.
    #[arg(long)]
    flood_same_password: bool,
    /// Alerts per second sent to the webhook.
    #[arg(long, default_value_t = 1000)]
    alerts_per_second: u64,
    /// Alerts per webhook request.
    #[arg(long, default_value_t = 10)]
    alerts_per_request: u64,
    /// Requests per second of the valid client.
    #[arg(long, default_value_t = 50)]
    valid_per_second: u64,
    /// bcrypt cost of the valid user's hash (htpasswd -B uses 5 unless told; Prometheus'
    /// documentation shows 10).
    #[arg(long, default_value_t = 10)]
    bcrypt_cost: u32,
    /// Open-file limit of the agent process (ulimit -n); default: inherited.
    #[arg(long)]
    nofile: Option<u64>,
    /// Lines of the agent's `[server]` section, e.g. `max_connections = 300`.
    #[arg(long)]
    server: Vec<String>,
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("agent") {
        let args = std::iter::once(argv[0].clone()).chain(argv[2..].iter().cloned());
        return hive_smallfiles_agent::cli::main_from(args);
    }
    let mut args = Args::parse();
    if let Some(s) = std::env::var(SECONDS_ENV).ok().and_then(|s| s.parse().ok()) {
        args.seconds = s;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match runtime.block_on(soak(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("bench_web: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The agent process; killed when dropped.
struct AgentChild(Child);

impl Drop for AgentChild {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User + system CPU seconds and `VmHWM` (KiB) of process `pid`.
fn cpu_and_peak(pid: u32) -> (f64, u64) {
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            // Fields 14 and 15 of stat(5): utime, stime (ticks); `rest` starts at field 3.
            let ticks: u64 =
                rest.get(11)?.parse::<u64>().ok()? + rest.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        })
        .unwrap_or(0.0);
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0);
    (cpu, hwm)
}

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Counters of the load generators.
#[derive(Default)]
struct Load {
    slow_opened: AtomicU64,
    slow_closed_by_agent: AtomicU64,
    flood_requests: AtomicU64,
    flood_401: AtomicU64,
    flood_errors: AtomicU64,
    webhook_requests: AtomicU64,
    webhook_ok: AtomicU64,
    webhook_failed: AtomicU64,
    probe_ok: AtomicU64,
    probe_failed: AtomicU64,
}

async fn soak(args: Args) -> anyhow::Result<bool> {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let hash = bcrypt::hash(PASSWORD, args.bcrypt_cost)?;
    std::fs::write(
        d.join("web.yml"),
        format!("basic_auth_users:\n  prom: '{hash}'\n"),
    )?;
    std::fs::create_dir_all(d.join("warehouse"))?;
    std::fs::write(
        d.join("agent.toml"),
        format!(
            "audit_log = \"audit.jsonl\"\n[server]\n{}\n\
             [[cluster]]\nname = \"c\"\nengine = \"spark\"\nexecutor = \"native\"\n\
             [cluster.metastore]\nurl = \"mysql://hive@127.0.0.1:1/metastore\"\nconnect_timeout = \"1s\"\n\
             [cluster.storage]\ntype = \"local\"\nroot = \"{}\"\n",
            args.server.join("\n"),
            d.join("warehouse").display()
        ),
    )?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let addr = format!("127.0.0.1:{port}");
    let exe = std::env::current_exe()?;
    let agent_args = [
        "agent".to_owned(),
        "--config.file".to_owned(),
        d.join("agent.toml").display().to_string(),
        "--web.config.file".to_owned(),
        d.join("web.yml").display().to_string(),
        "--web.listen-address".to_owned(),
        addr.clone(),
        "--log.level".to_owned(),
        "error".to_owned(),
    ];
    let log = std::fs::File::create(d.join("agent.log"))?;
    let mut cmd = match args.nofile {
        None => {
            let mut c = Command::new(&exe);
            c.args(&agent_args);
            c
        }
        Some(n) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("ulimit -n {n} && exec \"$0\" \"$@\""))
                .arg(&exe)
                .args(&agent_args);
            c
        }
    };
    let child = AgentChild(
        cmd.stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting the agent")?,
    );
    let pid = child.0.id();
    let base = format!("http://{addr}");
    let valid = basic("prom", PASSWORD);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{base}/healthz")).send().await
            && r.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "the agent did not answer; its log:\n{}",
                std::fs::read_to_string(d.join("agent.log")).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The valid client's credentials are verified once before the load (as a scraper's
    // first request is): the measurement is of a client the agent already knows.
    let first = client
        .get(format!("{base}/api/v1/intake"))
        .header("authorization", &valid)
        .send()
        .await?;
    if first.status().as_u16() != 200 {
        bail!("the valid client is refused: {}", first.status());
    }
    let (cpu_before, _) = cpu_and_peak(pid);
    let load = Arc::new(Load::default());
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    for i in 0..args.slow {
        tasks.push(tokio::spawn(slow_header(
            addr.clone(),
            i,
            Arc::clone(&load),
            stop.clone(),
        )));
    }
    for i in 0..args.flood {
        tasks.push(tokio::spawn(flood(
            base.clone(),
            i,
            args.flood_same_password,
            Arc::clone(&load),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(webhooks(
        base.clone(),
        valid.clone(),
        args.alerts_per_second,
        args.alerts_per_request,
        Arc::clone(&load),
        stop.clone(),
    )));
    tasks.push(tokio::spawn(probe(
        base.clone(),
        Arc::clone(&load),
        stop.clone(),
    )));
    let measuring = tokio::spawn(valid_client(
        base.clone(),
        valid.clone(),
        args.valid_per_second,
        stop.clone(),
    ));
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.cancel();
    let elapsed = started.elapsed().as_secs_f64();
    let (mut latencies, valid_failed) = measuring.await?;
    let (cpu_after, peak_kib) = cpu_and_peak(pid);
    let metrics = client
        .get(format!("{base}/metrics"))
        .header("authorization", &valid)
        .send()
        .await?
        .text()
        .await?;
    for t in tasks {
        t.abort();
    }
    drop(child);

    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(Duration::MAX)
    };
    let (p50, p99, max) = (pct(0.50), pct(0.99), pct(1.0));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let rate = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / elapsed;
    println!("HTTP soak of the agent, {elapsed:.0} s");
    println!(
        "load: {} slow-header connections ({} opened, {} closed by the agent), \
         {} flood connections ({:.0} wrong-password requests/s, {} answered 401, {} errors), \
         webhook {:.0} requests/s = {:.0} alerts/s ({} ok, {} failed), \
         /healthz probe on new connections {} ok / {} failed",
        args.slow,
        load.slow_opened.load(Ordering::Relaxed),
        load.slow_closed_by_agent.load(Ordering::Relaxed),
        args.flood,
        rate(&load.flood_requests),
        load.flood_401.load(Ordering::Relaxed),
        load.flood_errors.load(Ordering::Relaxed),
        rate(&load.webhook_requests),
        rate(&load.webhook_ok) * args.alerts_per_request as f64,
        load.webhook_ok.load(Ordering::Relaxed),
        load.webhook_failed.load(Ordering::Relaxed),
        load.probe_ok.load(Ordering::Relaxed),
        load.probe_failed.load(Ordering::Relaxed),
    );
    println!(
        "valid client: {} requests, {valid_failed} failed; p50 {:.1} ms, p99 {:.1} ms (target < {} ms), max {:.1} ms",
        latencies.len(),
        ms(p50),
        ms(p99),
        P99_TARGET.as_millis(),
        ms(max)
    );
    println!(
        "agent: {:.1} CPU seconds ({:.0}% of one core), peak RSS {:.1} MiB",
        cpu_after - cpu_before,
        (cpu_after - cpu_before) / elapsed * 100.0,
        peak_kib as f64 / 1024.0
    );
    for line in metrics.lines().filter(|l| {
        l.starts_with("hive_merge_http_") || l.starts_with("hive_merge_webhook_requests")
    }) {
        println!("  {line}");
    }
    let ok = p99 < P99_TARGET && valid_failed == 0;
    println!("{}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

/// One slowloris connection, opened again whenever the agent closes it.
async fn slow_header(addr: String, i: usize, load: Arc<Load>, stop: CancellationToken) {
    // Spread the openings over the first second.
    tokio::time::sleep(Duration::from_millis((i as u64 * 5) % 1000)).await;
    while !stop.is_cancelled() {
        let Ok(mut s) = TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        load.slow_opened.fetch_add(1, Ordering::Relaxed);
        if s.write_all(b"GET /api/v1/intake HTTP/1.1\r\nHost: x\r\n")
            .await
            .is_err()
        {
            continue;
        }
        let mut buf = [0u8; 256];
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                r = s.read(&mut buf) => {
                    if matches!(r, Ok(0) | Err(_)) {
                        load.slow_closed_by_agent.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if s.write_all(b"X").await.is_err() {
                        load.slow_closed_by_agent.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
}

/// One connection sending wrong passwords back to back.
async fn flood(base: String, i: usize, same: bool, load: Arc<Load>, stop: CancellationToken) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(1)
        .build()
    else {
        return;
    };
    let mut n = 0u64;
    while !stop.is_cancelled() {
        n += 1;
        let password = if same {
            "wrong".to_owned()
        } else {
            format!("wrong-{i}-{n}")
        };
        load.flood_requests.fetch_add(1, Ordering::Relaxed);
        let r = client
            .get(format!("{base}/api/v1/intake"))
            .header("authorization", basic("prom", &password))
            .send();
        tokio::select! {
            () = stop.cancelled() => return,
            r = r => match r {
                Ok(r) if r.status().as_u16() == 401 => {
                    load.flood_401.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    load.flood_errors.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// Webhook requests at a steady rate, each with `per_request` firing alerts.
async fn webhooks(
    base: String,
    auth: String,
    alerts_per_second: u64,
    per_request: u64,
    load: Arc<Load>,
    stop: CancellationToken,
) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return;
    };
    let per_second = (alerts_per_second / per_request.max(1)).max(1);
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut n = 0u64;
    while !stop.is_cancelled() {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        n += 1;
        let alerts: Vec<_> = (0..per_request)
            .map(|k| {
                serde_json::json!({
                    "status": "firing",
                    "labels": {
                        "alertname": "HiveSmallFiles",
                        "cluster": "c",
                        "database": "db",
                        "table": format!("t{}", (n * per_request + k) % 500),
                    },
                    "annotations": {},
                    "startsAt": "2026-01-01T00:00:00Z",
                    "endsAt": "0001-01-01T00:00:00Z",
                    "generatorURL": "",
                    "fingerprint": format!("{:016x}", (n * per_request + k) % 500),
                })
            })
            .collect();
        let body = serde_json::json!({
            "version": "4",
            "groupKey": format!("{{}}:{{table=\"{n}\"}}"),
            "truncatedAlerts": 0,
            "status": "firing",
            "receiver": "hive-smallfiles-agent",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://alertmanager:9093",
            "alerts": alerts,
        });
        load.webhook_requests.fetch_add(1, Ordering::Relaxed);
        let request = client
            .post(format!("{base}/api/v1/alerts"))
            .header("authorization", &auth)
            .json(&body)
            .send();
        let load = Arc::clone(&load);
        tokio::spawn(async move {
            match request.await {
                Ok(r) if r.status().is_success() => load.webhook_ok.fetch_add(1, Ordering::Relaxed),
                _ => load.webhook_failed.fetch_add(1, Ordering::Relaxed),
            };
        });
    }
}

/// `/healthz` on a new connection every second (as a load balancer or kubelet probes).
async fn probe(base: String, load: Arc<Load>, stop: CancellationToken) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(0)
        .build()
    else {
        return;
    };
    while !stop.is_cancelled() {
        match client.get(format!("{base}/healthz")).send().await {
            Ok(r) if r.status().is_success() => load.probe_ok.fetch_add(1, Ordering::Relaxed),
            _ => load.probe_failed.fetch_add(1, Ordering::Relaxed),
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// The measured client: authenticated GETs on a kept-alive connection at a steady rate;
/// (latencies of every request, requests that failed).
async fn valid_client(
    base: String,
    auth: String,
    per_second: u64,
    stop: CancellationToken,
) -> (Vec<Duration>, u64) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    else {
        return (Vec::new(), 1);
    };
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / per_second.max(1) as f64));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut latencies, mut failed) = (Vec::new(), 0);
    while !stop.is_cancelled() {
        tick.tick().await;
        let start = Instant::now();
        match client
            .get(format!("{base}/api/v1/intake"))
            .header("authorization", &auth)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {
                let _ = r.bytes().await;
            }
            _ => failed += 1,
        }
        // Failures count with the time they took (up to the client's timeout).
        latencies.push(start.elapsed());
    }
    (latencies, failed)
}
