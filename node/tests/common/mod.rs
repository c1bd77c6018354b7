//! What the process tests of `status-node` share: a child process read line by line, accounts,
//! node and chat command lines. Each test binary uses part of it.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods, // deadlines for waits on real processes
    missing_docs
)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_status-node");

/// The longest wait for one expected line (the CI machine is slow and shared).
pub const WAIT: Duration = Duration::from_secs(90);

/// A child process whose standard output is read line by line on a thread.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub lines: Receiver<String>,
    pub seen: Vec<String>,
    pub stderr: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, dir: &Path, args: &[String]) -> Proc {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = Command::new(BIN)
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Proc {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
            stderr,
        }
    }

    /// How many lines have been read so far (a mark for [`Proc::wait_from`]).
    pub fn mark(&mut self) -> usize {
        while let Ok(l) = self.lines.try_recv() {
            self.seen.push(l);
        }
        self.seen.len()
    }

    /// The first line at or after `from` that `f` accepts, reading more until [`WAIT`].
    pub fn wait_from(&mut self, from: usize, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut i = from;
        loop {
            while let Some(l) = self.seen.get(i) {
                if f(l) {
                    return l.clone();
                }
                i += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => self.seen.push(l),
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("timed out waiting for {what}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("output ended while waiting for {what}"))
                }
            }
        }
    }

    pub fn wait(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        self.wait_from(0, what, f)
    }

    pub fn send(&mut self, line: &str) {
        println!("[{}] <- {line}", self.name);
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn fail(&mut self, msg: &str) -> ! {
        self.mark();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let tail: Vec<&str> = err.lines().rev().take(40).collect();
        panic!(
            "[{}] {msg}\n--- stdout ---\n{}\n--- stderr (last lines) ---\n{}",
            self.name,
            self.seen.join("\n"),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }

    /// `KEY@ADDR` from the `listening` line.
    pub fn peer_addr(&mut self) -> String {
        let l = self.wait("the listening line", |l| l.starts_with("listening "));
        l["listening ".len()..].to_owned()
    }

    /// The transcript so far.
    pub fn transcript(&mut self) -> String {
        self.mark();
        self.seen
            .iter()
            .filter(|l| !l.contains('█') && !l.contains('▀') && !l.contains('▄'))
            .map(|l| format!("[{}] {l}", self.name))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh account in its own data directory (`status-node account new`).
pub fn new_account(dir: &Path, name: &str) -> PathBuf {
    let data = dir.join(name);
    let out = Command::new(BIN)
        .args(["account", "new", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    data
}

pub fn node_args(role: &str, listen: &str, data: &Path, peers: &[&str]) -> Vec<String> {
    let mut a = vec![
        "run".to_owned(),
        "--role".to_owned(),
        role.to_owned(),
        "--listen".to_owned(),
        listen.to_owned(),
        "--data-dir".to_owned(),
        data.display().to_string(),
        "--stats-interval".to_owned(),
        "5".to_owned(),
    ];
    for p in peers {
        a.push("--peer".to_owned());
        a.push((*p).to_owned());
    }
    a
}

/// A chat on a new account.
pub fn chat(name: &str, dir: &Path, peers: &[&str]) -> (Proc, String, String) {
    let data = new_account(dir, name);
    chat_on(name, dir, &data, peers)
}

/// A chat on the account in `data`.
pub fn chat_on(name: &str, dir: &Path, data: &Path, peers: &[&str]) -> (Proc, String, String) {
    chat_with(name, dir, data, peers, &[])
}

/// A chat on the account in `data`, with `extra` arguments (e.g. the transport).
pub fn chat_with(
    name: &str,
    dir: &Path,
    data: &Path,
    peers: &[&str],
    extra: &[&str],
) -> (Proc, String, String) {
    let mut args: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
    args.splice(0..0, ["chat".to_owned(), "--no-qr".to_owned()]);
    args.push("--data-dir".to_owned());
    args.push(data.display().to_string());
    for p in peers {
        args.push("--peer".to_owned());
        args.push((*p).to_owned());
    }
    let mut p = Proc::spawn(name, dir, &args);
    let key =
        p.wait("the chat key", |l| l.starts_with("chat key: "))["chat key: ".len()..].to_owned();
    let words = p.wait("the three words", |l| l.starts_with("three words: "))
        ["three words: ".len()..]
        .to_owned();
    (p, key, words)
}

pub fn status_field(line: &str, field: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{field}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Waits until the chat's filter subscriptions are confirmed for at least `topics` topics.
pub fn synced(p: &mut Proc, from: usize, topics: u64) {
    p.wait_from(from, &format!("synced with {topics}+ topics"), |l| {
        l.starts_with("** status")
            && l.contains("synced=true")
            && status_field(l, "topics") >= topics
    });
}

pub fn last_status(p: &mut Proc) -> String {
    p.mark();
    p.seen
        .iter()
        .rev()
        .find(|l| l.starts_with("** status"))
        .cloned()
        .unwrap_or_default()
}

pub fn id_of(sent: &str) -> String {
    sent.split_whitespace()
        .find_map(|w| w.strip_prefix("id="))
        .unwrap()
        .to_owned()
}

pub fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}
