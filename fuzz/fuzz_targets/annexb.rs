//! Splitting any bytes into NAL units never panics, yields only non-empty units inside the input,
//! and keyframe detection agrees with the units found.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut total = 0;
    for nal in hearth_codec::annexb::nal_units(data) {
        assert!(!nal.is_empty());
        total += nal.len();
    }
    assert!(total <= data.len());
    let idr = hearth_codec::annexb::nal_units(data).any(|n| n[0] & 0x1f == 5);
    assert_eq!(idr, hearth_codec::is_keyframe(data));
});
