//! `status-node chat` (and `run --role light`): a Messenger on the TCP or libp2p transport
//! ([`crate::net`]), driven from a terminal or a pipe.
//!
//! The Messenger is a light node: it dials the `--peer` full nodes, sends through lightpush and
//! receives through filter, and on start fetches what it missed from their stores. Commands are
//! lines on standard input (see [`HELP`]); every event is one line on standard output that
//! starts with a fixed marker, so a script can drive a chat through a pipe:
//!
//! | line | meaning |
//! |---|---|
//! | `chat key: 0x…`, `three words: …` | our identity (printed first, then its QR code) |
//! | `<< [1:1] Sender Words: text` | a 1:1 message arrived (live or from a store) |
//! | `<< [#channel] Sender Words: text` | a public-chat message arrived |
//! | `.. [chat] Sender Words: text` | a message already in the local database |
//! | `>> sent [chat] id=…` | we sent a message |
//! | `>> delivered id=… to Words` | a contact acknowledged our message (MVDS ack) |
//! | `** status peers=N synced=B topics=N published=N` | connectivity changed (printed on change) |
//! | `** …` | other notices: peers up and down, contact requests, sessions, history fetches |
//! | `!! …` | a command failed |

use std::io::{self, BufRead, Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use payloads::account::Account;
use payloads::chat::Content;
use payloads::messenger::{
    ChatEntry, ChatId, Draft, Messenger, MessengerConfig, MessengerEvent, OpenError, PeerKey,
};
use payloads::storage::{MemoryStorage, Storage};
use payloads::verification::pseudonym;
use qrcode::QrCode;
use qrcode::render::unicode::Dense1x2;
use tokio::sync::mpsc;
use waku_core::enr::Enr;
use waku_core::net::Machine;
use x3dh::PublicIdentity;

use crate::cli::{ChatArgs, RunArgs, Transport};
use crate::driver;
use crate::net::{self, ListenAddr, NetConfig, NetError, NetEvent, NetHandle, PeerArg};

/// The command summary printed by `/help` (and in `status-node chat --help`).
pub(crate) const HELP: &str = "\
Commands (one per line; anything not starting with '/' is sent to the current chat):
  /add <chat key>            add a contact by chat key (0x...) and make it the current chat
  /join <channel>            join a public chat (#channel or channel) and make it current
  /leave <channel>           leave a public chat
  /chat <chat key|#channel>  switch the current chat
  /msg <chat key|#channel> <text>
                             send to a chat without switching to it
  /history                   show the current chat's messages from the local database
  /contacts                  list contacts with their three words
  /whoami                    show our chat key, three words and QR code
  /status                    show peers, filter sync and counters
  /help                      this list
  /quit                      leave (Ctrl-D and Ctrl-C too)";

/// How often the connectivity line is refreshed.
const STATUS_POLL: Duration = Duration::from_millis(250);

/// Longest input line accepted from standard input; longer lines are refused, not buffered.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024;

/// Largest seed phrase file read (a 24-word phrase is under 220 bytes).
const MAX_PHRASE_FILE_BYTES: u64 = 4096;

/// Peer records asked of each peer-exchange server.
const PX_REQUEST: u64 = 16;

/// Most service nodes dialled from one peer-exchange answer.
const MAX_PX_DIALS: usize = 4;

/// Input lines waiting for the chat loop.
const MAX_PENDING_LINES: usize = 64;

/// Why `chat` (or `run --role light`) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ChatError {
    /// The account could not be loaded.
    #[error("account: {0}")]
    Account(String),
    /// The Messenger could not open its storage.
    #[error("cannot open the messenger: {0}")]
    Open(#[from] OpenError),
    /// The transport failed to start or stopped.
    #[error("transport: {0}")]
    Transport(#[from] NetError),
    /// The OS random source failed.
    #[error("the operating system's random source failed: {0}")]
    Randomness(String),
    /// Standard output, or the runtime, failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// What a session needs besides the Messenger.
#[derive(Debug, Clone)]
struct Options {
    transport: Transport,
    peers: Vec<PeerArg>,
    listen: Vec<ListenAddr>,
    interactive: bool,
    qr: bool,
}

/// `status-node chat`.
pub(crate) fn chat(args: &ChatArgs) -> Result<(), ChatError> {
    if std::env::var_os("RUST_LOG").is_some() {
        driver::init_logging();
    }
    let opts = Options {
        transport: args.transport,
        peers: args.peers.clone(),
        listen: Vec::new(),
        interactive: true,
        qr: !args.no_qr,
    };
    open_and_run(args.data_dir.as_ref(), args.phrase_file.as_ref(), opts)
}

/// `status-node run --role light`: the same Messenger without a prompt; it logs what arrives.
pub(crate) fn run_light(args: &RunArgs) -> Result<(), ChatError> {
    let opts = Options {
        transport: args.transport,
        peers: args.peers.clone(),
        listen: args.listen.clone(),
        interactive: false,
        qr: false,
    };
    open_and_run(args.data_dir.as_ref(), args.phrase_file.as_ref(), opts)
}

/// Opens the account and its storage, then runs the session: the account in the data
/// directory with its encrypted database, or (with `--phrase-file`) an account from a phrase
/// with nothing kept on disk.
fn open_and_run(
    data_dir: Option<&PathBuf>,
    phrase_file: Option<&PathBuf>,
    opts: Options,
) -> Result<(), ChatError> {
    let seed = driver::os_seed().map_err(ChatError::Randomness)?;
    let config = MessengerConfig {
        // Ask bootstrap nodes for service nodes (dialled on libp2p, see `discovered`).
        peer_exchange: Some(PX_REQUEST),
        ..MessengerConfig::default()
    };
    let rt = driver::runtime()?;
    if let Some(path) = phrase_file {
        let account = load_account(path)?;
        let messenger: Messenger<MemoryStorage, mvds::MemoryStore<PeerKey>> = Messenger::new(
            config,
            &account,
            MemoryStorage::new(),
            mvds::MemoryStore::new(),
            seed,
            driver::clock(),
        )?;
        drop(account);
        return rt.block_on(session(messenger, opts));
    }
    let dir = data_dir
        .cloned()
        .unwrap_or_else(crate::account::default_data_dir);
    let opened =
        crate::account::open_data_dir(&dir).map_err(|e| ChatError::Account(e.to_string()))?;
    let (storage, sync) = opened
        .open_stores()
        .map_err(|e| ChatError::Account(e.to_string()))?;
    let messenger = Messenger::new(
        config,
        &opened.account,
        storage,
        sync,
        seed,
        driver::clock(),
    )?;
    drop(opened);
    rt.block_on(session(messenger, opts))
}

/// An account from a seed phrase file (no passphrase), for `--phrase-file`.
fn load_account(path: &PathBuf) -> Result<Account, ChatError> {
    let read_err = |e: io::Error| ChatError::Account(format!("{}: {e}", path.display()));
    let mut bytes = zeroize::Zeroizing::new(Vec::new());
    std::fs::File::open(path)
        .map_err(read_err)?
        .take(MAX_PHRASE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(read_err)?;
    if bytes.len() as u64 > MAX_PHRASE_FILE_BYTES {
        return Err(ChatError::Account(format!(
            "{} is larger than {MAX_PHRASE_FILE_BYTES} bytes; is it really a seed phrase?",
            path.display()
        )));
    }
    let phrase = std::str::from_utf8(&bytes)
        .map_err(|_| ChatError::Account(format!("{} is not UTF-8 text", path.display())))?;
    Account::restore(phrase.trim(), "").map_err(|e| ChatError::Account(e.to_string()))
}

/// One parsed input line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Input {
    Add(PublicIdentity),
    Join(String),
    Leave(String),
    Switch(ChatId),
    Msg(ChatId, String),
    Say(String),
    History,
    Contacts,
    WhoAmI,
    Status,
    Help,
    Quit,
    Nothing,
}

fn parse_target(s: &str) -> Result<ChatId, String> {
    if let Some(name) = s.strip_prefix('#') {
        if name.is_empty() {
            return Err("a channel name follows '#'".into());
        }
        return Ok(ChatId::Public(name.to_owned()));
    }
    PublicIdentity::from_chat_key(s)
        .map(ChatId::OneToOne)
        .map_err(|e| format!("{s:?} is neither a chat key (0x...) nor a #channel: {e}"))
}

fn channel_name(s: &str) -> Result<String, String> {
    let name = s.strip_prefix('#').unwrap_or(s);
    if name.is_empty() {
        Err("give a channel name".into())
    } else {
        Ok(name.to_owned())
    }
}

fn parse_input(line: &str) -> Result<Input, String> {
    let line = line.trim();
    if line.is_empty() {
        return Ok(Input::Nothing);
    }
    let Some(cmd) = line.strip_prefix('/') else {
        return Ok(Input::Say(line.to_owned()));
    };
    let (name, rest) = cmd.split_once(char::is_whitespace).unwrap_or((cmd, ""));
    let rest = rest.trim();
    match name {
        "add" => PublicIdentity::from_chat_key(rest)
            .map(Input::Add)
            .map_err(|e| format!("/add needs a chat key (0x...): {e}")),
        "join" => channel_name(rest).map(Input::Join),
        "leave" => channel_name(rest).map(Input::Leave),
        "chat" => parse_target(rest).map(Input::Switch),
        "msg" => {
            let (target, text) = rest
                .split_once(char::is_whitespace)
                .ok_or("/msg needs a chat key or #channel, then the text")?;
            let text = text.trim();
            if text.is_empty() {
                return Err("/msg needs some text".into());
            }
            Ok(Input::Msg(parse_target(target)?, text.to_owned()))
        }
        "history" => Ok(Input::History),
        "contacts" => Ok(Input::Contacts),
        "whoami" => Ok(Input::WhoAmI),
        "status" => Ok(Input::Status),
        "help" => Ok(Input::Help),
        "quit" | "exit" => Ok(Input::Quit),
        other => Err(format!("unknown command /{other}; /help lists them")),
    }
}

/// A chat's label in output lines: `1:1 Words` for a contact, `#name` for a public chat.
fn label(chat: &ChatId) -> String {
    match chat {
        ChatId::OneToOne(k) => format!("1:1 {}", pseudonym(k)),
        ChatId::Public(n) => format!("#{n}"),
        ChatId::Group(g) => format!("group {g}"),
    }
}

/// The label of incoming lines: `1:1` or `#name` (the sender follows).
fn short_label(chat: &ChatId) -> String {
    match chat {
        ChatId::OneToOne(_) => "1:1".to_owned(),
        other => label(other),
    }
}

fn entry_text(entry: &ChatEntry) -> String {
    let text = entry.message.text.replace(['\n', '\r'], " ");
    match &entry.message.content {
        Content::Text => text,
        Content::Sticker(_) => format!("(sticker) {text}"),
        Content::Image(_) => format!("(image) {text}"),
        Content::Audio(_) => format!("(audio) {text}"),
        _ => format!("(other content) {text}"),
    }
}

fn short_id(id: &payloads::MessageId) -> String {
    driver::hex(id.as_bytes().get(..6).unwrap_or_default())
}

/// Writes lines to standard output, flushing each (a pipe sees every line at once).
struct Out;

impl Out {
    fn line(&self, s: impl AsRef<str>) {
        let mut out = io::stdout().lock();
        let _ = writeln!(out, "{}", s.as_ref());
        let _ = out.flush();
    }
}

/// The connectivity summary printed on change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Status {
    peers: usize,
    synced: bool,
    topics: usize,
    published: u64,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "** status peers={} synced={} topics={} published={}",
            self.peers, self.synced, self.topics, self.published
        )
    }
}

fn status_of<S: Storage, M: mvds::SyncStore<PeerKey>>(m: &Messenger<S, M>) -> Status {
    let waku = m.waku();
    let filter = waku.filter_client();
    Status {
        peers: waku.peers().count(),
        synced: filter.service_peer().is_some() && filter.is_synced(),
        topics: filter.subscriptions().count(),
        published: m.stats().published,
    }
}

fn identity_lines(me: &PublicIdentity, qr: bool) -> Vec<String> {
    let key = me.to_chat_key();
    let mut lines = vec![
        format!("chat key: {key}"),
        format!("three words: {}", pseudonym(me)),
    ];
    if qr {
        match QrCode::new(key.as_bytes()) {
            Ok(code) => {
                let art = code
                    .render::<Dense1x2>()
                    .dark_color(Dense1x2::Light)
                    .light_color(Dense1x2::Dark)
                    .build();
                lines.extend(art.lines().map(str::to_owned));
            }
            Err(e) => lines.push(format!("!! no QR code: {e}")),
        }
    }
    lines
}

/// Reads standard input on a thread (blocking reads) and hands lines to the loop; `None` at
/// end of input.
fn spawn_stdin() -> mpsc::Receiver<Result<String, String>> {
    let (tx, rx) = mpsc::channel(MAX_PENDING_LINES);
    std::thread::spawn(move || {
        let stdin = io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut buf = Vec::new();
            let mut limited = (&mut lock).take(MAX_LINE_BYTES as u64 + 1);
            match limited.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let item = if buf.len() > MAX_LINE_BYTES {
                // Skip the rest of the over-long line.
                let mut rest = Vec::new();
                let _ = lock.read_until(b'\n', &mut rest);
                Err(format!("line longer than {MAX_LINE_BYTES} bytes ignored"))
            } else {
                String::from_utf8(buf).map_err(|_| "input is not UTF-8; line ignored".to_owned())
            };
            if tx.blocking_send(item).is_err() {
                return;
            }
        }
    });
    rx
}

