//! `cargo fuzz run log_batch`: see `skerry_shared::fuzzing::log_batch`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    skerry_shared::fuzzing::log_batch(data);
});
