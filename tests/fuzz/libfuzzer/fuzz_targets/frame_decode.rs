#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| chorus_fuzz::frame::frame_decode(data));
