//! Secrets (passwords, tokens) read from files or the environment, never printed, and the
//! start-up check of secret files' permissions ([`check_file_permissions`], counted by
//! [`metrics`]).

use std::fmt;

mod permissions;

pub use permissions::{
    InsecureFile, SecretKind, check_file_permissions, insecure_counts, readable_by_others,
};

/// A secret string. `Debug` and `Display` print `***`, so secrets never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The gauge of insecure secret files: `<prefix>_secret_files_insecure{kind}`.
pub mod metrics {
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::MetricType;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::registry::Registry;

    /// Registers `secret_files_insecure{kind="password|token|private_key|keytab"}`: secret
    /// files found readable by every user since start-up (see
    /// [`super::check_file_permissions`]). Call it with the binary's prefixed registry.
    pub fn register(registry: &mut Registry) {
        registry.register_collector(Box::new(InsecureFiles));
    }

    #[derive(Debug)]
    struct InsecureFiles;

    impl Collector for InsecureFiles {
        fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor(
                "secret_files_insecure",
                "Secret files (passwords, tokens, private keys, keytabs) readable by every user of the host, found at start-up",
                None,
                MetricType::Gauge,
            )?;
            for (kind, n) in super::insecure_counts() {
                #[allow(clippy::cast_possible_wrap)]
                ConstGauge::new(n as i64)
                    .encode(family.encode_family(&[("kind", kind.label())])?)?;
            }
            Ok(())
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn the_gauge_has_one_series_per_kind() {
            let mut registry = Registry::with_prefix("hive_exporter");
            register(&mut registry);
            let mut text = String::new();
            prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
            for kind in ["password", "token", "private_key", "keytab"] {
                assert!(
                    text.contains(&format!(
                        "hive_exporter_secret_files_insecure{{kind=\"{kind}\"}} "
                    )),
                    "{text}"
                );
            }
        }
    }
}
