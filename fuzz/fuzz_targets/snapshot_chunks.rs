//! `cargo fuzz run snapshot_chunks`: see `skerry_shared::fuzzing::snapshot_chunks`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    skerry_shared::fuzzing::snapshot_chunks(data);
});
