//! The text encodings a node record meets: URL-safe base64 without padding (the `enr:` form),
//! base58btc (libp2p peer ids) and lower-case base32 (onion addresses).

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const B58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const B32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Encodes `bytes` as URL-safe base64 without padding.
pub(crate) fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut buf = [0u8; 3];
        for (d, s) in buf.iter_mut().zip(chunk) {
            *d = *s;
        }
        let n = (u32::from(buf[0]) << 16) | (u32::from(buf[1]) << 8) | u32::from(buf[2]);
        for i in 0..=chunk.len() {
            let idx = (n >> (18 - 6 * i)) & 63;
            out.push(char::from(B64.get(idx as usize).copied().unwrap_or(b'A')));
        }
    }
    out
}

fn b64_value(c: u8) -> Option<u32> {
    B64.iter().position(|&x| x == c).map(|p| p as u32)
}

/// Decodes URL-safe base64 without padding. Refuses padding, other alphabets, a dangling
/// character and non-zero unused bits, so each byte string has exactly one text form.
pub(crate) fn base64url_decode(text: &[u8]) -> Option<Vec<u8>> {
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    for chunk in text.chunks(4) {
        let mut n = 0u32;
        for &c in chunk {
            n = (n << 6) | b64_value(c)?;
        }
        // Left-align to 24 bits.
        n <<= 6 * (4 - chunk.len() as u32);
        let bytes = n.to_be_bytes();
        let keep = chunk.len() - 1;
        let (used, unused) = bytes.get(1..).unwrap_or_default().split_at(keep);
        if unused.iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(used);
    }
    Some(out)
}

/// Encodes `bytes` in base58btc (Bitcoin alphabet); each leading zero byte becomes a `1`.
pub(crate) fn base58btc_encode(bytes: &[u8]) -> String {
    let zeros = bytes.iter().take_while(|&&b| b == 0).count();
    // Little-endian base-58 digits.
    let mut digits: Vec<u8> = Vec::with_capacity(bytes.len() * 138 / 100 + 1);
    for &b in bytes.iter().skip(zeros) {
        let mut carry = u32::from(b);
        for d in digits.iter_mut() {
            carry += u32::from(*d) << 8;
            *d = (carry % 58) as u8;
            carry /= 58;
        }
        while carry > 0 {
            digits.push((carry % 58) as u8);
            carry /= 58;
        }
    }
    let mut out = String::with_capacity(zeros + digits.len());
    out.extend(std::iter::repeat_n('1', zeros));
    for &d in digits.iter().rev() {
        out.push(char::from(B58.get(usize::from(d)).copied().unwrap_or(b'1')));
    }
    out
}

/// Decodes base58btc; `None` on a character outside the alphabet or output over `max` bytes.
pub(crate) fn base58btc_decode(text: &str, max: usize) -> Option<Vec<u8>> {
    let zeros = text.bytes().take_while(|&c| c == b'1').count();
    // Little-endian base-256 digits.
    let mut bytes: Vec<u8> = Vec::new();
    for c in text.bytes().skip(zeros) {
        let mut carry = B58.iter().position(|&x| x == c)? as u32;
        for b in bytes.iter_mut() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xff) as u8;
            carry >>= 8;
        }
        while carry > 0 {
            bytes.push((carry & 0xff) as u8);
            carry >>= 8;
        }
        if zeros + bytes.len() > max {
            return None;
        }
    }
    let mut out = vec![0u8; zeros];
    out.extend(bytes.iter().rev());
    Some(out)
}

/// Decodes lower-case RFC 4648 base32 without padding; unused bits must be zero.
pub(crate) fn base32_lower_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for c in text.bytes() {
        acc = (acc << 5) | B32.iter().position(|&x| x == c)? as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    (bits < 5 && acc == 0).then_some(out)
}

/// Encodes `bytes` as lower-case RFC 4648 base32 without padding.
pub(crate) fn base32_lower_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            let idx = (acc >> bits) & 31;
            out.push(char::from(B32.get(idx as usize).copied().unwrap_or(b'a')));
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        let idx = (acc << (5 - bits)) & 31;
        out.push(char::from(B32.get(idx as usize).copied().unwrap_or(b'a')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_round_trips_and_is_strict() {
        for len in 0..20usize {
            let bytes: Vec<u8> = (0..len as u8).map(|b| b.wrapping_mul(37)).collect();
            let text = base64url_encode(&bytes);
            assert!(!text.contains('='));
            assert_eq!(base64url_decode(text.as_bytes()).unwrap(), bytes);
        }
        // RFC 4648 vectors, unpadded.
        assert_eq!(base64url_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url_encode(b"fo"), "Zm8");
        assert_eq!(base64url_encode(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url_decode(b"Zm8="), None);
        assert_eq!(base64url_decode(b"Zm9"), None); // unused bits set
        assert_eq!(base64url_decode(b"Z"), None);
        assert_eq!(base64url_decode(b"Zm+v"), None);
    }

    #[test]
    fn base58_and_base32_known_values() {
        assert_eq!(base58btc_encode(b"hello world"), "StV1DL6CwTryKyV");
        assert_eq!(base58btc_encode(&[0, 0, 1]), "112");
        assert_eq!(base58btc_encode(&[]), "");
        assert_eq!(base32_lower_encode(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_lower_encode(b"f"), "my");
        assert_eq!(base32_lower_decode("mzxw6ytboi").unwrap(), b"foobar");
        assert_eq!(base32_lower_decode("mz"), None);
        assert_eq!(
            base58btc_decode("StV1DL6CwTryKyV", 64).unwrap(),
            b"hello world"
        );
        assert_eq!(base58btc_decode("112", 64).unwrap(), [0, 0, 1]);
        assert_eq!(base58btc_decode("0", 64), None);
        assert_eq!(base58btc_decode("zzzzzz", 2), None);
    }
}
