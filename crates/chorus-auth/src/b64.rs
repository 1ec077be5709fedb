//! Minimal strict base64url (RFC 4648 §5, no padding) decoder, as used by JWS
//! compact serialization.

fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        b'_' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}

/// Decode unpadded base64url. Rejects padding, characters outside the URL-safe
/// alphabet, impossible lengths and non-zero trailing bits (so every byte string
/// has exactly one accepted encoding).
pub(crate) fn decode(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if bytes.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits: u32 = 0;
    for &c in bytes {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return None;
    }
    Some(out)
}

#[cfg(test)]
pub(crate) fn encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=n {
            out.push(ALPHABET[((v >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_all_lengths() {
        let data: Vec<u8> = (0..=255u8).collect();
        for len in 0..40 {
            let enc = encode(&data[..len]);
            assert!(!enc.contains('='));
            assert_eq!(decode(&enc).as_deref(), Some(&data[..len]));
        }
    }

    #[test]
    fn known_vectors() {
        assert_eq!(encode(b"{\"alg\":\"none\"}"), "eyJhbGciOiJub25lIn0");
        assert_eq!(
            decode("eyJhbGciOiJub25lIn0").unwrap(),
            b"{\"alg\":\"none\"}"
        );
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
    }

    #[test]
    fn rejects_invalid() {
        assert_eq!(decode("A"), None); // impossible length
        assert_eq!(decode("AA=="), None); // padding
        assert_eq!(decode("+/8"), None); // standard alphabet
        assert_eq!(decode("AB"), None); // non-zero trailing bits
        assert_eq!(decode("a b"), None);
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }
}
