//! Messengers on the encrypted database: the file shows no plaintext, a restart from it resumes
//! the conversation, and a crash at any write loses no message reported as received and
//! corrupts nothing.
//!
//! A small virtual-time network of its own (the in-crate rig runs in-memory storages only): one
//! full node, Alice and Bob as light nodes on `SqlCipherStorage` + the MVDS store in the same
//! file. Bob's two stores sit behind a fault-injecting wrapper that shares one write budget: the
//! write that exhausts it fails and "kills" Bob there, which the network models by discarding
//! everything Bob emitted during that input (a real process would have died inside the call,
//! before its driver polled any output) and dropping the Messenger.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use mvds::store::{Snapshot, StoreOp};
use mvds::{StoreError, SyncStore};
use payloads::account::{Account, WordCount};
use payloads::messenger::{ChatId, Draft, Messenger, MessengerConfig, MessengerEvent, PeerKey};
use payloads::storage::{
    Dump, SqlCipherStorage, SqlCipherSyncStore, Storage, StorageError, StorageOp,
};
use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};
use waku_core::net::{FrameKind, Machine, Now, PeerId, Protocol};
use waku_core::node::{WakuNode, WakuNodeConfig};
use waku_core::roles::Capabilities;

const BASE_UNIX_NANOS: i64 = 1_700_000_000_000_000_000;

/// A write budget shared by a node's two stores: `None` is unlimited; when it reaches zero the
/// next write fails and the node counts as crashed.
#[derive(Clone, Default)]
struct Budget {
    left: Rc<Cell<Option<u64>>>,
    crashed: Rc<Cell<bool>>,
    writes: Rc<Cell<u64>>,
}

impl Budget {
    fn take(&self) -> bool {
        if self.crashed.get() {
            return false;
        }
        match self.left.get() {
            Some(0) => {
                self.crashed.set(true);
                false
            }
            Some(n) => {
                self.left.set(Some(n - 1));
                self.writes.set(self.writes.get() + 1);
                true
            }
            None => {
                self.writes.set(self.writes.get() + 1);
                true
            }
        }
    }
}

struct Faulty<S> {
    inner: S,
    budget: Budget,
}

impl<S: Storage> Storage for Faulty<S> {
    fn load(&mut self) -> Result<Dump, StorageError> {
        self.inner.load()
    }
    fn commit(&mut self, ops: Vec<StorageOp>) -> Result<(), StorageError> {
        if !self.budget.take() {
            return Err(StorageError::Backend("crash injected".into()));
        }
        self.inner.commit(ops)
    }
}

impl<S: SyncStore<PeerKey>> SyncStore<PeerKey> for Faulty<S> {
    fn load(&mut self) -> Result<Snapshot<PeerKey>, StoreError> {
        self.inner.load()
    }
    fn is_known(&mut self, id: &mvds::MessageId) -> Result<bool, StoreError> {
        self.inner.is_known(id)
    }
    fn commit(&mut self, ops: Vec<StoreOp<PeerKey>>) -> Result<(), StoreError> {
        if !self.budget.take() {
            return Err(StoreError::Corrupt("crash injected".into()));
        }
        self.inner.commit(ops)
    }
}

type DiskMessenger = Messenger<Faulty<SqlCipherStorage>, Faulty<SqlCipherSyncStore>>;

enum Node {
    Full(Box<WakuNode>),
    Messenger(Box<DiskMessenger>),
    Down,
}

struct Frame {
    at: Instant,
    seq: u64,
    from: usize,
    to: usize,
    protocol: Protocol,
    kind: FrameKind,
    bytes: Vec<u8>,
}

