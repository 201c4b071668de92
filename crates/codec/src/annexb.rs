//! Annex-B byte streams: NAL units separated by start codes (`00 00 01` or `00 00 00 01`).

/// The NAL units of an Annex-B buffer, without start codes. Never panics on any input.
pub fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut pos = find_start(data, 0).map(|(_, end)| end);
    std::iter::from_fn(move || {
        let start = pos?;
        match find_start(data, start) {
            Some((next_begin, next_end)) => {
                pos = Some(next_end);
                let mut end = next_begin;
                // A 4-byte start code's leading zero belongs to the start code, not the NAL.
                while end > start && data[end - 1] == 0 {
                    end -= 1;
                }
                Some(&data[start..end])
            }
            None => {
                pos = None;
                Some(&data[start..])
            }
        }
    })
    .filter(|nal| !nal.is_empty())
}

/// Finds the next `00 00 01` at or after `from`: (index of its first zero, index after the 1).
fn find_start(data: &[u8], from: usize) -> Option<(usize, usize)> {
    let mut i = from;
    while i + 3 <= data.len() {
        if data[i + 2] > 1 {
            i += 3;
        } else if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            return Some((i, i + 3));
        } else {
            i += 1;
        }
    }
    None
}

/// Append `nal` to `out` with a 4-byte start code.
pub fn push_nal(out: &mut Vec<u8>, nal: &[u8]) {
    out.extend_from_slice(&[0, 0, 0, 1]);
    out.extend_from_slice(nal);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn splits_mixed_start_codes() {
        let data = [0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65, 4, 5, 0];
        let nals: Vec<&[u8]> = nal_units(&data).collect();
        assert_eq!(nals, vec![&[0x67, 1, 2][..], &[0x68, 3][..], &[0x65, 4, 5, 0][..]]);
        assert_eq!(nal_units(&[]).count(), 0);
        assert_eq!(nal_units(&[1, 2, 3]).count(), 0);
    }

    proptest! {
        #[test]
        fn round_trips_nals_without_start_code_emulation(nals in proptest::collection::vec(proptest::collection::vec(2u8..=255, 1..50), 0..10)) {
            let mut buf = Vec::new();
            for n in &nals {
                push_nal(&mut buf, n);
            }
            let back: Vec<Vec<u8>> = nal_units(&buf).map(<[u8]>::to_vec).collect();
            prop_assert_eq!(back, nals);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(0u8..4, 0..200)) {
            let _ = nal_units(&data).count();
        }
    }
}
