//! Runs the built `status-node` binary and checks what it prints.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_status-node");
const PHRASE: &str =
    "abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about";

fn run(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn run_stdin(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

/// A file in a per-test scratch directory under the target dir.
fn scratch_file(test: &str, name: &str, contents: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{test}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The value after `label` on its line.
fn field(text: &str, label: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label:?} in output:\n{text}"))
        .trim()
        .to_owned()
}

/// The seed phrase: the line after "Seed phrase (N words):".
fn phrase_of(text: &str) -> String {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with("Seed phrase ("))
        .unwrap_or_else(|| panic!("no seed phrase in output:\n{text}"));
    lines.next().unwrap().trim().to_owned()
}

fn is_chat_key(s: &str) -> bool {
    s.len() == 66
        && s.starts_with("0x")
        && s[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn help_lists_commands_and_examples() {
    let o = run(&["--help"]);
    assert!(o.status.success());
    let text = stdout(&o);
    for needle in [
        "keygen",
        "account",
        "Examples:",
        "status-node keygen --words 24",
    ] {
        assert!(
            text.contains(needle),
            "{needle:?} missing from help:\n{text}"
        );
    }
}

#[test]
fn keygen_prints_identity_warning_and_phrase_that_restores_it() {
    for (flag, words) in [("12", 12), ("24", 24)] {
        let o = run(&["keygen", "--words", flag]);
        assert!(o.status.success(), "stderr: {}", stderr(&o));
        let text = stdout(&o);
        let key = field(&text, "Chat key:");
        assert!(is_chat_key(&key), "{key}");
        let three = field(&text, "Three words:");
        assert_eq!(three.split(' ').count(), 3, "{three}");
        let safety = field(&text, "Safety number:");
        assert_eq!(safety.split(' ').count(), 6, "{safety}");
        assert!(text.contains("WARNING"), "{text}");
        let phrase = phrase_of(&text);
        assert_eq!(phrase.split(' ').count(), words, "{phrase}");

        // The printed phrase restores the printed identity.
        let file = scratch_file(
            "keygen",
            &format!("phrase-{words}.txt"),
            &format!("{phrase}\n"),
        );
        let shown = run(&["account", "show", "--phrase-file", file.to_str().unwrap()]);
        assert!(shown.status.success(), "stderr: {}", stderr(&shown));
        let shown = stdout(&shown);
        assert_eq!(field(&shown, "Chat key:"), key);
        assert_eq!(field(&shown, "Three words:"), three);
        assert_eq!(field(&shown, "Safety number:"), safety);
    }
}

#[test]
fn two_keygens_differ() {
    let a = stdout(&run(&["keygen"]));
    let b = stdout(&run(&["keygen"]));
    assert_ne!(field(&a, "Chat key:"), field(&b, "Chat key:"));
    assert_ne!(phrase_of(&a), phrase_of(&b));
}

#[test]
fn show_is_deterministic_and_prints_nothing_secret() {
    let file = scratch_file("show", "phrase.txt", &format!("  {PHRASE}  \n"));
    let a = run(&["account", "show", "--phrase-file", file.to_str().unwrap()]);
    let b = run_stdin(&["account", "show", "--phrase-file", "-"], PHRASE);
    assert!(a.status.success(), "stderr: {}", stderr(&a));
    assert!(b.status.success(), "stderr: {}", stderr(&b));
    assert_eq!(stdout(&a), stdout(&b));
    let text = stdout(&a);
    assert!(is_chat_key(&field(&text, "Chat key:")));
    assert!(!text.contains("abandon"), "phrase leaked:\n{text}");
    assert!(!text.to_lowercase().contains("seed phrase"), "{text}");
}

#[test]
fn passphrase_changes_the_account() {
    let phrase = scratch_file("pass", "phrase.txt", PHRASE);
    let pass = scratch_file("pass", "pass.txt", "correct horse\n");
    let plain = stdout(&run(&[
        "account",
        "show",
        "--phrase-file",
        phrase.to_str().unwrap(),
    ]));
    let with = run(&[
        "account",
        "show",
        "--phrase-file",
        phrase.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert!(with.status.success(), "stderr: {}", stderr(&with));
    assert_ne!(
        field(&plain, "Chat key:"),
        field(&stdout(&with), "Chat key:")
    );
}

#[test]
fn bad_phrase_fails_with_a_clear_message() {
    // Wrong checksum: the last word of the standard vector replaced.
    let bad_checksum = PHRASE.replace("about", "abandon");
    let cases = [
        (bad_checksum.as_str(), "invalid seed phrase"),
        ("abandon abandon abandon", "12 or 24 words"),
        (
            "notaword abandon abandon abandon abandon abandon abandon abandon abandon abandon abandon about",
            "invalid seed phrase",
        ),
    ];
    for (phrase, message) in cases {
        let o = run_stdin(&["account", "show", "--phrase-file", "-"], phrase);
        assert!(!o.status.success(), "accepted {phrase:?}");
        let err = stderr(&o);
        assert!(err.contains(message), "{phrase:?}: {err}");
        assert!(stdout(&o).is_empty(), "printed an identity for {phrase:?}");
    }
}

#[test]
fn missing_and_oversized_files_are_errors() {
    let o = run(&[
        "account",
        "show",
        "--phrase-file",
        "/nonexistent/phrase.txt",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot read /nonexistent/phrase.txt"),
        "{}",
        stderr(&o)
    );

    let big = scratch_file("big", "phrase.txt", &"abandon ".repeat(1000));
    let o = run(&["account", "show", "--phrase-file", big.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("larger than 4096 bytes"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_usage_is_rejected() {
    let o = run(&["keygen", "--words", "13"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--words"), "{}", stderr(&o));
    // Without --phrase-file, `account show` reads the default data directory.
    let empty = scratch_dir("usage-empty");
    let o = run_env(&["account", "show"], &[("STATUS_NODE_DATA_DIR", &empty)]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no account in"), "{}", stderr(&o));
    let o = run(&[
        "account",
        "show",
        "--phrase-file",
        "x",
        "--data-dir",
        empty.to_str().unwrap(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot be used with"), "{}", stderr(&o));
}

/// A fresh per-test directory under the target dir (removed first); not created.
fn scratch_dir(test: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-dir-{test}"));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn run_env(args: &[&str], env: &[(&str, &std::path::Path)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("STATUS_NODE_DATA_DIR")
        .env_remove("XDG_DATA_HOME");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status,
        stdout(o),
        stderr(o)
    );
    stdout(o)
}

fn fail(o: &Output) -> String {
    assert!(!o.status.success(), "unexpected success:\n{}", stdout(o));
    stderr(o)
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn account_new_restore_show_round_trip() {
    let d1 = scratch_dir("round-trip-1");
    let d2 = scratch_dir("round-trip-2");
    let created = ok(&run(&[
        "account",
        "new",
        "--data-dir",
        d1.to_str().unwrap(),
    ]));
    let key = field(&created, "Chat key:");
    let three = field(&created, "Three words:");
    let safety = field(&created, "Safety number:");
    assert!(is_chat_key(&key), "{key}");
    let phrase = phrase_of(&created);
    assert_eq!(phrase.split(' ').count(), 12);
    assert!(created.contains("WARNING"), "{created}");
    assert!(d1.join("account.phrase").is_file());
    assert!(d1.join("messenger.db").is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&d1), 0o700);
        assert_eq!(mode(&d1.join("account.phrase")), 0o600);
        assert_eq!(mode(&d1.join("messenger.db")), 0o600);
    }
    // The database is encrypted: the phrase's words and SQLite's header are not in it.
    let db = std::fs::read(d1.join("messenger.db")).unwrap();
    assert!(!db.windows(15).any(|w| w == b"SQLite format 3"));

    // show: the same identity, nothing secret.
    let shown = ok(&run(&[
        "account",
        "show",
        "--data-dir",
        d1.to_str().unwrap(),
    ]));
    assert_eq!(field(&shown, "Chat key:"), key);
    assert_eq!(field(&shown, "Three words:"), three);
    assert_eq!(field(&shown, "Safety number:"), safety);
    assert!(shown.contains("SQLCipher"), "{shown}");
    for word in phrase.split(' ') {
        assert!(
            !shown.split_whitespace().any(|w| w == word),
            "phrase word {word:?} in:\n{shown}"
        );
    }

    // restore into another directory: the same chat key; restoring again is harmless.
    let file = scratch_file("round-trip", "phrase.txt", &format!("{phrase}\n"));
    for _ in 0..2 {
        let restored = ok(&run(&[
            "account",
            "restore",
            "--phrase-file",
            file.to_str().unwrap(),
            "--data-dir",
            d2.to_str().unwrap(),
        ]));
        assert_eq!(field(&restored, "Chat key:"), key);
        assert!(!restored.contains(&phrase), "{restored}");
    }
    let shown2 = ok(&run(&[
        "account",
        "show",
        "--data-dir",
        d2.to_str().unwrap(),
    ]));
    assert_eq!(field(&shown2, "Chat key:"), key);

    // 24 words.
    let d3 = scratch_dir("round-trip-3");
    let created = ok(&run(&[
        "account",
        "new",
        "--words",
        "24",
        "--data-dir",
        d3.to_str().unwrap(),
    ]));
    assert_eq!(phrase_of(&created).split(' ').count(), 24);
    assert_ne!(field(&created, "Chat key:"), key);
}

#[test]
fn restore_with_a_passphrase_keeps_it_for_later() {
    let d = scratch_dir("passphrase");
    let phrase = scratch_file("passphrase-dir", "phrase.txt", PHRASE);
    let pass = scratch_file("passphrase-dir", "pass.txt", "correct horse\n");
    let with = ok(&run(&[
        "account",
        "show",
        "--phrase-file",
        phrase.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]));
    ok(&run(&[
        "account",
        "restore",
        "--phrase-file",
        phrase.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
        "--data-dir",
        d.to_str().unwrap(),
    ]));
    let shown = ok(&run(&[
        "account",
        "show",
        "--data-dir",
        d.to_str().unwrap(),
    ]));
    assert_eq!(field(&shown, "Chat key:"), field(&with, "Chat key:"));
}

#[test]
fn show_reveals_the_phrase_only_with_confirmation() {
    let d = scratch_dir("reveal");
    let file = scratch_file("reveal", "phrase.txt", PHRASE);
    ok(&run(&[
        "account",
        "restore",
        "--phrase-file",
        file.to_str().unwrap(),
        "--data-dir",
        d.to_str().unwrap(),
    ]));
    let dir = d.to_str().unwrap();
    let err = fail(&run(&[
        "account",
        "show",
        "--data-dir",
        dir,
        "--reveal-phrase",
    ]));
    assert!(err.contains("--yes-i-understand"), "{err}");
    let err = fail(&run(&[
        "account",
        "show",
        "--data-dir",
        dir,
        "--yes-i-understand",
    ]));
    assert!(err.contains("--reveal-phrase"), "{err}");
    let shown = ok(&run(&[
        "account",
        "show",
        "--data-dir",
        dir,
        "--reveal-phrase",
        "--yes-i-understand",
    ]));
    assert!(shown.contains(PHRASE), "{shown}");
    assert!(is_chat_key(&field(&shown, "Chat key:")));
}

#[test]
fn default_data_dir_follows_the_environment() {
    let explicit = scratch_dir("env-explicit");
    let o = run_env(&["account", "new"], &[("STATUS_NODE_DATA_DIR", &explicit)]);
    let key = field(&ok(&o), "Chat key:");
    assert!(explicit.join("account.phrase").is_file());
    let xdg = scratch_dir("env-xdg");
    let o = run_env(&["account", "new"], &[("XDG_DATA_HOME", &xdg)]);
    ok(&o);
    assert!(xdg.join("status-node").join("account.phrase").is_file());
    let shown = ok(&run_env(
        &["account", "show"],
        &[("STATUS_NODE_DATA_DIR", &explicit)],
    ));
    assert_eq!(field(&shown, "Chat key:"), key);
}

#[test]
fn wrong_or_damaged_data_dirs_are_clear_errors() {
    let a = scratch_dir("wrong-a");
    let b = scratch_dir("wrong-b");
    let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
    ok(&run(&["account", "new", "--data-dir", a_s]));
    ok(&run(&["account", "new", "--data-dir", b_s]));

    // No account there.
    let none = scratch_dir("wrong-none");
    let err = fail(&run(&[
        "account",
        "show",
        "--data-dir",
        none.to_str().unwrap(),
    ]));
    assert!(err.contains("no account in"), "{err}");
    assert!(err.contains("account new"), "{err}");

    // A directory that already holds another account.
    let err = fail(&run(&["account", "new", "--data-dir", a_s]));
    assert!(err.contains("already holds an account"), "{err}");
    let other = scratch_file("wrong", "phrase.txt", PHRASE);
    let err = fail(&run(&[
        "account",
        "restore",
        "--phrase-file",
        other.to_str().unwrap(),
        "--data-dir",
        a_s,
    ]));
    assert!(err.contains("already holds an account"), "{err}");

    // Another account's database: the key does not open it.
    std::fs::copy(b.join("messenger.db"), a.join("messenger.db")).unwrap();
    let err = fail(&run(&["account", "show", "--data-dir", a_s]));
    assert!(err.contains("cannot open the database"), "{err}");
    assert!(err.contains("database key does not open"), "{err}");

    // A phrase swapped for another account's.
    std::fs::copy(b.join("account.phrase"), a.join("account.phrase")).unwrap();
    let err = fail(&run(&["account", "show", "--data-dir", a_s]));
    assert!(
        err.contains("does not match its recorded chat key"),
        "{err}"
    );

    // A phrase file others can read.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = b.join("account.phrase");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = fail(&run(&["account", "show", "--data-dir", b_s]));
        assert!(err.contains("can be read by other users"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }
}
