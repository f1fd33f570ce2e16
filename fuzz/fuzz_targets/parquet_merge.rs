#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    hive_smallfiles_fuzz::run(data, hive_smallfiles_agent::fuzzing::parquet_merge);
});
