//! `cargo fuzz run up_frame`: see `skerry_shared::fuzzing::up_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    skerry_shared::fuzzing::up_frame(data);
});
