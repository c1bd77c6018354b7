//! `run --script`: the node driven through its standard streams, for test harnesses (the
//! js-waku interop test in `interop/`) and shell scripts.
//!
//! Standard output gets one line per event, a word and a JSON object:
//!
//! | line | when |
//! |---|---|
//! | `peer-up {"peer":…,"agent":…,"protocols":[…]}` | a peer connected (protocols: what it serves) |
//! | `peer-down {"peer":…,"reason":…}` | a peer is gone |
//! | `message {"hash":…,"pubsub_topic":…,"content_topic":…,"payload_hex":…,"timestamp":…,"source":…}` | the node received a message (relay, filter or store; not its own publishes) |
//! | `published {"hash":…,"pubsub_topic":…,"peers":N}` | answer to `publish` |
//! | `stats {"relayed":N,…}` | answer to `stats` |
//! | `error {"error":…}` | a command failed |
//!
//! Standard input takes one command per line:
//!
//! - `publish <content topic> <payload hex> [<pubsub topic>]`: publish a message stamped with
//!   the current time, on the given pubsub topic or, without one, the autosharded one
//!   (`--autoshard N`);
//! - `stats`;
//! - `quit` (end of input too).
//!
//! Hashes are the 14/WAKU2-MESSAGE deterministic hashes in lowercase hex, the same as js-waku's
//! `messageHash` and nwaku's.

use std::fmt::Write as _;
use std::io::{self, BufRead, Read, Write};

use tokio::sync::mpsc;
use waku_core::message::WakuMessage;
use waku_core::node::{NodeEvent, Published, WakuNode};
use waku_core::topic::{ContentTopic, PubsubTopic};

use crate::chat::MAX_LINE_BYTES;
use crate::net::{NetEvent, NetHandle};

/// Input lines waiting for the loop.
const MAX_PENDING_LINES: usize = 64;

/// Whether the loop goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    /// Keep running.
    Continue,
    /// `quit` was read.
    Quit,
}

/// The script mode's state: the topic settings `publish` needs and the input lines.
#[derive(Debug)]
pub(crate) struct Script {
    cluster: u16,
    autoshard: Option<u16>,
    lines: mpsc::Receiver<String>,
}

