#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::room::room_receive_raw(data));
