//! # hive-smallfiles core
//!
//! What the exporter and the merge agent both use; neither binary depends on the other.
//!
//! * [`config`] — the configuration sections both share (`[cluster.metastore]`,
//!   `[cluster.storage]`), byte sizes, table globs, secrets from files or the environment.
//! * [`metastore`] — reads the Hive MetaStore's backing database (MySQL/MariaDB, PostgreSQL).
//! * [`fs`] — the filesystem clients (WebHDFS, local `file:`): a read trait
//!   ([`fs::FileSystem`]: list, stat, read) and, with the `write` feature, a write trait
//!   (`fs::write::FileSystemWrite`: create, rename, delete, permissions) that only the agent
//!   enables; MetaStore locations resolved to paths; the one factory of clients.
//! * [`walk`] — recursive listing of partition directories with a directory cache, and the
//!   streaming file counts of what is listed.
//! * [`kerberos`] — Kerberos logins (keytab or credential cache) with renewal, and GSSAPI
//!   client contexts for SASL GSSAPI and SPNEGO; its metrics.
//! * [`secret`] — a string that never prints.
//! * [`web`] — the exporter-toolkit style HTTP transport: TLS, basic auth, listener, serving.
//! * [`exposition`] — OpenMetrics / text format negotiation and conversion.
//! * [`service`] — logging, signals, the shutdown token, the runtime of a binary's `main`.

pub mod config;
pub mod exposition;
pub mod fs;
pub mod kerberos;
pub mod metastore;
pub mod secret;
pub mod service;
pub mod walk;
pub mod web;
