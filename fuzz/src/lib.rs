//! What the fuzz targets share: running an entry point so that a panic the project catches
//! on purpose (parquet-rs panics on some corrupt files; `native::format::catch_panics` turns
//! that into an error) is not a crash, while any other panic, caught or not, is.

use std::cell::RefCell;
use std::sync::Once;

thread_local! {
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Whether a panic at `file` is one a dependency raised (a crate from the registry): the
/// project catches those on purpose. A panic anywhere else (the project's code, or the standard
/// library on its behalf, such as an overflowing `sum`) is a bug even when caught.
fn in_dependency(file: &str) -> bool {
    file.contains("/registry/src/") || file.contains("/git/checkouts/")
}

/// Runs `f` on `data`; aborts (a crash for libFuzzer) on a panic in the project's code or one
/// that escapes `f`.
pub fn run(data: &[u8], f: impl FnOnce(&[u8])) {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // libfuzzer-sys's hook aborts on every panic, even one caught on purpose.
        std::panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let message = format!("panicked at {location}: {}", payload(info));
            if !info.location().is_some_and(|l| in_dependency(l.file())) {
                eprintln!("{message}\n{}", std::backtrace::Backtrace::force_capture());
                std::process::abort();
            }
            LAST_PANIC.with(|p| *p.borrow_mut() = message);
        }));
    });
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(data))).is_err() {
        LAST_PANIC.with(|p| eprintln!("escaped: {}", p.borrow()));
        std::process::abort();
    }
}

fn payload(info: &std::panic::PanicHookInfo<'_>) -> String {
    let p = info.payload();
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
