//! `cargo fuzz run manifest`: see `skerry_shared::fuzzing::manifest`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    skerry_shared::fuzzing::manifest(data);
});