impl PartialEq for Frame {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Frame {}
impl PartialOrd for Frame {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Frame {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

struct Net {
    start: Instant,
    offset: Duration,
    nodes: Vec<Node>,
    budgets: Vec<Budget>,
    heap: BinaryHeap<Reverse<Frame>>,
    seq: u64,
    /// Events each messenger reported (output of inputs it survived).
    events: Vec<Vec<MessengerEvent>>,
    rng: ChaCha20Rng,
}

const LATENCY: Duration = Duration::from_millis(20);

impl Net {
    #[allow(clippy::disallowed_methods)] // the network needs some origin; only offsets matter
    fn new(seed: u64) -> Self {
        println!("net seed {seed}");
        Net {
            start: Instant::now(),
            offset: Duration::ZERO,
            nodes: Vec::new(),
            budgets: Vec::new(),
            heap: BinaryHeap::new(),
            seq: 0,
            events: Vec::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    fn now(&self) -> Now {
        Now {
            instant: self.start + self.offset,
            unix_nanos: BASE_UNIX_NANOS + i64::try_from(self.offset.as_nanos()).unwrap(),
        }
    }

    fn add_full(&mut self, config: &MessengerConfig) -> usize {
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        let wc = WakuNodeConfig::new(
            Capabilities::FULL,
            config.waku.cluster_id,
            config.waku.shards.clone(),
        );
        let mut node = WakuNode::new(wc, None, seed, self.now()).unwrap();
        node.subscribe(self.now(), config.pubsub_topic.clone(), vec![])
            .unwrap();
        self.nodes.push(Node::Full(Box::new(node)));
        self.budgets.push(Budget::default());
        self.events.push(Vec::new());
        self.nodes.len() - 1
    }

    fn open_messenger(
        &mut self,
        account: &Account,
        db: &Path,
        budget: &Budget,
    ) -> Result<DiskMessenger, String> {
        let key = account.database_key();
        let (storage, sync) = SqlCipherStorage::open_pair(db, &key).map_err(|e| e.to_string())?;
        let mut seed = [0u8; 32];
        self.rng.fill_bytes(&mut seed);
        Messenger::new(
            MessengerConfig::default(),
            account,
            Faulty {
                inner: storage,
                budget: budget.clone(),
            },
            Faulty {
                inner: sync,
                budget: budget.clone(),
            },
            seed,
            self.now(),
        )
        .map_err(|e| e.to_string())
    }

    fn add_messenger(&mut self, account: &Account, db: &Path) -> usize {
        let budget = Budget::default();
        let m = self.open_messenger(account, db, &budget).unwrap();
        self.nodes.push(Node::Messenger(Box::new(m)));
        self.budgets.push(budget);
        self.events.push(Vec::new());
        self.nodes.len() - 1
    }

    fn machine(&mut self, i: usize) -> Option<&mut dyn MachineDyn> {
        match &mut self.nodes[i] {
            Node::Full(n) => Some(&mut **n),
            Node::Messenger(m) => Some(&mut **m),
            Node::Down => None,
        }
    }

    fn protocols(&mut self, i: usize) -> Vec<Protocol> {
        self.machine(i).map(|m| m.protos()).unwrap_or_default()
    }

    /// Connects `a` and `b` (both must be up).
    fn connect(&mut self, a: usize, b: usize) {
        let now = self.now();
        let (pa, pb) = (self.protocols(a), self.protocols(b));
        if let Some(m) = self.machine(a) {
            m.connected(now, PeerId(b as u64), &pb);
        }
        self.flush(a);
        if let Some(m) = self.machine(b) {
            m.connected(now, PeerId(a as u64), &pa);
        }
        self.flush(b);
    }

    /// After an input to `i`: if it crashed during the input, discard its output and take it
    /// down; otherwise move its transmits into the network and its events into `events`.
    fn flush(&mut self, i: usize) {
        if self.budgets[i].crashed.get() {
            self.nodes[i] = Node::Down;
            self.heap.retain(|Reverse(f)| f.to != i && f.from != i);
            for j in 0..self.nodes.len() {
                if j != i && self.machine(j).is_some() {
                    let now = self.now();
                    self.machine(j).unwrap().disconnected(now, PeerId(i as u64));
                    self.flush(j);
                }
            }
            return;
        }
        let Some(m) = self.machine(i) else { return };
        let mut out = Vec::new();
        while let Some(t) = m.transmit() {
            out.push(t);
        }
        for t in out {
            self.seq += 1;
            self.heap.push(Reverse(Frame {
                at: self.start + self.offset + LATENCY,
                seq: self.seq,
                from: i,
                to: t.to.0 as usize,
                protocol: t.protocol,
                kind: t.kind,
                bytes: t.bytes,
            }));
        }
        match &mut self.nodes[i] {
            Node::Messenger(m) => {
                while let Some(e) = m.poll_event() {
                    self.events[i].push(e);
                }
            }
            Node::Full(n) => while n.poll_event().is_some() {},
            Node::Down => {}
        }
    }

    fn next_at(&mut self) -> Option<Instant> {
        let frame = self.heap.peek().map(|Reverse(f)| f.at);
        let timer = (0..self.nodes.len())
            .filter_map(|i| self.machine(i).and_then(|m| m.next_timeout()))
            .min();
        [frame, timer].into_iter().flatten().min()
    }

    fn run_for(&mut self, d: Duration) {
        let end = self.offset + d;
        while let Some(at) = self.next_at() {
            if at > self.start + end {
                break;
            }
            if at > self.start + self.offset {
                self.offset = at - self.start;
            }
            let now = self.now();
            if self
                .heap
                .peek()
                .is_some_and(|Reverse(f)| f.at <= now.instant)
            {
                let Reverse(f) = self.heap.pop().unwrap();
                if let Some(m) = self.machine(f.to) {
                    m.frame(now, PeerId(f.from as u64), f.protocol, f.kind, &f.bytes);
                    self.flush(f.to);
                }
                continue;
            }
            for i in 0..self.nodes.len() {
                if let Some(m) = self.machine(i)
                    && m.next_timeout().is_some_and(|t| t <= now.instant)
                {
                    m.timeout(now);
                    self.flush(i);
                }
            }
        }
        self.offset = end;
    }

    fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Net) -> bool) -> bool {
        let end = self.offset + limit;
        while self.offset < end {
            if done(self) {
                return true;
            }
            self.run_for(Duration::from_millis(500));
        }
        done(self)
    }

