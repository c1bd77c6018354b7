//! Simulation figures: bytes on the wire per delivered message and epochs to full delivery, at
//! 0, 10, 30 and 50% loss, in batch and interactive mode.
//!
//! `cargo bench -p mvds --bench sim`
//!
//! One node sends 1,000 messages of 1 KiB to another, 10 per epoch; every payload either way
//! is lost with the given probability. "wire B/msg" is every payload byte the two nodes put on
//! the network (messages, offers, requests, acks, retransmissions and lost payloads included)
//! divided by the messages delivered; the floor is the 1,024-byte body itself. Encryption and
//! Waku envelopes, added by the layers below, are not counted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mvds::sim::{NetConfig, Sim};
use mvds::{Config, GroupId, Mode};

const MESSAGES: u32 = 1_000;
const BODY: usize = 1024;
const PER_EPOCH: u32 = 10;
/// The target: at most 1.2 KiB on the wire per delivered 1 KiB message in batch mode
/// at 0% loss.
const TARGET: f64 = 1.2 * 1024.0;

struct Figures {
    bytes_per_msg: f64,
    epochs_to_delivery: u64,
    epochs_to_quiet: u64,
    payloads: u64,
}

fn run(config: &Config, mode: Mode, loss: f64, seed: u64) -> Figures {
    let g = GroupId([1; 32]);
    let net = NetConfig {
        loss,
        ..NetConfig::default()
    };
    let mut sim = Sim::new(seed, 2, config.clone(), net);
    sim.join(g, &[0, 1]);
    let start = sim.epoch();
    for i in 0..MESSAGES {
        let mut body = i.to_le_bytes().to_vec();
        body.resize(BODY, 0x5a);
        sim.send(0, g, body, mode).unwrap();
        if i % PER_EPOCH == PER_EPOCH - 1 {
            sim.step();
        }
    }
    sim.run_until(10_000_000, |s| s.ledger.all_delivered())
        .expect("delivery");
    let delivered_at = sim.epoch();
    sim.run_until_quiet(10_000_000).expect("quiet");
    assert!(sim.ledger.violations.is_empty());
    assert_eq!(sim.ledger.duplicates(), 0);
    assert_eq!(sim.ledger.delivered_once(), MESSAGES as usize);
    Figures {
        bytes_per_msg: sim.stats.bytes_sent as f64 / f64::from(MESSAGES),
        epochs_to_delivery: delivered_at - start,
        epochs_to_quiet: sim.epoch() - start,
        payloads: sim.stats.payloads_sent,
    }
}

fn table(name: &str, config: &Config) -> f64 {
    println!("\n{name}: {config:?}");
    println!(
        "{:<12} {:>5} {:>11} {:>8} {:>16} {:>14} {:>9}",
        "mode", "loss", "wire B/msg", "x floor", "epochs→delivered", "epochs→acked", "payloads"
    );
    let mut batch_zero = 0.0;
    for mode in [Mode::Batch, Mode::Interactive] {
        for loss in [0.0, 0.1, 0.3, 0.5] {
            // Average over three seeds.
            let runs: Vec<Figures> = (1..=3).map(|s| run(config, mode, loss, s)).collect();
            let n = runs.len() as f64;
            let bytes = runs.iter().map(|f| f.bytes_per_msg).sum::<f64>() / n;
            let deliv = runs
                .iter()
                .map(|f| f.epochs_to_delivery as f64)
                .sum::<f64>()
                / n;
            let quiet = runs.iter().map(|f| f.epochs_to_quiet as f64).sum::<f64>() / n;
            let payloads = runs.iter().map(|f| f.payloads as f64).sum::<f64>() / n;
            if mode == Mode::Batch && loss == 0.0 {
                batch_zero = bytes;
            }
            println!(
                "{:<12} {:>4.0}% {:>11.1} {:>8.3} {:>16.0} {:>14.0} {:>9.0}",
                format!("{mode:?}"),
                loss * 100.0,
                bytes,
                bytes / BODY as f64,
                deliv,
                quiet,
                payloads
            );
        }
    }
    batch_zero
}

fn main() {
    // `cargo test --benches` runs this with `--bench` absent; keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        let f = run(&Config::default(), Mode::Batch, 0.0, 1);
        assert!(f.bytes_per_msg <= TARGET);
        return;
    }
    println!(
        "{MESSAGES} messages of {BODY} B from one node to another, {PER_EPOCH} per epoch; \
         mean of seeds 1..=3"
    );
    let default = table(
        "Config::default() (status-go schedule, 1 h cap)",
        &Config::default(),
    );
    table(
        "fast schedule",
        &Config {
            backoff_base: 2,
            backoff_cap: 32,
            backoff_jitter: 4,
            online_jitter: 2,
            max_send_count: None,
        },
    );
    println!(
        "\nbatch mode, 0% loss: {default:.1} B on the wire per delivered 1 KiB message \
         (target ≤ {TARGET:.1}): {}",
        if default <= TARGET { "met" } else { "NOT met" }
    );
}
