#![no_main]
libfuzzer_sys::fuzz_target!(
    init: chorus_fuzz::report_caught_panics(),
    |data: &[u8]| chorus_fuzz::blocks::room_receive_blocks(data)
);
