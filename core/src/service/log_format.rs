//! Log lines in the formats of Prometheus' own `--log.format`: `logfmt` (the default) and
//! `json`, one event per line whatever its fields hold.
//!
//! Logged values come from outside (an Alertmanager `groupKey`, table names, NameNode error
//! messages); a newline in one must not start a line of its own that a log reader takes for
//! an event ("log forgery", CWE-117). logfmt quotes a value that holds a space, `=`, `"`, `\`
//! or a control character and escapes those inside the quotes (`\n`, `\t`, `\"`, `\\`,
//! `\u001b`), as go-logfmt does; JSON escapes by construction (RFC 8259 §7). Values formatted
//! with `%` (Display) or `?` (Debug) and the message itself go through the same escaping.
//! Colour (the level only, logfmt only) is for terminals: [`super::init_logging`] turns it
//! on when stderr is one and `NO_COLOR` is not set.

use std::fmt::{self, Write as _};
use std::str::FromStr;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The log line format (`--log.format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// `ts=… level=info target=… msg="…" key=value` (logfmt).
    #[default]
    Logfmt,
    /// One JSON object per line: `ts`, `level`, `target`, `msg` and the event's fields.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "logfmt" => Ok(Self::Logfmt),
            "json" => Ok(Self::Json),
            other => Err(format!("unknown log format {other:?} (logfmt, json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Logfmt => "logfmt",
            Self::Json => "json",
        })
    }
}

/// A field value as recorded.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// An event's message and fields, in the order they were recorded.
#[derive(Debug, Default)]
struct Fields {
    message: String,
    pairs: Vec<(&'static str, Value)>,
}

impl Fields {
    fn push(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::Str(s)) => self.message = s,
            (name, value) => self.pairs.push((name, value)),
        }
    }

    /// The target of a record that came through the `log` crate (`log.target`), else the
    /// event's own; `log.*` bookkeeping fields are not printed.
    fn target<'a>(&'a self, own: &'a str) -> &'a str {
        self.pairs
            .iter()
            .find_map(|(k, v)| match (k, v) {
                (&"log.target", Value::Str(s)) => Some(s.as_str()),
                _ => None,
            })
            .unwrap_or(own)
    }

    fn printed(&self) -> impl Iterator<Item = &(&'static str, Value)> {
        self.pairs.iter().filter(|(k, _)| !k.starts_with("log."))
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` arrives here as a Display wrapper, the message as `format_args!`: both give
        // the raw text, escaped when written.
        self.push(field, Value::Str(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Str(value.to_owned()));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::U64(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Str(value.to_string()));
    }
}

/// Formats each event as one line of the chosen [`LogFormat`].
#[derive(Debug, Clone, Copy)]
pub struct LineFormat {
    format: LogFormat,
}

impl LineFormat {
    /// Lines in `format`.
    pub fn new(format: LogFormat) -> Self {
        Self { format }
    }
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut ts = String::new();
        SystemTime.format_time(&mut Writer::new(&mut ts))?;
        let meta = event.metadata();
        let target = fields.target(meta.target());
        let line = match self.format {
            LogFormat::Logfmt => logfmt_line(
                &ts,
                *meta.level(),
                target,
                &fields,
                writer.has_ansi_escapes(),
            ),
            LogFormat::Json => json_line(&ts, *meta.level(), target, &fields),
        };
        writer.write_str(&line)
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        Level::DEBUG => "debug",
        Level::TRACE => "trace",
    }
}

fn logfmt_line(ts: &str, level: Level, target: &str, fields: &Fields, ansi: bool) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("ts=");
    logfmt_value(&mut out, ts);
    out.push_str(" level=");
    let name = level_name(level);
    if ansi {
        let colour = match level {
            Level::ERROR => "31",
            Level::WARN => "33",
            Level::INFO => "32",
            Level::DEBUG => "34",
            Level::TRACE => "35",
        };
        let _ = write!(out, "\x1b[{colour}m{name}\x1b[0m");
    } else {
        out.push_str(name);
    }
    out.push_str(" target=");
    logfmt_value(&mut out, target);
    out.push_str(" msg=");
    logfmt_value(&mut out, &fields.message);
    for (key, value) in fields.printed() {
        out.push(' ');
        out.push_str(key);
        out.push('=');
        match value {
            Value::Str(s) => logfmt_value(&mut out, s),
            Value::I64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::U64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::F64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Bool(v) => {
                let _ = write!(out, "{v}");
            }
        }
    }
    out.push('\n');
    out
}

/// Characters written as escapes: control characters (C0, DEL, C1) and the Unicode line and
/// paragraph separators, which some viewers break lines at.
fn must_escape(c: char) -> bool {
    c.is_control() || c == '\u{2028}' || c == '\u{2029}'
}

