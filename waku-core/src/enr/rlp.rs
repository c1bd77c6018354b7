//! The canonical subset of RLP that node records use: byte strings and lists, every length in
//! its shortest form. Only reading borrows the input; writing appends to a caller's buffer.

use super::EnrError;

/// One RLP item read from a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Item<'a> {
    /// `true` for a list, `false` for a byte string.
    pub(crate) is_list: bool,
    /// The payload: the string's bytes, or the list's concatenated items.
    pub(crate) payload: &'a [u8],
    /// The whole item, header included.
    pub(crate) encoded: &'a [u8],
}

/// Reads a big-endian length of `n` bytes (1..=8) with no leading zero byte.
fn read_len(bytes: &[u8]) -> Result<usize, EnrError> {
    match bytes.first() {
        None => return Err(EnrError::Truncated),
        Some(0) => return Err(EnrError::NonCanonicalRlp),
        Some(_) => {}
    }
    let mut len: u64 = 0;
    for &b in bytes {
        len = len
            .checked_mul(256)
            .and_then(|l| l.checked_add(u64::from(b)))
            .ok_or(EnrError::Truncated)?;
    }
    let len = usize::try_from(len).map_err(|_| EnrError::Truncated)?;
    if len < 56 {
        // A long form for a length the short form can hold.
        return Err(EnrError::NonCanonicalRlp);
    }
    Ok(len)
}

/// Reads the first item of `input`; returns it and the rest of the input.
pub(crate) fn read_item(input: &[u8]) -> Result<(Item<'_>, &[u8]), EnrError> {
    let (&first, after) = input.split_first().ok_or(EnrError::Truncated)?;
    let (is_list, header_len, len) = match first {
        0x00..=0x7f => {
            let (encoded, rest) = input.split_at(1);
            let item = Item {
                is_list: false,
                payload: encoded,
                encoded,
            };
            return Ok((item, rest));
        }
        0x80..=0xb7 => (false, 1, usize::from(first - 0x80)),
        0xb8..=0xbf => {
            let n = usize::from(first - 0xb7);
            let len_bytes = after.get(..n).ok_or(EnrError::Truncated)?;
            (false, 1 + n, read_len(len_bytes)?)
        }
        0xc0..=0xf7 => (true, 1, usize::from(first - 0xc0)),
        0xf8..=0xff => {
            let n = usize::from(first - 0xf7);
            let len_bytes = after.get(..n).ok_or(EnrError::Truncated)?;
            (true, 1 + n, read_len(len_bytes)?)
        }
    };
    let end = header_len.checked_add(len).ok_or(EnrError::Truncated)?;
    let encoded = input.get(..end).ok_or(EnrError::Truncated)?;
    let payload = encoded.get(header_len..).ok_or(EnrError::Truncated)?;
    if !is_list && len == 1 && payload.first().is_some_and(|&b| b < 0x80) {
        // A single byte below 0x80 is its own encoding.
        return Err(EnrError::NonCanonicalRlp);
    }
    let rest = input.get(end..).ok_or(EnrError::Truncated)?;
    Ok((
        Item {
            is_list,
            payload,
            encoded,
        },
        rest,
    ))
}

/// Appends the header of a string (`list == false`) or list of `len` payload bytes.
pub(crate) fn write_header(out: &mut Vec<u8>, list: bool, len: usize) {
    let (short, long) = if list { (0xc0u8, 0xf7u8) } else { (0x80, 0xb7) };
    if len < 56 {
        // `len < 56` fits in a byte.
        out.push(short + len as u8);
    } else {
        let be = (len as u64).to_be_bytes();
        let skip = be.iter().take_while(|&&b| b == 0).count();
        let digits = be.get(skip..).unwrap_or_default();
        // At most 8 length bytes.
        out.push(long + digits.len() as u8);
        out.extend_from_slice(digits);
    }
}

/// Appends `bytes` as an RLP byte string.
pub(crate) fn write_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    if let [b] = bytes
        && *b < 0x80
    {
        out.push(*b);
        return;
    }
    write_header(out, false, bytes.len());
    out.extend_from_slice(bytes);
}

/// The big-endian bytes of `v` without leading zeros (empty for zero), as RLP integers are.
pub(crate) fn uint_bytes(v: u64) -> Vec<u8> {
    let be = v.to_be_bytes();
    let skip = be.iter().take_while(|&&b| b == 0).count();
    be.get(skip..).unwrap_or_default().to_vec()
}

/// Appends `v` as an RLP integer.
pub(crate) fn write_uint(out: &mut Vec<u8>, v: u64) {
    write_bytes(out, &uint_bytes(v));
}

/// Reads an RLP integer payload of at most 8 bytes with no leading zero.
pub(crate) fn parse_uint(payload: &[u8]) -> Option<u64> {
    if payload.len() > 8 || payload.first() == Some(&0) {
        return None;
    }
    Some(
        payload
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        for len in [0usize, 1, 55, 56, 255, 256, 300, 70_000] {
            for list in [false, true] {
                let mut out = Vec::new();
                write_header(&mut out, list, len);
                out.extend(std::iter::repeat_n(0x80u8, len));
                let (item, rest) = read_item(&out).unwrap();
                assert!(rest.is_empty());
                assert_eq!(item.is_list, list);
                assert_eq!(item.payload.len(), len);
            }
        }
    }

    #[test]
    fn non_canonical_forms_are_refused() {
        // 0x81 0x05: a single small byte wrapped in a header.
        assert_eq!(read_item(&[0x81, 0x05]), Err(EnrError::NonCanonicalRlp));
        // Long form for a short length.
        let mut v = vec![0xb8, 0x02, 1, 2];
        assert_eq!(read_item(&v), Err(EnrError::NonCanonicalRlp));
        // Leading zero in a long length.
        v = vec![0xb9, 0x00, 0x40];
        v.extend([0x80; 0x40]);
        assert_eq!(read_item(&v), Err(EnrError::NonCanonicalRlp));
        assert_eq!(read_item(&[0x83, 1, 2]), Err(EnrError::Truncated));
        assert_eq!(parse_uint(&[0, 1]), None);
        assert_eq!(parse_uint(&[]), Some(0));
    }
}