async fn session<S, M>(messenger: Messenger<S, M>, opts: Options) -> Result<(), ChatError>
where
    S: Storage + Send + 'static,
    M: mvds::SyncStore<PeerKey> + Send + 'static,
{
    let out = Out;
    let me = *messenger.public_key();
    for l in identity_lines(&me, opts.qr) {
        out.line(l);
    }
    // What the local database already holds.
    let history: Vec<(ChatId, ChatEntry)> = messenger
        .chats()
        .flat_map(|c| messenger.messages(c).map(move |e| (c.clone(), e.clone())))
        .collect();
    for (chat, e) in &history {
        out.line(format!(
            ".. [{}] {}: {}",
            short_label(chat),
            pseudonym(&e.sender),
            entry_text(e)
        ));
    }
    // A light node needs no lasting transport identity: a fresh key per session.
    let cfg = NetConfig {
        transport: opts.transport,
        listen: opts.listen.clone(),
        peers: opts.peers.clone(),
        secret: None,
        record: None,
    };
    let mut node = net::start(cfg, messenger).await?;
    for a in node.addresses() {
        out.line(format!("listening {a}"));
    }
    tracing::info!(peers = opts.peers.len(), "messenger started");
    out.line(format!(
        "** dialling {} peer(s); /help lists the commands",
        opts.peers.len()
    ));
    let handle = node.handle();
    let mut lines = if opts.interactive {
        Some(spawn_stdin())
    } else {
        None
    };
    // The chat of the latest message in the database stays current across restarts.
    let mut current: Option<ChatId> = history
        .iter()
        .max_by_key(|(_, e)| e.message.timestamp_ms)
        .map(|(c, _)| c.clone());
    if let Some(c) = &current {
        out.line(format!("** current chat: {}", label(c)));
    }
    let mut last_status: Option<Status> = None;
    let mut poll = tokio::time::interval(STATUS_POLL);
    let stop = driver::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            line = next_line(&mut lines) => {
                let Some(line) = line else { break };
                let input = match line.and_then(|l| parse_input(&l)) {
                    Ok(i) => i,
                    Err(e) => {
                        out.line(format!("!! {e}"));
                        continue;
                    }
                };
                if input == Input::Quit {
                    break;
                }
                command(&handle, &out, &mut current, input, &mut last_status).await;
            }
            e = node.next_event() => match e {
                Some(NetEvent::Machine(MessengerEvent::PeersDiscovered { from, records })) => {
                    discovered(&handle, &out, from, &records).await;
                }
                Some(e) => print_event(&out, e, &me),
                None => break,
            },
            _ = poll.tick() => {
                if let Ok(s) = handle.call(|m: &mut Messenger<S, M>, _| status_of(m)).await
                    && last_status != Some(s)
                {
                    out.line(s.to_string());
                    last_status = Some(s);
                }
            }
        }
    }
    // Drain what already arrived, then stop: every peer is told, the Messenger records when
    // it went offline (so the next start fetches what it missed) and its storage is closed.
    while let Some(e) = node.try_next_event() {
        print_event(&out, e, &me);
    }
    let messenger = node.shutdown().await?;
    drop(messenger);
    out.line("** bye");
    Ok(())
}