/// Appends `v` as a logfmt value: bare when it holds nothing that delimits or breaks a line,
/// else quoted with `"`, `\` and control characters escaped.
pub fn logfmt_value(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && !v
            .chars()
            .any(|c| c == ' ' || c == '=' || c == '"' || c == '\\' || must_escape(c));
    if bare {
        out.push_str(v);
        return;
    }
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if must_escape(c) => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// One JSON object, keys in the order of the logfmt line (`ts`, `level`, `target`, `msg`,
/// then the fields as recorded); serde_json does the escaping.
fn json_line(ts: &str, level: Level, target: &str, fields: &Fields) -> String {
    let mut out = String::with_capacity(160);
    let mut pair = |key: &str, value: serde_json::Value| {
        out.push(if out.is_empty() { '{' } else { ',' });
        out.push_str(&serde_json::Value::from(key).to_string());
        out.push(':');
        out.push_str(&value.to_string());
    };
    pair("ts", ts.into());
    pair("level", level_name(level).into());
    pair("target", target.into());
    pair("msg", fields.message.as_str().into());
    for (key, value) in fields.printed() {
        let v = match value {
            Value::Str(s) => serde_json::Value::from(s.as_str()),
            Value::I64(v) => (*v).into(),
            Value::U64(v) => (*v).into(),
            // NaN and infinities have no JSON number: null, as serde_json writes them.
            Value::F64(v) => (*v).into(),
            Value::Bool(v) => (*v).into(),
        };
        pair(key, v);
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn capture(format: LogFormat, ansi: bool, f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let sink = buffer.clone();
        let subscriber = super::super::subscriber("debug", format, ansi, move || sink.clone());
        tracing::subscriber::with_default(subscriber, f);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    const FORGED: &str = "g\nts=2020-01-01T00:00:00Z level=error msg=\"forged\"";

    fn log_forgery_attempt() {
        let key = FORGED.to_owned();
        tracing::warn!(
            group = %key,
            quoted = ?key,
            plain = FORGED,
            count = 3u64,
            ok = true,
            "Webhook\r\nreceived \x1b[31m{}",
            "red"
        );
    }

    #[test]
    fn logfmt_keeps_one_line_and_escapes_every_field() {
        let out = capture(LogFormat::Logfmt, false, log_forgery_attempt);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\x1b'), "{out}");
        assert!(out.starts_with("ts="), "{out}");
        assert!(out.contains(" level=warn "), "{out}");
        assert!(
            out.contains(r#" msg="Webhook\r\nreceived \u001b[31mred""#),
            "{out}"
        );
        let escaped = r#""g\nts=2020-01-01T00:00:00Z level=error msg=\"forged\"""#;
        assert!(out.contains(&format!(" group={escaped}")), "{out}");
        assert!(out.contains(&format!(" plain={escaped}")), "{out}");
        assert!(out.contains(" count=3 ok=true"), "{out}");
    }

    #[test]
    fn json_lines_parse_back_to_the_values() {
        let out = capture(LogFormat::Json, true, log_forgery_attempt);
        assert_eq!(out.lines().count(), 1, "{out}");
        assert!(!out.contains('\x1b'), "JSON carries no colour: {out}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["group"], FORGED);
        assert_eq!(v["plain"], FORGED);
        assert_eq!(v["count"], 3);
        assert_eq!(v["level"], "warn");
        assert_eq!(v["msg"], "Webhook\r\nreceived \x1b[31mred");
        assert!(out.starts_with("{\"ts\":"), "ts first, as in logfmt: {out}");
    }

    #[test]
    fn colour_only_when_asked_for() {
        let out = capture(LogFormat::Logfmt, true, || tracing::info!("x"));
        assert!(out.contains("level=\x1b[32minfo\x1b[0m"), "{out}");
    }

    #[test]
    fn bare_and_quoted_values() {
        let v = |s: &str| {
            let mut out = String::new();
            logfmt_value(&mut out, s);
            out
        };
        assert_eq!(v("127.0.0.1:9878"), "127.0.0.1:9878");
        assert_eq!(v(""), "\"\"");
        assert_eq!(v("a b"), "\"a b\"");
        assert_eq!(v("a=b"), "\"a=b\"");
        assert_eq!(v("C:\\x"), "\"C:\\\\x\"");
        assert_eq!(v("x\u{2028}y"), "\"x\\u2028y\"");
        assert_eq!(v("ü"), "ü");
        assert_eq!("json".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("text".parse::<LogFormat>().is_err());
    }
}
