//! Tests that cannot run because a service is missing: they say so and are counted, never
//! reported as a silent pass.
//!
//! * `HSF_SKIP=spark` (a comma-separated list of service names) skips the tests of those
//!   services on purpose; today only `spark` (Spark's Thrift Server, slow to install and
//!   start) is optional this way. A service that is wanted but cannot be started skips its
//!   tests the same way, with the reason.
//! * A skipped test prints `SKIPPED: <test>: <why>` on standard error and appends that line to
//!   the file named by `HSF_SKIPPED_FILE` (tests/run.sh sets it and prints the count at the
//!   end, since test runners hide the output of passing tests).
//! * With `CI=true` a skip is a failure: CI runs everything.

use std::io::Write as _;

/// Environment variable listing the services whose tests are skipped on purpose.
pub const SKIP_ENV: &str = "HSF_SKIP";
/// Environment variable naming the file every skip is appended to.
pub const SKIPPED_FILE_ENV: &str = "HSF_SKIPPED_FILE";

/// Whether `HSF_SKIP` names `service`.
pub fn skipped_on_purpose(service: &str) -> bool {
    std::env::var(SKIP_ENV)
        .is_ok_and(|v| v.split(',').any(|s| s.trim().eq_ignore_ascii_case(service)))
}

/// Whether this is a CI run (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// The running test's name (libtest names the test's thread after it).
pub fn current_test() -> String {
    std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned()
}

/// Records that the current test does not run because of `why`: prints `SKIPPED: …`,
/// appends it to `$HSF_SKIPPED_FILE`, and panics when `CI=true`. The caller returns right
/// after (see [`require!`](crate::require)).
pub fn skip(why: &str) {
    let line = format!("SKIPPED: {}: {why}", current_test());
    eprintln!("{line}");
    if let Some(path) = std::env::var_os(SKIPPED_FILE_ENV) {
        // One write of one line with O_APPEND: concurrent test processes do not interleave.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{line}\n").as_bytes()));
        if let Err(e) = written {
            eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
    assert!(!in_ci(), "{line} (CI=true: a skipped test fails)");
}

/// Skips the rest of the test (see [`skip`]) when `$check` — an expression giving
/// `Option<String>`, the reason a service is unavailable — is `Some`.
///
/// ```ignore
/// hive_smallfiles_tests::require!(spark::unavailable());
/// ```
#[macro_export]
macro_rules! require {
    ($check:expr) => {
        if let Some(why) = $check {
            $crate::skip::skip(&why);
            return;
        }
    };
}