impl Script {
    /// Starts reading standard input on its own thread.
    pub(crate) fn new(cluster: u16, autoshard: Option<u16>) -> Self {
        let (tx, lines) = mpsc::channel(MAX_PENDING_LINES);
        std::thread::spawn(move || {
            let stdin = io::stdin();
            let mut input = stdin.lock();
            let mut buf = Vec::new();
            loop {
                buf.clear();
                // Read at most one line past the limit, so a huge line is refused, not kept.
                let limit = u64::try_from(MAX_LINE_BYTES + 1).unwrap_or(u64::MAX);
                match (&mut input).take(limit).read_until(b'\n', &mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                let line = if buf.len() > MAX_LINE_BYTES {
                    // Skip the rest of the long line.
                    let mut rest = Vec::new();
                    let _ = input.read_until(b'\n', &mut rest);
                    "too-long".to_owned()
                } else {
                    String::from_utf8_lossy(&buf).trim().to_owned()
                };
                if tx.blocking_send(line).is_err() {
                    break;
                }
            }
        });
        Script {
            cluster,
            autoshard,
            lines,
        }
    }

    /// Prints the line of an event, if it has one.
    pub(crate) fn print_event(&self, e: &NetEvent<NodeEvent>) {
        let line = match e {
            NetEvent::PeerUp {
                peer,
                agent,
                protocols,
            } => {
                let list: Vec<String> = protocols.iter().map(|p| json_str(p)).collect();
                format!(
                    "peer-up {{\"peer\":{},\"agent\":{},\"protocols\":[{}]}}",
                    json_str(peer),
                    json_str(agent),
                    list.join(",")
                )
            }
            NetEvent::PeerDown { peer, reason } => format!(
                "peer-down {{\"peer\":{},\"reason\":{}}}",
                json_str(peer),
                json_str(reason)
            ),
            NetEvent::Machine(NodeEvent::Message {
                pubsub_topic,
                hash,
                message,
                source,
            }) => format!(
                "message {{\"hash\":\"{}\",\"pubsub_topic\":{},\"content_topic\":{},\"payload_hex\":\"{}\",\"timestamp\":{},\"source\":{}}}",
                hex::encode(hash.as_ref()),
                json_str(pubsub_topic.as_ref()),
                json_str(message.content_topic.as_ref()),
                hex::encode(&message.payload),
                message.timestamp.unwrap_or(0),
                json_str(&format!("{source:?}")),
            ),
            _ => return,
        };
        emit(&line);
    }

    /// Runs one input line.
    pub(crate) async fn command(&self, handle: &NetHandle<WakuNode>, line: &str) -> Flow {
        let words: Vec<&str> = line.split_whitespace().collect();
        let result = match words.as_slice() {
            [] => return Flow::Continue,
            ["quit"] => return Flow::Quit,
            ["publish", content, payload] => self.publish(handle, content, payload, None).await,
            ["publish", content, payload, topic] => {
                self.publish(handle, content, payload, Some(topic)).await
            }
            ["stats"] => stats(handle).await,
            ["too-long"] => Err(format!("line longer than {MAX_LINE_BYTES} bytes")),
            _ => Err(format!(
                "unknown command {:?} (publish <content topic> <payload hex> [<pubsub topic>], stats, quit)",
                words.first().copied().unwrap_or_default()
            )),
        };
        match result {
            Ok(line) => emit(&line),
            Err(e) => emit(&format!("error {{\"error\":{}}}", json_str(&e))),
        }
        Flow::Continue
    }

    async fn publish(
        &self,
        handle: &NetHandle<WakuNode>,
        content: &str,
        payload: &str,
        topic: Option<&str>,
    ) -> Result<String, String> {
        let content =
            ContentTopic::new(content).map_err(|e| format!("content topic {content:?}: {e}"))?;
        let payload = hex::decode(payload).map_err(|e| format!("payload hex: {e}"))?;
        let topic = match topic {
            Some(t) => PubsubTopic::new(t).map_err(|e| format!("pubsub topic {t:?}: {e}"))?,
            None => {
                let n = self
                    .autoshard
                    .ok_or("no pubsub topic given and --autoshard is off")?;
                waku_core::topic::autoshard(&content, self.cluster, n)
                    .map_err(|e| format!("autosharding: {e}"))?
            }
        };
        let shown = topic.clone();
        let published = handle
            .call(move |n: &mut WakuNode, now| {
                let m = WakuMessage::new(content, payload).with_timestamp(now.unix_nanos);
                n.publish(now, Some(topic), m)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        match published {
            Published::Relayed { hash, peers } => Ok(format!(
                "published {{\"hash\":\"{}\",\"pubsub_topic\":{},\"peers\":{peers}}}",
                hex::encode(hash.as_ref()),
                json_str(shown.as_ref())
            )),
            other => Err(format!("not relayed: {other:?}")),
        }
    }
}

async fn stats(handle: &NetHandle<WakuNode>) -> Result<String, String> {
    let (relayed, store) = super::snapshot(handle)
        .await
        .ok_or("the driver has stopped")?;
    let mut line = format!("stats {{\"relayed\":{relayed}");
    if let Some((archived, queries, stored)) = store {
        let _ = write!(
            line,
            ",\"archived\":{archived},\"queries_served\":{queries},\"stored\":{stored}"
        );
    }
    line.push('}');
    Ok(line)
}

/// The next input line; pending forever without `--script`, `None` at the end of input.
pub(crate) async fn next_line(script: &mut Option<Script>) -> Option<String> {
    match script {
        Some(s) => s.lines.recv().await,
        None => std::future::pending().await,
    }
}

fn emit(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_str("plain"), "\"plain\"");
        assert_eq!(json_str("a\"b\\c\nd\u{1}"), "\"a\\\"b\\\\c\\nd\\u0001\"");
    }
}
