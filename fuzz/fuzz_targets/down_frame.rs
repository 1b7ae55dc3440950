//! `cargo fuzz run down_frame`: see `skerry_shared::fuzzing::down_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    skerry_shared::fuzzing::down_frame(data);
});
