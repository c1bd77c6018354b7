//! `status-node` over libp2p on loopback, with real processes (feature `libp2p`; `.ci/run` runs
//! it in its `node-libp2p` step):
//!
//! 1. Two full nodes: A listens on TCP, B on WebSocket and dials A by A's ENR. Each prints
//!    `listening <multiaddr>/p2p/<peer id>` (a secp256k1 peer id, `16Uiu2…`) and
//!    `record enr:…`, its signed ENR, checked here: same key as the peer id, A's address,
//!    `waku2` relay and store, shard 32 of cluster 16.
//! 2. Alice chats through A, Bob through B (`chat --transport libp2p`): contacts both ways, a
//!    1:1 message each way (delivered and acknowledged), a public-chat message.
//! 3. B is killed and restarted from its data directory on the same address: it has the same
//!    peer id (its `libp2p.key`), rejoins A, Bob's chat redials it on its own, and a message
//!    Alice sends afterwards reaches Bob.
//!
//! 4. Carol's chat knows only a bootstrap node C, which knows A only from A's ENR (given as
//!    `--peer`): peer exchange gives her A's record, she dials A and syncs through it.
//!
//! Every wait is for a line, with a generous deadline; nothing is asserted about time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use waku_core::enr::{Enr, RelayShards};

const LIBP2P: [&str; 2] = ["--transport", "libp2p"];

/// A full node on libp2p named `name`, with its data in `dir/data`.
fn full_node(
    name: &str,
    data: &str,
    dir: &Path,
    listen: &str,
    peers: &[&str],
) -> (Proc, String, Enr) {
    let mut args = node_args("full", listen, &dir.join(data), peers);
    args.extend(LIBP2P.map(str::to_owned));
    let mut p = Proc::spawn(name, dir, &args);
    let addr = p.peer_addr();
    assert!(
        addr.starts_with("/ip4/127.0.0.1/tcp/") && addr.contains("/p2p/16Uiu2"),
        "{name} listens on {addr}"
    );
    let record = p.wait("the record line", |l| l.starts_with("record "))["record ".len()..]
        .parse::<Enr>()
        .unwrap();
    let peer_id = addr.split("/p2p/").nth(1).unwrap();
    assert_eq!(
        record.libp2p_peer_id(),
        peer_id,
        "the ENR's key is the peer id's"
    );
    let waku2 = record.waku2().unwrap();
    assert!(waku2.relay() && waku2.store() && waku2.filter() && waku2.lightpush());
    assert_eq!(
        record.shards().unwrap(),
        Some(RelayShards {
            cluster: 16,
            shards: vec![32]
        })
    );
    if !addr.contains("/ws/") {
        assert_eq!(record.dial_addrs().first(), Some(&addr), "{record:?}");
    }
    (p, addr, record)
}

/// `/ip4/…/tcp/PORT[/ws]` of a printed address, without `/p2p/…`.
fn without_peer_id(addr: &str) -> String {
    addr.split("/p2p/").next().unwrap().to_owned()
}