    fn messenger(&mut self, i: usize) -> &mut DiskMessenger {
        match &mut self.nodes[i] {
            Node::Messenger(m) => m,
            _ => panic!("node {i} is not a running messenger"),
        }
    }

    fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut DiskMessenger, Now) -> R) -> R {
        let now = self.now();
        let r = f(self.messenger(i), now);
        self.flush(i);
        r
    }

    fn is_up(&self, i: usize) -> bool {
        !matches!(self.nodes[i], Node::Down)
    }

    /// Stops messenger `i` cleanly (closing its database) without telling anyone.
    fn stop(&mut self, i: usize) {
        self.nodes[i] = Node::Down;
        self.heap.retain(|Reverse(f)| f.to != i && f.from != i);
        for j in 0..self.nodes.len() {
            if j != i && self.machine(j).is_some() {
                let now = self.now();
                self.machine(j).unwrap().disconnected(now, PeerId(i as u64));
                self.flush(j);
            }
        }
    }

    /// Starts messenger `i` again from its database, unlimited writes, connected to `peers`.
    fn restart(&mut self, i: usize, account: &Account, db: &Path, peers: &[usize]) {
        let budget = Budget::default();
        let m = self.open_messenger(account, db, &budget).unwrap();
        self.nodes[i] = Node::Messenger(Box::new(m));
        self.budgets[i] = budget;
        for &p in peers {
            self.connect(i, p);
        }
    }
}

/// The `Machine` methods the network calls, with events erased.
trait MachineDyn {
    fn connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]);
    fn disconnected(&mut self, now: Now, peer: PeerId);
    fn frame(&mut self, now: Now, from: PeerId, protocol: Protocol, kind: FrameKind, b: &[u8]);
    fn timeout(&mut self, now: Now);
    fn transmit(&mut self) -> Option<waku_core::net::Transmit>;
    fn next_timeout(&self) -> Option<Instant>;
    fn protos(&self) -> Vec<Protocol>;
}

