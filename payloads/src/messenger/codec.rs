//! A tiny length-prefixed binary codec for the Messenger's storage records.
//!
//! Integers are big-endian; byte strings are `u32_be(len) ‖ bytes`. Every record starts with a
//! version byte ([`RECORD_VERSION`]) so later versions can read earlier ones. Readers never
//! panic and never allocate more than the input holds.

/// The version byte every record starts with.
pub(crate) const RECORD_VERSION: u8 = 1;

#[derive(Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        let mut w = Writer::default();
        w.u8(RECORD_VERSION);
        w
    }

    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        let len = u32::try_from(v.len()).unwrap_or(u32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf
            .extend_from_slice(v.get(..len as usize).unwrap_or(v));
        self
    }

    pub(crate) fn finish(&mut self) -> Vec<u8> {
        core::mem::take(&mut self.buf)
    }
}

pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader positioned after the version byte, or `None` for an unknown version.
    pub(crate) fn new(bytes: &'a [u8]) -> Option<Self> {
        let (&version, rest) = bytes.split_first()?;
        (version == RECORD_VERSION).then_some(Reader { rest })
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (&v, rest) = self.rest.split_first()?;
        self.rest = rest;
        Some(v)
    }

    pub(crate) fn u64(&mut self) -> Option<u64> {
        let (v, rest) = self.rest.split_first_chunk::<8>()?;
        self.rest = rest;
        Some(u64::from_be_bytes(*v))
    }

    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let (len, rest) = self.rest.split_first_chunk::<4>()?;
        let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
        let (v, rest) = rest.split_at_checked(len)?;
        self.rest = rest;
        Some(v)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let bytes = Writer::new().u8(7).u64(1 << 40).bytes(b"abc").finish();
        let mut r = Reader::new(&bytes).unwrap();
        assert_eq!(r.u8(), Some(7));
        assert_eq!(r.u64(), Some(1 << 40));
        assert_eq!(r.bytes(), Some(&b"abc"[..]));
        assert!(r.is_empty());
        for cut in 0..bytes.len() {
            let Some(mut r) = Reader::new(&bytes[..cut]) else {
                continue;
            };
            let ok = r.u8().is_some() && r.u64().is_some() && r.bytes().is_some();
            assert!(!ok);
        }
        assert!(Reader::new(&[2]).is_none());
    }
}
