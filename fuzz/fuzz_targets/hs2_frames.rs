#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hive_smallfiles_fuzz::run(data, |d| {
        hive_smallfiles_agent::fuzzing::hs2_frames(d);
    });
});