impl<T: Machine> MachineDyn for T {
    fn connected(&mut self, now: Now, peer: PeerId, protocols: &[Protocol]) {
        self.handle_connected(now, peer, protocols)
    }
    fn disconnected(&mut self, now: Now, peer: PeerId) {
        self.handle_disconnected(now, peer)
    }
    fn frame(&mut self, now: Now, from: PeerId, protocol: Protocol, kind: FrameKind, b: &[u8]) {
        self.handle_frame(now, from, protocol, kind, b)
    }
    fn timeout(&mut self, now: Now) {
        self.handle_timeout(now)
    }
    fn transmit(&mut self) -> Option<waku_core::net::Transmit> {
        self.poll_transmit()
    }
    fn next_timeout(&self) -> Option<Instant> {
        self.poll_timeout()
    }
    fn protos(&self) -> Vec<Protocol> {
        self.protocols()
    }
}

fn received(net: &Net, node: usize) -> Vec<String> {
    net.events[node]
        .iter()
        .filter_map(|e| match e {
            MessengerEvent::MessageReceived { entry, .. } => Some(entry.message.text.clone()),
            _ => None,
        })
        .collect()
}

fn log_texts(m: &DiskMessenger, chat: &ChatId) -> Vec<String> {
    m.messages(chat).map(|e| e.message.text.clone()).collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sqlcipher-restart");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    remove_db(&path);
    path
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

fn file_bytes(path: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        if let Ok(b) = std::fs::read(format!("{}{suffix}", path.display())) {
            all.extend(b);
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Alice, Bob and a full node; Alice has added Bob and they exchanged one message each.
struct Scene {
    net: Net,
    alice: usize,
    bob: usize,
    full: usize,
    alice_account: Account,
    bob_account: Account,
    alice_db: PathBuf,
    bob_db: PathBuf,
}

fn scene(seed: u64, tag: &str) -> Scene {
    let mut net = Net::new(seed);
    let config = MessengerConfig::default();
    let full = net.add_full(&config);
    let alice_account = Account::generate(&mut net.rng, WordCount::Twelve, "").unwrap();
    let bob_account = Account::generate(&mut net.rng, WordCount::Twelve, "").unwrap();
    let alice_db = scratch(&format!("{tag}-alice.db"));
    let bob_db = scratch(&format!("{tag}-bob.db"));
    let alice = net.add_messenger(&alice_account, &alice_db);
    let bob = net.add_messenger(&bob_account, &bob_db);
    net.connect(alice, full);
    net.connect(bob, full);
    net.run_for(Duration::from_secs(3));
    let bob_key = *net.messenger(bob).public_key();
    let alice_key = *net.messenger(alice).public_key();
    net.with(alice, |m, now| m.add_contact(now, bob_key));
    assert!(net.run_until(Duration::from_secs(60), |n| {
        n.messenger(alice).has_bundle(&bob_key)
    }));
    net.with(alice, |m, now| {
        m.send(now, &ChatId::OneToOne(bob_key), Draft::text("hello bob"))
    })
    .unwrap();
    assert!(net.run_until(Duration::from_secs(60), |n| received(n, bob)
        == ["hello bob"]));
    net.with(bob, |m, now| {
        m.send(
            now,
            &ChatId::OneToOne(alice_key),
            Draft::text("hello alice"),
        )
    })
    .unwrap();
    assert!(
        net.run_until(Duration::from_secs(60), |n| received(n, alice)
            == ["hello alice"])
    );
    net.run_for(Duration::from_secs(5));
    Scene {
        net,
        alice,
        bob,
        full,
        alice_account,
        bob_account,
        alice_db,
        bob_db,
    }
}

#[test]
fn database_shows_no_plaintext_and_a_restart_resumes_the_conversation() {
    let mut s = scene(0x5eed_0001, "resume");
    let (alice, bob, full) = (s.alice, s.bob, s.full);
    let alice_key = *s.net.messenger(alice).public_key();
    let bob_key = *s.net.messenger(bob).public_key();
    let secret_text = "meet me by the old lighthouse at nine";
    s.net
        .with(alice, |m, now| {
            m.send(now, &ChatId::OneToOne(bob_key), Draft::text(secret_text))
        })
        .unwrap();
    assert!(s.net.run_until(Duration::from_secs(60), |n| {
        received(n, bob).contains(&secret_text.to_owned())
    }));
    s.net.run_for(Duration::from_secs(5));

    // Restart Bob from his database (a clean stop: the connections close).
    let installation = s.net.messenger(bob).installation_id().clone();
    s.net.stop(bob);
    for (db, account) in [(&s.bob_db, &s.bob_account), (&s.alice_db, &s.alice_account)] {
        let bytes = file_bytes(db);
        assert!(bytes.len() > 8192, "database is {} bytes", bytes.len());
        for needle in [
            secret_text.as_bytes(),
            b"hello bob".as_slice(),
            b"SQLite format 3".as_slice(),
            &account.database_key()[..],
            &account.chat_secret_key()[..],
            &account.database_key()[..8],
            &account.chat_secret_key()[..8],
        ] {
            assert!(
                !contains(&bytes, needle),
                "{:?} found in {}",
                needle,
                db.display()
            );
        }
    }
    let (bob_account, bob_db) = (s.bob_account, s.bob_db.clone());
    s.net.restart(bob, &bob_account, &bob_db, &[full]);
    assert_eq!(s.net.messenger(bob).installation_id(), &installation);
    assert!(s.net.messenger(bob).is_confirmed(&alice_key));
    assert_eq!(
        log_texts(s.net.messenger(bob), &ChatId::OneToOne(alice_key)),
        ["hello bob", "hello alice", secret_text]
    );

    // Bob's restored session decrypts Alice's next message, and Alice decrypts his answer.
    s.net.run_for(Duration::from_secs(3));
    s.net
        .with(alice, |m, now| {
            m.send(
                now,
                &ChatId::OneToOne(bob_key),
                Draft::text("after restart"),
            )
        })
        .unwrap();
    assert!(s.net.run_until(Duration::from_secs(120), |n| {
        received(n, bob).contains(&"after restart".to_owned())
    }));
    s.net
        .with(bob, |m, now| {
            m.send(now, &ChatId::OneToOne(alice_key), Draft::text("answer"))
        })
        .unwrap();
    assert!(s.net.run_until(Duration::from_secs(120), |n| {
        received(n, alice).contains(&"answer".to_owned())
    }));
    let texts = received(&s.net, bob);
    assert_eq!(
        texts.iter().filter(|t| *t == secret_text).count(),
        1,
        "{texts:?}"
    );
    s.net.stop(bob);
    let storage = SqlCipherStorage::open(&bob_db, &bob_account.database_key()).unwrap();
    storage.check_integrity().unwrap();
    drop(storage);
    remove_db(&bob_db);
    remove_db(&s.alice_db);
}

/// What happens after Bob's stores are cut off at write number `n` of the exchange below.
struct CrashOutcome {
    crashed: bool,
    /// Messages Alice sent before the crash that never reached Bob's chat log.
    lost_unreported: Vec<String>,
}

/// Alice sends three messages, Bob answers the first; Bob's `n`-th write (counted from the
/// start of the exchange) fails and kills him. Bob restarts from the file; checks that every
/// message reported as received before the crash is in his log, that the database passes
/// its integrity check, and that Alice's next message decrypts.
fn crash_at(n: Option<u64>) -> (CrashOutcome, u64) {
    let tag = format!("crash-{}", n.map_or(-1, |n| n as i64));
    let mut s = scene(0x5eed_0002, &tag);
    let (alice, bob, full) = (s.alice, s.bob, s.full);
    let alice_key = *s.net.messenger(alice).public_key();
    let bob_key = *s.net.messenger(bob).public_key();
    let to_bob = ChatId::OneToOne(bob_key);
    let to_alice = ChatId::OneToOne(alice_key);
    let events_before = s.net.events[bob].len();
    s.net.budgets[bob].left.set(n);
    s.net.budgets[bob].writes.set(0);
    let sent = ["one", "two", "three"];
    let mut answered = false;
    for text in sent {
        s.net
            .with(alice, |m, now| m.send(now, &to_bob, Draft::text(text)))
            .unwrap();
        s.net.run_for(Duration::from_secs(2));
        if !answered && s.net.is_up(bob) && received(&s.net, bob).contains(&"one".to_owned()) {
            answered = true;
            s.net
                .with(bob, |m, now| m.send(now, &to_alice, Draft::text("got one")))
                .ok();
        }
    }
    s.net.run_for(Duration::from_secs(10));
    let writes = s.net.budgets[bob].writes.get();
    let crashed = !s.net.is_up(bob);
    let reported: Vec<String> = s.net.events[bob][events_before..]
        .iter()
        .filter_map(|e| match e {
            MessengerEvent::MessageReceived { entry, .. } => Some(entry.message.text.clone()),
            _ => None,
        })
        .collect();
    if !crashed {
        s.net.stop(bob);
    }

    // The file opens and passes its integrity check.
    {
        let storage = SqlCipherStorage::open(&s.bob_db, &s.bob_account.database_key()).unwrap();
        storage.check_integrity().unwrap();
    }
    let (bob_account, bob_db) = (s.bob_account, s.bob_db.clone());
    s.net.restart(bob, &bob_account, &bob_db, &[full]);
    let log = log_texts(s.net.messenger(bob), &to_alice);
    for text in &reported {
        assert!(
            log.contains(text),
            "crash at write {n:?}: {text:?} was reported but is not in {log:?}"
        );
    }
    // Retransmissions bring what was not acknowledged; then the conversation goes on.
    s.net.run_for(Duration::from_secs(60));
    s.net
        .with(alice, |m, now| {
            m.send(now, &to_bob, Draft::text("after crash"))
        })
        .unwrap();
    assert!(
        s.net.run_until(Duration::from_secs(120), |net| {
            log_texts(net.messenger(bob), &to_alice).contains(&"after crash".to_owned())
        }),
        "crash at write {n:?}: Bob does not decrypt Alice's next message"
    );
    let log = log_texts(s.net.messenger(bob), &to_alice);
    let lost_unreported = sent
        .iter()
        .filter(|t| !log.contains(&(**t).to_owned()))
        .map(|t| (*t).to_owned())
        .collect();
    // Nothing twice.
    for t in sent {
        assert!(
            log.iter().filter(|x| *x == t).count() <= 1,
            "{t} twice in {log:?}"
        );
    }
    s.net.stop(bob);
    remove_db(&bob_db);
    remove_db(&s.alice_db);
    (
        CrashOutcome {
            crashed,
            lost_unreported,
        },
        writes,
    )
}

#[test]
fn a_crash_at_any_write_loses_no_reported_message_and_corrupts_nothing() {
    // A run without a crash counts Bob's writes in the exchange.
    let (clean, total) = crash_at(None);
    assert!(!clean.crashed);
    assert!(
        clean.lost_unreported.is_empty(),
        "{:?}",
        clean.lost_unreported
    );
    println!("the exchange makes {total} writes on Bob's side");
    assert!(total > 5);
    let mut silent_losses = Vec::new();
    for n in 0..total {
        let (outcome, _) = crash_at(Some(n));
        assert!(outcome.crashed, "write {n} of {total} did not happen");
        if !outcome.lost_unreported.is_empty() {
            silent_losses.push((n, outcome.lost_unreported));
        }
    }
    assert!(
        silent_losses.is_empty(),
        "crash points after which a message never reached Bob's log: {silent_losses:?}"
    );
}
