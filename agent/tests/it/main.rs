//! The agent's integration tests, as one test binary: each module is one former test file.

mod alertmanager;
mod storm;
