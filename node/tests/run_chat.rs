//! The TCP scenario on loopback, with real processes: three `status-node run` nodes (a
//! bootstrap node and two full nodes) and chat clients driven through their standard input and
//! output.
//!
//! It lives in the `node` package (not in `tests/`) because Cargo hands the path of the built
//! binary (`CARGO_BIN_EXE_status-node`) only to the integration tests of the package that
//! defines it.
//!
//! 1. Alice chats through full node 1, Bob through full node 2; the full nodes relay through
//!    the bootstrap node (and to each other). A 1:1 message each way and a public-chat message
//!    arrive with the right text and sender.
//! 2. Full node 2 is killed with SIGKILL. Alice sends Bob a 1:1 message and the channel a
//!    message while it is down; full node 1 acknowledges both (her `published` count rises).
//! 3. Full node 2 restarts from its data directory (same key, same port). Bob gets Alice's
//!    1:1 message (MVDS retransmits until Bob acknowledges it) and Alice sees it delivered.
//! 4. Bob quits; Alice writes; Bob restarts on his data directory: the local database shows
//!    the earlier conversation and the store gives him what he missed; his reply reaches Alice
//!    (the sessions survived the restart).
//! 5. A new client, Carol, joins the channel through the restarted node 2 only: its archive
//!    still has what it acknowledged before the kill. Another, Dave, joins through node 1: it
//!    has the message sent while node 2 was down.
//! 6. Full node 1 stops on SIGTERM, cleanly, flushing its archive.
//!
//! Every wait is for a line, with a generous deadline; nothing is asserted about time.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods, // deadlines for waits on real processes
    missing_docs
)]

mod common;

use std::process::Command;

use common::*;

