#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    regops::fuzz_entry::state_file(data);
});
