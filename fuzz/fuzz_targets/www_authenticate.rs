#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    regops::fuzz_entry::www_authenticate(data);
});
