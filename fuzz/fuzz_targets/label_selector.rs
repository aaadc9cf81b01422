#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    kube_test_server::selector::fuzz_entry(data);
});
