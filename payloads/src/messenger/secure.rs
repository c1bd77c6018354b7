//! The secure-transport state the Messenger keeps per contact: Double Ratchet sessions, the X3DH
//! header to repeat until the peer answers, and what waits for a session.

use std::collections::VecDeque;

use rand_core::CryptoRng;
use ratchet::Session;
use x3dh::{InitialHeader, InstallationId};

use super::codec::{Reader, Writer};

/// Most sessions kept per contact. Normally one; two appear when both sides start a session at
/// the same time, and a third when a contact restores an account. The oldest is dropped.
pub const MAX_SESSIONS_PER_CONTACT: usize = 3;

/// Most MVDS payloads held for a contact while no session can be made (their bundle is unknown).
/// MVDS retransmits anything dropped here, so this only bounds memory.
pub const MAX_OUTBOX_PER_CONTACT: usize = 64;

pub(crate) struct SessionEntry {
    pub(crate) session: Session,
    /// The X3DH header, repeated on every message until the session receives something.
    pub(crate) initial_header: Option<InitialHeader>,
    /// The peer's installation the session talks to.
    pub(crate) their_installation: Option<InstallationId>,
    /// Whether the session decrypted a message.
    pub(crate) received: bool,
}

#[derive(Default)]
pub(crate) struct Conversation {
    /// Front: the session we send on.
    pub(crate) sessions: VecDeque<SessionEntry>,
    /// Whether the peer has shown it knows us (a message decrypted from it): from then on we
    /// send on the negotiated topic, where it listens.
    pub(crate) confirmed: bool,
    /// MVDS payloads waiting for a session.
    pub(crate) outbox: VecDeque<Vec<u8>>,
    /// When we last sent our bundle alone to the peer's partitioned topic (Unix ms).
    pub(crate) bundle_sent_ms: Option<u64>,
}

impl Conversation {
    /// Adds a session in front (it becomes the sending session), dropping the oldest beyond the
    /// limit.
    pub(crate) fn push_session(&mut self, entry: SessionEntry) {
        self.sessions.push_front(entry);
        self.sessions.truncate(MAX_SESSIONS_PER_CONTACT);
    }

    /// Queues a payload until a session exists.
    pub(crate) fn hold(&mut self, payload: Vec<u8>) {
        if self.outbox.len() >= MAX_OUTBOX_PER_CONTACT {
            self.outbox.pop_front();
        }
        self.outbox.push_back(payload);
    }

    /// Whether the front session can send.
    pub(crate) fn can_send(&self) -> bool {
        self.sessions
            .front()
            .is_some_and(|e| e.session.can_encrypt())
    }

    /// Tries every session on `msg`; on success the session that opened it is marked as having
    /// received and, if the sending session never received anything (its start may have been
    /// lost, or the peer started another one at the same time), becomes the sending session.
    pub(crate) fn decrypt(
        &mut self,
        msg: &ratchet::Message,
    ) -> Option<zeroize::Zeroizing<Vec<u8>>> {
        let mut opened = None;
        for (i, entry) in self.sessions.iter_mut().enumerate() {
            if let Ok(plain) = entry.session.decrypt(msg) {
                entry.received = true;
                entry.initial_header = None;
                opened = Some((i, plain));
                break;
            }
        }
        let (i, plain) = opened?;
        let front_received = self.sessions.front().is_some_and(|e| e.received);
        if i != 0
            && !front_received
            && let Some(entry) = self.sessions.remove(i)
        {
            self.sessions.push_front(entry);
        }
        Some(plain)
    }

    /// The record stored for this conversation (sessions pickled under `key`).
    pub(crate) fn to_record(
        &self,
        rng: &mut (impl CryptoRng + ?Sized),
        key: &ratchet::PickleKey,
    ) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(u8::from(self.confirmed));
        w.u64(self.bundle_sent_ms.map_or(0, |t| t.saturating_add(1)));
        w.u8(u8::try_from(self.sessions.len()).unwrap_or(u8::MAX));
        for e in &self.sessions {
            w.u8(u8::from(e.received));
            w.bytes(&e.initial_header.map(|h| h.encode()).unwrap_or_default());
            w.bytes(
                e.their_installation
                    .as_ref()
                    .map(|i| i.as_str().as_bytes())
                    .unwrap_or_default(),
            );
            w.bytes(&e.session.pickle(rng, key));
        }
        w.finish()
    }

    /// Reads a record written by [`Self::to_record`].
    pub(crate) fn from_record(bytes: &[u8], key: &ratchet::PickleKey) -> Option<Self> {
        let mut r = Reader::new(bytes)?;
        let confirmed = r.u8()? != 0;
        let sent = r.u64()?;
        let n = r.u8()?;
        let mut sessions = VecDeque::new();
        for _ in 0..n {
            let received = r.u8()? != 0;
            let header = r.bytes()?;
            let installation = r.bytes()?;
            let pickle = r.bytes()?;
            let initial_header = if header.is_empty() {
                None
            } else {
                Some(InitialHeader::decode(header).ok()?)
            };
            let their_installation = if installation.is_empty() {
                None
            } else {
                Some(InstallationId::new(String::from_utf8(installation.to_vec()).ok()?).ok()?)
            };
            sessions.push_back(SessionEntry {
                session: Session::from_pickle(pickle, key).ok()?,
                initial_header,
                their_installation,
                received,
            });
        }
        if !r.is_empty() || sessions.len() > MAX_SESSIONS_PER_CONTACT {
            return None;
        }
        Some(Conversation {
            sessions,
            confirmed,
            outbox: VecDeque::new(),
            bundle_sent_ms: sent.checked_sub(1),
        })
    }
}
