//! Prometheus exposition shared by both binaries' `/metrics`: content negotiation between
//! OpenMetrics 1.0.0 and text format 0.0.4, and the conversion of prometheus-client's
//! OpenMetrics output into text format.

use std::fmt::Write as _;

/// Exposition format chosen for one scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics 1.0.0.
    OpenMetrics,
    /// Prometheus text 0.0.4.
    Text,
}

impl Format {
    /// The `Content-Type` header of this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Self::Text => "text/plain; version=0.0.4; charset=utf-8",
        }
    }

    /// Picks the format from an `Accept` header: OpenMetrics only when it is asked for with
    /// a quality above every plain-text alternative.
    pub fn negotiate(accept: Option<&str>) -> Self {
        let Some(accept) = accept else {
            return Self::Text;
        };
        let mut best_om = -1.0_f64;
        let mut best_text = -1.0_f64;
        for part in accept.split(',') {
            let mut fields = part.split(';').map(str::trim);
            let media = fields.next().unwrap_or("").to_ascii_lowercase();
            let mut q = 1.0;
            for f in fields {
                if let Some(v) = f.strip_prefix("q=") {
                    q = v.parse().unwrap_or(0.0);
                }
            }
            if media == "application/openmetrics-text" {
                best_om = best_om.max(q);
            } else if media == "text/plain" || media == "*/*" {
                best_text = best_text.max(q);
            }
        }
        if best_om > 0.0 && best_om > best_text {
            Self::OpenMetrics
        } else {
            Self::Text
        }
    }
}

/// Converts prometheus-client's OpenMetrics output into Prometheus text format 0.0.4.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut pending_help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            pending_help = Some(rest);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (sample_name, text_kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "info" => (format!("{name}_info"), "gauge"),
                "gauge" | "histogram" | "summary" => (name.to_owned(), kind),
                _ => (name.to_owned(), "untyped"),
            };
            if let Some(help) = pending_help.take() {
                let text = help.split_once(' ').map_or("", |(_, t)| t);
                // 0.0.4 HELP escapes only backslash and newline; OpenMetrics also escapes '"'.
                let _ = writeln!(out, "# HELP {sample_name} {}", text.replace("\\\"", "\""));
            }
            let _ = writeln!(out, "# TYPE {sample_name} {text_kind}");
            continue;
        }
        if let Some(help) = pending_help.take() {
            let _ = writeln!(out, "# HELP {help}");
        }
        if line.contains("_created{")
            || line
                .split(' ')
                .next()
                .is_some_and(|n| n.ends_with("_created"))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}