/// Dials the service nodes (lightpush, filter and store in their ENR) a peer-exchange server
/// named, up to [`MAX_PX_DIALS`].
async fn discovered<M: Machine + Send + 'static>(
    handle: &NetHandle<M>,
    out: &Out,
    from: waku_core::net::PeerId,
    records: &[Vec<u8>],
) {
    let services: Vec<Enr> = records
        .iter()
        .filter_map(|r| Enr::decode(r).ok())
        .filter(|e| {
            e.waku2()
                .is_some_and(|w| w.lightpush() && w.filter() && w.store())
        })
        .collect();
    let mut dialled = 0;
    for e in services.iter().take(MAX_PX_DIALS) {
        match handle.dial_record(e).await {
            Ok(true) => dialled += 1,
            Ok(false) => {}
            Err(err) => tracing::debug!(%err, "dial from peer exchange failed"),
        }
    }
    out.line(format!(
        "** peer exchange: {} record(s) from {from}, {} service node(s), dialling {dialled}",
        records.len(),
        services.len()
    ));
}

async fn next_line(
    lines: &mut Option<mpsc::Receiver<Result<String, String>>>,
) -> Option<Result<String, String>> {
    match lines {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn command<S, M>(
    handle: &NetHandle<Messenger<S, M>>,
    out: &Out,
    current: &mut Option<ChatId>,
    input: Input,
    last_status: &mut Option<Status>,
) where
    S: Storage + Send + 'static,
    M: mvds::SyncStore<PeerKey> + Send + 'static,
{
    type Msgr<S, M> = Messenger<S, M>;
    let result: Result<Vec<String>, NetError> = match input {
        Input::Nothing | Input::Quit => Ok(vec![]),
        Input::Help => Ok(HELP.lines().map(str::to_owned).collect()),
        Input::Add(key) => {
            *current = Some(ChatId::OneToOne(key));
            handle
                .call(move |m: &mut Msgr<S, M>, now| {
                    m.add_contact(now, key);
                    vec![format!(
                        "** added {} ({}); current chat: {}",
                        key.to_chat_key(),
                        pseudonym(&key),
                        label(&ChatId::OneToOne(key))
                    )]
                })
                .await
        }
        Input::Join(name) => {
            let r = handle
                .call(move |m: &mut Msgr<S, M>, now| {
                    m.join_public_chat(now, &name).map_err(|e| e.to_string())
                })
                .await;
            match r {
                Ok(Ok(chat)) => {
                    let l = format!("** joined {}; it is the current chat", label(&chat));
                    *current = Some(chat);
                    Ok(vec![l])
                }
                Ok(Err(e)) => Ok(vec![format!("!! cannot join: {e}")]),
                Err(e) => Err(e),
            }
        }
        Input::Leave(name) => {
            if current.as_ref() == Some(&ChatId::Public(name.clone())) {
                *current = None;
            }
            handle
                .call(move |m: &mut Msgr<S, M>, now| {
                    m.leave_public_chat(now, &name);
                    vec![format!("** left #{name}")]
                })
                .await
        }
        Input::Switch(chat) => {
            let l = format!("** current chat: {}", label(&chat));
            *current = Some(chat);
            Ok(vec![l])
        }
        Input::Msg(chat, text) => send(handle, chat, text).await,
        Input::Say(text) => match current.clone() {
            Some(chat) => send(handle, chat, text).await,
            None => Ok(vec![
                "!! no current chat: /add a contact, /join a channel or /chat first".to_owned(),
            ]),
        },
        Input::History => match current.clone() {
            Some(chat) => {
                handle
                    .call(move |m: &mut Msgr<S, M>, _| {
                        let mut v: Vec<String> = m
                            .messages(&chat)
                            .map(|e| {
                                format!(
                                    ".. [{}] {}: {}",
                                    short_label(&chat),
                                    pseudonym(&e.sender),
                                    entry_text(e)
                                )
                            })
                            .collect();
                        v.push(format!("** {} message(s) in {}", v.len(), label(&chat)));
                        v
                    })
                    .await
            }
            None => Ok(vec!["!! no current chat".to_owned()]),
        },
        Input::Contacts => {
            handle
                .call(|m: &mut Msgr<S, M>, _| {
                    let mut v: Vec<String> = m
                        .contacts()
                        .map(|k| format!("** contact {} {}", k.to_chat_key(), pseudonym(k)))
                        .collect();
                    if v.is_empty() {
                        v.push("** no contacts yet: /add <chat key>".to_owned());
                    }
                    v
                })
                .await
        }
        Input::WhoAmI => {
            handle
                .call(|m: &mut Msgr<S, M>, _| identity_lines(m.public_key(), true))
                .await
        }
        Input::Status => {
            *last_status = None;
            handle
                .call(|m: &mut Msgr<S, M>, _| {
                    let s = m.stats();
                    vec![format!(
                        "** counters received={} published={} publish_failed={} undecryptable={}",
                        s.waku_received, s.published, s.publish_failed, s.undecryptable
                    )]
                })
                .await
        }
    };
    match result {
        Ok(lines) => {
            for l in lines {
                out.line(l);
            }
        }
        Err(e) => out.line(format!("!! {e}")),
    }
}

async fn send<S, M>(
    handle: &NetHandle<Messenger<S, M>>,
    chat: ChatId,
    text: String,
) -> Result<Vec<String>, NetError>
where
    S: Storage + Send + 'static,
    M: mvds::SyncStore<PeerKey> + Send + 'static,
{
    handle
        .call(
            move |m: &mut Messenger<S, M>, now| match m.send(now, &chat, Draft::text(text)) {
                Ok(id) => vec![format!(">> sent [{}] id={}", label(&chat), short_id(&id))],
                Err(e) => vec![format!("!! not sent to {}: {e}", label(&chat))],
            },
        )
        .await
}

fn print_event(out: &Out, e: NetEvent<MessengerEvent>, me: &PublicIdentity) {
    let line = match e {
        NetEvent::PeerUp { peer, .. } => format!("** connected to {peer}"),
        NetEvent::PeerDown { peer, reason } => {
            format!("** disconnected from {peer} ({reason})")
        }
        NetEvent::DialFailed { target, error } => {
            tracing::debug!(%target, %error, "dial failed");
            return;
        }
        NetEvent::Machine(e) => match e {
            MessengerEvent::MessageReceived { chat, entry } => {
                if entry.outgoing || entry.sender == *me {
                    return;
                }
                format!(
                    "<< [{}] {}: {}",
                    short_label(&chat),
                    pseudonym(&entry.sender),
                    entry_text(&entry)
                )
            }
            MessengerEvent::Delivered { id, to, .. } => {
                format!(">> delivered id={} to {}", short_id(&id), pseudonym(&to))
            }
            MessengerEvent::SendExpired { id, to, .. } => {
                format!(
                    "!! gave up sending id={} to {}",
                    short_id(&id),
                    pseudonym(&to)
                )
            }
            MessengerEvent::ContactRequest { from } => format!(
                "** contact request from {} ({}); /add it to reply",
                from.to_chat_key(),
                pseudonym(&from)
            ),
            MessengerEvent::BundleReceived { from } => {
                format!("** key bundle of {} received", pseudonym(&from))
            }
            MessengerEvent::SessionEstablished { with } => {
                format!("** secure session with {} established", pseudonym(&with))
            }
            MessengerEvent::BackfillFinished { messages, ok } => format!(
                "** history fetched from a store: {messages} message(s){}",
                if ok { "" } else { " (query failed)" }
            ),
            MessengerEvent::StorageFailed(e) => format!("!! storage failed: {e}"),
            MessengerEvent::GroupMembershipChanged { chat_id, .. } => {
                format!("** group {chat_id} changed")
            }
            MessengerEvent::DisconnectPeer { peer } => {
                tracing::debug!(%peer, "the messenger asks to drop a peer");
                return;
            }
            _ => return,
        },
    };
    tracing::debug!("{line}");
    out.line(line);
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0x3b6a27bcceb6a42d62a3a8d02a6f0d73653215771de243a63ac048a18b59da29";

    #[test]
    fn commands_parse() {
        let key = PublicIdentity::from_chat_key(KEY).unwrap();
        assert_eq!(parse_input("/add 0x00"), parse_input("/add 0x00"));
        assert!(parse_input("/add 0x00").is_err());
        assert_eq!(parse_input(&format!("/add {KEY}")), Ok(Input::Add(key)));
        assert_eq!(
            parse_input("/join #status"),
            Ok(Input::Join("status".into()))
        );
        assert_eq!(
            parse_input("/join status"),
            Ok(Input::Join("status".into()))
        );
        assert!(parse_input("/join #").is_err());
        assert_eq!(
            parse_input(&format!("/msg {KEY}  hello there ")),
            Ok(Input::Msg(ChatId::OneToOne(key), "hello there".into()))
        );
        assert_eq!(
            parse_input("/msg #news hi"),
            Ok(Input::Msg(ChatId::Public("news".into()), "hi".into()))
        );
        assert!(parse_input("/msg #news").is_err());
        assert!(parse_input("/msg bob hi").is_err());
        assert_eq!(parse_input("  hi  "), Ok(Input::Say("hi".into())));
        assert_eq!(parse_input(""), Ok(Input::Nothing));
        assert_eq!(parse_input("/quit"), Ok(Input::Quit));
        assert!(parse_input("/frobnicate").is_err());
    }

    #[test]
    fn identity_has_key_words_and_qr() {
        let key = PublicIdentity::from_chat_key(KEY).unwrap();
        let lines = identity_lines(&key, true);
        assert_eq!(lines[0], format!("chat key: {KEY}"));
        assert_eq!(lines[1], format!("three words: {}", pseudonym(&key)));
        // A QR code of a 66-character key: at least 25 modules plus the quiet zone, two
        // rows per line.
        assert!(lines.len() > 2 + 12, "{}", lines.len());
        assert_eq!(identity_lines(&key, false).len(), 2);
    }
}
