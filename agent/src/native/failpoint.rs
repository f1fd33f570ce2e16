//! Fail points for crash tests of the commit protocol.
//!
//! A fail point is a named step of the protocol, marked in the code with
//! `fail_point!("<name>");`. Every name, in protocol order: `after_lock`, `after_stage`,
//! `after_verify`, `after_manifest`, `after_relist`, `between_renames`, `after_swap`,
//! `after_reconcile`, `after_commit`, `rollback_after_first_rename`, `rollback_after_swap`;
//! switch commits: `after_new_dir`, `before_switch`, `after_switch` (then `after_reconcile`,
//! `after_commit`), and their rollback's `rollback_after_restore`, `rollback_after_switch`.
//!
//! **Compiled only with the cargo feature `failpoints`.** Without it (every production build)
//! the macro expands to nothing and this module holds nothing else: no environment lookup, no
//! code, no way to stop the agent from outside. The crash tests enable it by depending on the
//! agent with the feature (`hive-smallfiles-agent = { path = "../agent", features =
//! ["failpoints"] }` in `tests/Cargo.toml`); feature unification then builds the agent binary
//! the tests start (`cargo build --workspace --bins`) with fail points too. By hand:
//! `cargo build -p hive-smallfiles-agent --features failpoints`.
//!
//! Triggered at run time, in a build with the feature: `HIVE_SMALLFILES_FAILPOINT=<name>`
//! makes the process stop at the named step: it writes the name to standard error as
//! `failpoint reached: <name>`, creates the file named by `HIVE_SMALLFILES_FAILPOINT_MARKER`
//! (when set) and then waits forever, so a test can kill it with `SIGKILL` at exactly that
//! instant — or, when `HIVE_SMALLFILES_FAILPOINT_RESUME` names a file, until that file exists,
//! so a test can act in exactly that window (add a file to the partition, say) and let the
//! merge go on. With the feature but the variable unset, a fail point costs one environment
//! lookup per step of a merge.

/// Stops at the named step when it is the active fail point (feature `failpoints`); an
/// `.await` inside an `async` context.
#[cfg(feature = "failpoints")]
macro_rules! fail_point {
    ($name:literal) => {
        $crate::native::failpoint::hit($name).await
    };
}

/// Nothing: fail points are compiled only with the feature `failpoints`.
#[cfg(not(feature = "failpoints"))]
macro_rules! fail_point {
    ($name:literal) => {};
}

pub(crate) use fail_point;

#[cfg(feature = "failpoints")]
pub use self::armed::*;

#[cfg(feature = "failpoints")]
mod armed {
    use std::time::Duration;

    /// Every fail point, in protocol order.
    pub const NAMES: &[&str] = &[
        "after_lock",
        "after_stage",
        "after_verify",
        "after_manifest",
        "after_relist",
        "between_renames",
        "after_swap",
        "after_reconcile",
        "after_commit",
        "rollback_after_first_rename",
        "rollback_after_swap",
        "after_new_dir",
        "before_switch",
        "after_switch",
        "rollback_after_restore",
        "rollback_after_switch",
    ];

    /// Environment variable naming the active fail point.
    pub const ENV: &str = "HIVE_SMALLFILES_FAILPOINT";
    /// Environment variable naming a marker file created when the fail point is reached.
    pub const MARKER_ENV: &str = "HIVE_SMALLFILES_FAILPOINT_MARKER";
    /// Environment variable naming a file whose appearance lets the process go on.
    pub const RESUME_ENV: &str = "HIVE_SMALLFILES_FAILPOINT_RESUME";

    /// Stops here (forever, or until the resume file exists) when `name` is the active fail
    /// point. Called through the `fail_point!` macro.
    pub async fn hit(name: &'static str) {
        debug_assert!(NAMES.contains(&name), "unknown fail point {name}");
        if std::env::var(ENV).ok().as_deref() != Some(name) {
            return;
        }
        eprintln!("failpoint reached: {name}");
        if let Ok(marker) = std::env::var(MARKER_ENV) {
            let _ = std::fs::write(marker, name);
        }
        let resume = std::env::var(RESUME_ENV).ok();
        loop {
            if let Some(r) = &resume {
                if std::path::Path::new(r).exists() {
                    eprintln!("failpoint resumed: {name}");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
