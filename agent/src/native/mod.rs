//! The native executor and the crash-safe commit protocol.
//!
//! Owns: merging a partition's files without a SQL engine ([`writer`],
//! [`format`](mod@format)), the commit protocol every staged merge goes through — native or
//! written by the engine into the staging directory ([`commit`]) — its on-disk layout
//! ([`layout`]), manifest and recovery decisions ([`manifest`]), the partition lock
//! ([`lock`]) and the fail points the crash tests stop the process at ([`failpoint`],
//! compiled only with the cargo feature `failpoints`).

pub mod commit;
pub mod error;
pub mod failpoint;
pub mod format;
pub mod layout;
pub mod lock;
pub mod manifest;
pub mod switch;
pub mod writer;

pub use commit::{
    CommitSettings, Committer, Locations, MergeReport, Recovered, StageWriter, Staged,
    SwitchTarget, Target,
};
pub use error::NativeError;