#[test]
fn three_nodes_two_chats_a_crash_and_nothing_acknowledged_lost() {
    let dir = std::env::temp_dir().join(format!("status-node-loopback-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    println!("working directory: {}", dir.display());
    let any = "127.0.0.1:0";

    // Three nodes: bootstrap, full 1 (dials bootstrap), full 2 (dials both).
    let mut boot = Proc::spawn(
        "boot",
        &dir,
        &node_args("bootstrap", any, &dir.join("boot"), &[]),
    );
    let boot_addr = boot.peer_addr();
    let mut full1 = Proc::spawn(
        "full1",
        &dir,
        &node_args("full", any, &dir.join("full1"), &[&boot_addr]),
    );
    let full1_addr = full1.peer_addr();
    let full2_args = |listen: &str| {
        node_args(
            "full",
            listen,
            &dir.join("full2"),
            &[&boot_addr, &full1_addr],
        )
    };
    let mut full2 = Proc::spawn("full2", &dir, &full2_args(any));
    let full2_addr = full2.peer_addr();
    println!("bootstrap {boot_addr}\nfull1 {full1_addr}\nfull2 {full2_addr}");

    // Two chats.
    let (mut alice, alice_key, alice_words) = chat("alice", &dir, &[&full1_addr]);
    let (mut bob, bob_key, bob_words) = chat("bob", &dir, &[&full2_addr]);
    println!("alice {alice_key} ({alice_words})\nbob {bob_key} ({bob_words})");
    synced(&mut alice, 0, 1);
    synced(&mut bob, 0, 1);

    // Contacts both ways, then a 1:1 message each way.
    let (ma, mb) = (alice.mark(), bob.mark());
    alice.send(&format!("/add {bob_key}"));
    bob.send(&format!("/add {alice_key}"));
    alice.wait_from(ma, "added", |l| l.starts_with("** added"));
    bob.wait_from(mb, "added", |l| l.starts_with("** added"));
    synced(&mut alice, ma, 3);
    synced(&mut bob, mb, 3);

    let ma = alice.mark();
    alice.send("hello Bob, this is Alice");
    let sent = alice.wait_from(ma, "sent", |l| l.starts_with(">> sent"));
    let hello_id = id_of(&sent);
    let expect = format!("<< [1:1] {alice_words}: hello Bob, this is Alice");
    bob.wait("Alice's 1:1 message", |l| l == expect);
    alice.wait_from(ma, "delivered", |l| {
        l.starts_with(&format!(">> delivered id={hello_id} to {bob_words}"))
    });

    bob.send("hi Alice, Bob here");
    let expect = format!("<< [1:1] {bob_words}: hi Alice, Bob here");
    alice.wait("Bob's 1:1 reply", |l| l == expect);

    // A public chat.
    let (ma, mb) = (alice.mark(), bob.mark());
    alice.send("/join loopback");
    bob.send("/join #loopback");
    alice.wait_from(ma, "joined", |l| l.starts_with("** joined #loopback"));
    bob.wait_from(mb, "joined", |l| l.starts_with("** joined #loopback"));
    synced(&mut alice, ma, 4);
    synced(&mut bob, mb, 4);
    bob.send("public hello from Bob");
    let expect = format!("<< [#loopback] {bob_words}: public hello from Bob");
    alice.wait("Bob's public message", |l| l == expect);

    // Kill full node 2 (Bob's) with SIGKILL.
    let mb = bob.mark();
    full2.child.kill().unwrap();
    full2.child.wait().unwrap();
    bob.wait_from(mb, "disconnected", |l| l.starts_with("** disconnected"));

    // Alice writes while it is down; full node 1 acknowledges.
    let ma = alice.mark();
    let before = status_field(&last_status(&mut alice), "published");
    alice.send(&format!("/msg {bob_key} while you were away"));
    alice.send("/msg #loopback public while full2 was down");
    let sent = alice.wait_from(ma, "sent", |l| l.starts_with(">> sent [1:1"));
    let away_id = id_of(&sent);
    alice.wait_from(ma, "sent", |l| l.starts_with(">> sent [#loopback]"));
    alice.wait_from(ma, "acknowledged by full node 1", |l| {
        l.starts_with("** status") && status_field(l, "published") >= before + 2
    });

    // Restart full node 2 from its data directory, on the same port.
    let listen = full2_addr.split_once('@').unwrap().1.to_owned();
    drop(full2);
    let mut full2 = Proc::spawn("full2-restarted", &dir, &full2_args(&listen));
    assert_eq!(
        full2.peer_addr(),
        full2_addr,
        "same key and address after restart"
    );

    // Bob gets what Alice sent while his node was down, and Alice sees it delivered.
    let expect = format!("<< [1:1] {alice_words}: while you were away");
    bob.wait_from(mb, "the message sent while full2 was down", |l| l == expect);
    alice.wait_from(ma, "delivered", |l| {
        l.starts_with(&format!(">> delivered id={away_id} to {bob_words}"))
    });

    // Bob leaves; Alice writes; Bob comes back on his database: his history is there, and
    // the message sent while he was away comes from the store.
    bob.send("/quit");
    bob.wait("bye", |l| l == "** bye");
    assert!(bob.child.wait().unwrap().success());
    let bob_transcript = bob.transcript();
    let first_bob = bob.seen.clone();
    let ma = alice.mark();
    alice.send(&format!("/msg {bob_key} sent while you were offline"));
    alice.wait_from(ma, "sent", |l| l.starts_with(">> sent [1:1"));
    alice.wait_from(ma, "acknowledged by full node 1", |l| {
        l.starts_with("** status") && status_field(l, "published") >= before + 3
    });
    let (mut bob, again, _) = chat_on("bob-again", &dir, &dir.join("bob"), &[&full2_addr]);
    assert_eq!(again, bob_key);
    let expect = format!(".. [1:1] {alice_words}: hello Bob, this is Alice");
    bob.wait("history from the local database", |l| l == expect);
    let expect = format!("<< [1:1] {alice_words}: sent while you were offline");
    bob.wait("the message sent while Bob was offline", |l| l == expect);
    bob.wait("the history fetch", |l| l.starts_with("** history fetched"));
    bob.send(&format!("/msg {alice_key} back online"));
    bob.wait("the current chat restored", |l| {
        l == format!("** current chat: 1:1 {alice_words}")
    });
    let expect = format!("<< [1:1] {bob_words}: back online");
    alice.wait_from(ma, "Bob's message after his restart", |l| l == expect);

    // The restarted node's archive still has what it acknowledged before the kill; node 1's
    // has what was sent while node 2 was down.
    let (mut carol, _, _) = chat("carol", &dir, &[&full2_addr]);
    let (mut dave, _, _) = chat("dave", &dir, &[&full1_addr]);
    carol.send("/join loopback");
    dave.send("/join loopback");
    // A light node (`run --role light`) on an account of its own comes up through node 1.
    let light_data = new_account(&dir, "light");
    let mut light = Proc::spawn(
        "light",
        &dir,
        &node_args("light", any, &light_data, &[&full1_addr]),
    );
    light.wait("the light node's listening line", |l| {
        l.starts_with("listening ")
    });
    light.wait("the light node synced", |l| {
        l.starts_with("** status") && l.contains("synced=true")
    });
    let expect = format!("<< [#loopback] {bob_words}: public hello from Bob");
    carol.wait("history from the restarted node's archive", |l| l == expect);
    let expect = format!("<< [#loopback] {alice_words}: public while full2 was down");
    dave.wait("history from full node 1's archive", |l| l == expect);
    let expect = format!("<< [#loopback] {bob_words}: public hello from Bob");
    dave.wait("older history from full node 1's archive", |l| l == expect);

    // Each message was shown once (as it arrived, or from the database after the restart).
    bob.mark();
    let once = |lines: &[String], text: &str| {
        lines
            .iter()
            .filter(|l| l.starts_with("<< ") && l.ends_with(text))
            .count()
    };
    assert_eq!(once(&first_bob, ": hello Bob, this is Alice"), 1);
    assert_eq!(once(&first_bob, ": while you were away"), 1);
    assert_eq!(once(&bob.seen, ": hello Bob, this is Alice"), 0);
    assert_eq!(once(&bob.seen, ": sent while you were offline"), 1);
    alice.mark();
    assert_eq!(once(&alice.seen, ": public hello from Bob"), 1);

    // Clean exits: the chats on /quit, full node 1 on SIGTERM (archive flushed and closed).
    alice.send("/quit");
    bob.send("/quit");
    alice.wait("bye", |l| l == "** bye");
    bob.wait("bye", |l| l == "** bye");
    assert!(alice.child.wait().unwrap().success());
    assert!(bob.child.wait().unwrap().success());
    sigterm(&light.child);
    assert!(light.child.wait().unwrap().success());
    light.wait("bye", |l| l == "** bye");
    sigterm(&full1.child);
    assert!(full1.child.wait().unwrap().success());
    let log = std::fs::read_to_string(&full1.stderr).unwrap();
    assert!(log.contains("archive flushed"), "{log}");
    assert!(log.contains("stopped"), "{log}");

    println!("--- transcripts ---");
    println!("{}", alice.transcript());
    println!("{bob_transcript}");
    println!("{}", bob.transcript());
    println!("{}", carol.transcript());
    println!("{}", dave.transcript());
    drop((boot, full2, carol, dave));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn help_shows_examples_and_commands() {
    let help = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let top = help(&["--help"]);
    assert!(top.contains("status-node run --role full"), "{top}");
    assert!(top.contains("status-node chat --data-dir"), "{top}");
    let run = help(&["run", "--help"]);
    for s in [
        "--role",
        "--listen",
        "--peer",
        "--data-dir",
        "--node-key",
        "--transport",
        "--script",
        "listening ADDR",
        "KEY@HOST:PORT",
        "/p2p/<peer id>",
    ] {
        assert!(run.contains(s), "{s} missing from run --help:\n{run}");
    }
    let chat = help(&["chat", "--help"]);
    for s in [
        "/add <chat key>",
        "/join <channel>",
        "/msg",
        "/quit",
        "<< [1:1] Sender Words: text",
    ] {
        assert!(chat.contains(s), "{s} missing from chat --help:\n{chat}");
    }
}

#[test]
fn bad_arguments_fail_with_a_message() {
    let dir = std::env::temp_dir().join(format!("status-node-badargs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let fails = |args: &[&str], needle: &str| {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?}: {needle:?} not in {err}");
    };
    fails(
        &[
            "run",
            "--role",
            "full",
            "--listen",
            "127.0.0.1:0",
            "--peer",
            "abcd@127.0.0.1:1",
        ],
        "64 hex digits",
    );
    fails(&["chat", "--peer", "localhost"], "IP:PORT");
    fails(
        &[
            "run",
            "--role",
            "light",
            "--script",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.join("light").to_str().unwrap(),
        ],
        "--script drives full and bootstrap nodes",
    );
    // The TCP transport takes IP:PORT or a plain /ip4/…/tcp/… multiaddr, nothing else.
    fails(
        &[
            "run",
            "--role",
            "full",
            "--listen",
            "/ip4/127.0.0.1/tcp/0/ws",
            "--data-dir",
            dir.join("ws").to_str().unwrap(),
        ],
        "use --transport libp2p",
    );
    fails(
        &[
            "run",
            "--role",
            "full",
            "--listen",
            "127.0.0.1:0",
            "--peer",
            "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8",
            "--data-dir",
            dir.join("enr").to_str().unwrap(),
        ],
        "an ENR names a libp2p node",
    );
    #[cfg(not(feature = "libp2p"))]
    fails(
        &[
            "run",
            "--role",
            "full",
            "--transport",
            "libp2p",
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
            "--data-dir",
            dir.join("p2p").to_str().unwrap(),
        ],
        "built without libp2p",
    );
    // No account in the data directory: a clear error, before any network activity.
    let empty = dir.join("empty");
    fails(
        &[
            "chat",
            "--peer",
            "127.0.0.1:9",
            "--data-dir",
            empty.to_str().unwrap(),
        ],
        "account",
    );
    fails(
        &[
            "run",
            "--role",
            "light",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            empty.to_str().unwrap(),
        ],
        "account",
    );
    // A node key file that is not a key.
    std::fs::create_dir_all(&dir).unwrap();
    let bad_key = dir.join("bad.key");
    std::fs::write(&bad_key, "not a key").unwrap();
    fails(
        &[
            "run",
            "--role",
            "bootstrap",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.join("boot").to_str().unwrap(),
            "--node-key",
            bad_key.to_str().unwrap(),
        ],
        "64 hex digits",
    );
    let _ = std::fs::remove_dir_all(&dir);
}
