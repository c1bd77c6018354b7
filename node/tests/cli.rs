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
    let o = run(&["account", "show"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--phrase-file"), "{}", stderr(&o));
}