#[test]
fn two_libp2p_nodes_two_chats_and_a_restart() {
    let dir = std::env::temp_dir().join(format!("status-node-libp2p-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("working directory: {}", dir.display());

    let (mut a, a_addr, a_record) = full_node("fullA", "fullA", &dir, "/ip4/127.0.0.1/tcp/0", &[]);
    let a_enr = a_record.to_text();
    let (mut b, b_addr, _) =
        full_node("fullB", "fullB", &dir, "/ip4/127.0.0.1/tcp/0/ws", &[&a_enr]);
    assert!(b_addr.contains("/ws/p2p/"), "{b_addr}");
    println!("A {a_addr}\nB {b_addr}");
    let b_id = b_addr.split("/p2p/").nth(1).unwrap().to_owned();

    let alice_data = new_account(&dir, "alice");
    let bob_data = new_account(&dir, "bob");
    let (mut alice, alice_key, alice_words) =
        chat_with("alice", &dir, &alice_data, &[&a_addr], &LIBP2P);
    let (mut bob, bob_key, bob_words) = chat_with("bob", &dir, &bob_data, &[&b_addr], &LIBP2P);
    println!("alice {alice_key} ({alice_words})\nbob {bob_key} ({bob_words})");
    synced(&mut alice, 0, 1);
    synced(&mut bob, 0, 1);
    bob.wait("connected to B by its peer id", |l| {
        l == format!("** connected to {b_id}")
    });

    let (ma, mb) = (alice.mark(), bob.mark());
    alice.send(&format!("/add {bob_key}"));
    bob.send(&format!("/add {alice_key}"));
    synced(&mut alice, ma, 3);
    synced(&mut bob, mb, 3);

    let ma = alice.mark();
    alice.send("hello Bob, over libp2p");
    let hello_id = id_of(&alice.wait_from(ma, "sent", |l| l.starts_with(">> sent")));
    let expect = format!("<< [1:1] {alice_words}: hello Bob, over libp2p");
    bob.wait("Alice's 1:1 message", |l| l == expect);
    alice.wait_from(ma, "delivered", |l| {
        l.starts_with(&format!(">> delivered id={hello_id} to {bob_words}"))
    });
    bob.send("hi Alice, libp2p here too");
    let expect = format!("<< [1:1] {bob_words}: hi Alice, libp2p here too");
    alice.wait("Bob's reply", |l| l == expect);

    let (ma, mb) = (alice.mark(), bob.mark());
    alice.send("/join p2p");
    bob.send("/join p2p");
    synced(&mut alice, ma, 4);
    synced(&mut bob, mb, 4);
    bob.send("public hello over libp2p");
    let expect = format!("<< [#p2p] {bob_words}: public hello over libp2p");
    alice.wait("Bob's public message", |l| l == expect);

    // B crashes and comes back on the same address with the same identity.
    let mb = bob.mark();
    b.child.kill().unwrap();
    b.child.wait().unwrap();
    bob.wait_from(mb, "disconnected from B", |l| {
        l.starts_with(&format!("** disconnected from {b_id}"))
    });
    let (b2, b2_addr, _) = full_node(
        "fullB2",
        "fullB",
        &dir,
        &without_peer_id(&b_addr),
        &[&a_addr],
    );
    // The restarted process uses B's data directory: same key file, same peer id.
    assert_eq!(
        b2_addr, b_addr,
        "restarted B has the same address and peer id"
    );
    bob.wait_from(mb, "reconnected to B", |l| {
        l == format!("** connected to {b_id}")
    });
    synced(&mut bob, mb, 4);
    let ma = alice.mark();
    alice.send(&format!("/msg {bob_key} after the restart"));
    let id = id_of(&alice.wait_from(ma, "sent", |l| l.starts_with(">> sent")));
    let expect = format!("<< [1:1] {alice_words}: after the restart");
    bob.wait_from(mb, "the message after B's restart", |l| l == expect);
    alice.wait_from(ma, "delivered", |l| {
        l.starts_with(&format!(">> delivered id={id} to {bob_words}"))
    });

    // Carol knows only a bootstrap node C, which knows A only from A's ENR: her chat asks C
    // through peer exchange, dials A from the record and syncs through it.
    let mut c_args = node_args(
        "bootstrap",
        "/ip4/127.0.0.1/tcp/0",
        &dir.join("bootC"),
        &[&a_enr],
    );
    c_args.extend(LIBP2P.map(str::to_owned));
    let mut c = Proc::spawn("bootC", &dir, &c_args);
    let c_addr = c.peer_addr();
    let carol_data = new_account(&dir, "carol");
    let (mut carol, _, _) = chat_with("carol", &dir, &carol_data, &[&c_addr], &LIBP2P);
    carol.wait("the peer-exchange answer", |l| {
        l.starts_with("** peer exchange: 1 record(s)") && l.ends_with("dialling 1")
    });
    let a_id = a_addr.split("/p2p/").nth(1).unwrap();
    carol.wait("connected to A", |l| l == format!("** connected to {a_id}"));
    synced(&mut carol, 0, 1);

    // Clean stops.
    for p in [&mut alice, &mut bob, &mut carol] {
        p.send("/quit");
        p.wait("bye", |l| l == "** bye");
    }
    sigterm(&a.child);
    assert!(a.child.wait().unwrap().success());
    println!("{}\n{}", alice.transcript(), bob.transcript());
    drop((b2, c));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn libp2p_addresses_are_checked() {
    let fails = |args: &[&str], needle: &str| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
    };
    let dir = std::env::temp_dir().join(format!("status-node-libp2p-args-{}", std::process::id()));
    let data = dir.to_str().unwrap();
    let key_peer = format!("{}@127.0.0.1:1", "ab".repeat(32));
    let base = [
        "run",
        "--role",
        "full",
        "--transport",
        "libp2p",
        "--data-dir",
        data,
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| (*s).to_owned()).collect()
    };
    let run = |extra: &[&str], needle: &str| {
        let args = with(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        fails(&args, needle);
    };
    run(
        &["--listen", "/ip4/127.0.0.1/tcp/0", "--peer", &key_peer],
        "KEY@IP:PORT names a TCP-transport node",
    );
    run(
        &["--listen", "/ip4/127.0.0.1/tcp/notaport"],
        "invalid multiaddr",
    );
    run(
        &["--listen", "/ip4/127.0.0.1/udp/0/quic-v1"],
        "listen on /ip4/127.0.0.1/udp/0/quic-v1",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
