//! Contact verification material: what two people compare out of band to check that a chat key
//! belongs to whom they think (the design article's step 3).
//!
//! # Three-word pseudonym
//!
//! [`pseudonym`] turns a chat key into three capitalised words, e.g. `"Dako Sife Ruto"`, easy to
//! read aloud. The words come from a list of 4096 pseudo-words that is generated, not a
//! dictionary: 64 syllables are every pairing of the 16 consonants `b d f g h k l m n p r s t v
//! w z` with the 4 vowels `a e i o` (consonant-major order: `ba be bi bo da …`), and word `i`
//! (0..4096) is syllable `i / 64` followed by syllable `i % 64` ([`word`]). The three indices are
//! the first 36 bits, as three big-endian 12-bit numbers, of
//! `Keccak-256("status-rs pseudonym v1" ‖ chat key)`.
//!
//! A pseudonym is a memorable label, not a proof: 36 bits can be matched by grinding keys. Use
//! the safety number to verify.
//!
//! # Safety number
//!
//! [`safety_number`] derives 30 decimal digits from a chat key, shown as six groups of five.
//! The digest is iterated SHA-512 as in Signal's fingerprints: `h = SHA-512(0x0000 ‖ "status-rs
//! safety number v1" ‖ key)`, then [`SAFETY_ITERATIONS`] − 1 times `h = SHA-512(h ‖ key)`; each
//! group of five digits is a 5-byte big-endian chunk of `h` modulo 100000. Grinding a key whose
//! number matches another's costs about 2^100 tries times the iterations.
//! [`pair_safety_number`] joins the two parties' numbers, the smaller first, so both see the same
//! 60 digits for their conversation.

use sha2::{Digest, Sha512};
use x3dh::PublicIdentity;

use crate::id::keccak256;

/// Iterations of SHA-512 in a safety number (Signal's fingerprint uses the same count).
pub const SAFETY_ITERATIONS: usize = 5200;

/// Groups of five digits in one party's safety number.
pub const SAFETY_GROUPS: usize = 6;

const CONSONANTS: [char; 16] = [
    'b', 'd', 'f', 'g', 'h', 'k', 'l', 'm', 'n', 'p', 'r', 's', 't', 'v', 'w', 'z',
];
const VOWELS: [char; 4] = ['a', 'e', 'i', 'o'];

/// Number of words in the generated list.
pub const WORD_COUNT: usize = 4096;

fn syllable(i: usize, out: &mut String) {
    let c = CONSONANTS
        .get((i / VOWELS.len()) % CONSONANTS.len())
        .copied()
        .unwrap_or('b');
    let v = VOWELS.get(i % VOWELS.len()).copied().unwrap_or('a');
    out.push(c);
    out.push(v);
}

/// Word `index` of the generated list (taken modulo [`WORD_COUNT`]), lowercase.
pub fn word(index: usize) -> String {
    let i = index % WORD_COUNT;
    let mut out = String::with_capacity(4);
    syllable(i / 64, &mut out);
    syllable(i % 64, &mut out);
    out
}

fn capitalised(w: &str) -> String {
    let mut chars = w.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// The three-word pseudonym of a chat key (see the module docs).
pub fn pseudonym(key: &PublicIdentity) -> String {
    let h = keccak256(&[b"status-rs pseudonym v1", key.ed25519_bytes()]);
    let bits = h
        .iter()
        .take(5)
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    // The first 36 bits of the 40 read.
    let bits = bits >> 4;
    let words: Vec<String> = (0..3)
        .map(|n| {
            let index = (bits >> (24 - 12 * n)) & 0xfff;
            capitalised(&word(index as usize))
        })
        .collect();
    words.join(" ")
}

fn safety_digits(key: &PublicIdentity) -> String {
    let mut h = Sha512::new();
    h.update([0u8, 0u8]);
    h.update(b"status-rs safety number v1");
    h.update(key.ed25519_bytes());
    let mut digest = h.finalize();
    for _ in 1..SAFETY_ITERATIONS {
        let mut h = Sha512::new();
        h.update(digest);
        h.update(key.ed25519_bytes());
        digest = h.finalize();
    }
    let groups: Vec<String> = digest
        .chunks(5)
        .take(SAFETY_GROUPS)
        .map(|chunk| {
            let n = chunk.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
            format!("{:05}", n % 100_000)
        })
        .collect();
    groups.join(" ")
}

/// One chat key's safety number: 30 digits in six groups of five.
pub fn safety_number(key: &PublicIdentity) -> String {
    safety_digits(key)
}

/// The safety number of a conversation: both parties' numbers, the smaller first, so that both
/// sides show the same 60 digits.
pub fn pair_safety_number(a: &PublicIdentity, b: &PublicIdentity) -> String {
    let (x, y) = (safety_digits(a), safety_digits(b));
    if x <= y {
        format!("{x} {y}")
    } else {
        format!("{y} {x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use x3dh::IdentityKeyPair;

    fn key(n: u8) -> PublicIdentity {
        *IdentityKeyPair::from_seed(&[n; 32]).public()
    }

    #[test]
    fn the_word_list_has_4096_distinct_words() {
        let words: BTreeSet<String> = (0..WORD_COUNT).map(word).collect();
        assert_eq!(words.len(), WORD_COUNT);
        assert_eq!(word(0), "baba");
        assert_eq!(word(1), "babe");
        assert_eq!(word(64), "beba");
        assert_eq!(word(WORD_COUNT - 1), "zozo");
        assert!(words.iter().all(|w| w.len() == 4));
    }

    #[test]
    fn pseudonyms_are_deterministic_and_spread() {
        let a = pseudonym(&key(1));
        assert_eq!(a, pseudonym(&key(1)));
        assert_eq!(a.split(' ').count(), 3);
        assert!(
            a.split(' ')
                .all(|w| w.chars().next().unwrap().is_ascii_uppercase())
        );
        let all: BTreeSet<String> = (0..200).map(|n| pseudonym(&key(n))).collect();
        assert_eq!(all.len(), 200);
    }

    #[test]
    fn safety_numbers() {
        let (a, b) = (key(1), key(2));
        let sa = safety_number(&a);
        assert_eq!(sa.len(), 6 * 5 + 5);
        assert!(
            sa.split(' ')
                .all(|g| g.len() == 5 && g.chars().all(|c| c.is_ascii_digit()))
        );
        assert_eq!(sa, safety_number(&a));
        assert_ne!(sa, safety_number(&b));
        assert_eq!(pair_safety_number(&a, &b), pair_safety_number(&b, &a));
        assert_eq!(pair_safety_number(&a, &b).len(), 12 * 5 + 11);
    }
}
