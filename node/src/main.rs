//! `status-node`: the status-rs binary. Its commands (demo, run, chat, keygen) arrive with the
//! transports issue; until then it only says so.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    eprintln!("status-node: no commands yet (the demo lands with the transports issue)");
    std::process::ExitCode::FAILURE
}
