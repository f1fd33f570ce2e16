//! Service plumbing both binaries share: logging, the signals that stop a service, and the
//! runtime a binary's `main` hands its command to.
//!
//! One shutdown path: [`shutdown_signal`] resolves on SIGTERM or SIGINT; a binary turns it into
//! the cancellation of the one [`CancellationToken`] its library's `run` takes, and work stops
//! at its step boundaries.

use std::fmt;
use std::future::Future;
use std::io::IsTerminal;
use std::process::ExitCode;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;

pub use tokio_util::sync::CancellationToken;

mod log_format;

pub use log_format::{LineFormat, LogFormat, logfmt_value};

/// A future that completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        let _ = ctrl_c.await;
        return;
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}

/// A token cancelled by the first SIGTERM or SIGINT.
pub fn cancel_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    tokio::spawn({
        let token = token.clone();
        async move {
            shutdown_signal().await;
            token.cancel();
        }
    });
    token
}

/// Logging to stderr with an `EnvFilter` directive (`info`, `debug`, `crate=debug`...; an
/// invalid directive falls back to `info`), one line per event in `format`. The level is
/// coloured only when stderr is a terminal and `NO_COLOR` (no-color.org) is not set.
pub fn init_logging(directive: &str, format: LogFormat) {
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    // Also forwards records of crates that log through the `log` crate.
    let _ = subscriber(directive, format, ansi, std::io::stderr).try_init();
}

/// The subscriber [`init_logging`] installs, writing to `writer` (tests pass a buffer).
pub fn subscriber<W>(
    directive: &str,
    format: LogFormat,
    ansi: bool,
    writer: W,
) -> impl tracing::Subscriber + Send + Sync + 'static
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_new(directive)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(ansi)
        .event_format(LineFormat::new(format))
        .finish()
}

/// What a binary's `main` does after parsing its flags: sets up logging (`--log.level`,
/// `--log.format`), starts the multi-threaded runtime and runs `command` on it. An error ends
/// the process with status 1 and the error (with its causes) on stderr, prefixed with the
/// program's name.
pub fn run_main<F, E>(program: &str, log_level: &str, log_format: LogFormat, command: F) -> ExitCode
where
    F: Future<Output = Result<ExitCode, E>>,
    E: fmt::Display,
{
    init_logging(log_level, log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{program}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("{program}: {e:#}");
            ExitCode::FAILURE
        }
    }
}
