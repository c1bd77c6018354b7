//! Content types through the whole stack: an image large enough to be segmented, audio, a
//! sticker, reactions and their retraction; and the periodic bundle publication.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod rig;

use std::time::Duration;

use payloads::chat::{Audio, AudioFormat, Content, Emoji, Image, ImageFormat, Sticker};
use payloads::messenger::{ChatId, Draft, MessengerConfig, MessengerEvent};
use rand_core::Rng;
use rig::Net;
use waku_core::topic::status::StatusTopic;

#[test]
fn images_audio_stickers_reactions() {
    let mut net = Net::new(0xc0_47e47);
    // A smaller network message size, so that a 100 KiB image must be segmented.
    let config = MessengerConfig {
        max_message_size: 64 * 1024,
        ..MessengerConfig::default()
    };
    let f = net.add_full_node(&config);
    let (alice, _) = net.add_messenger(config.clone());
    let (bob, _) = net.add_messenger(config.clone());
    net.link(alice, f);
    net.link(bob, f);
    net.run_for(Duration::from_secs(5));
    let bob_key = *net.messenger(bob).public_key();
    let alice_key = *net.messenger(alice).public_key();
    net.with(alice, |m, now| m.add_contact(now, bob_key));
    assert!(net.run_until(Duration::from_secs(60), |n| {
        n.messenger(alice).has_bundle(&bob_key)
    }));
    let to_bob = ChatId::OneToOne(bob_key);

    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut noise = vec![0u8; 100 * 1024 - png.len()];
    net.rng().fill_bytes(&mut noise);
    png.extend_from_slice(&noise);
    let image = Image {
        format: ImageFormat::Png,
        data: png.clone(),
        width: 640,
        height: 480,
        album_id: None,
        album_images_count: 0,
    };
    let img_id = net
        .with(alice, |m, now| {
            m.send(now, &to_bob, Draft::image(image, "a picture"))
        })
        .unwrap();
    let audio = Audio {
        format: AudioFormat::Amr,
        data: b"#!AMR\n\x3c\x48\xf5\x1f".to_vec(),
        duration_ms: 2_500,
    };
    net.with(alice, |m, now| {
        m.send(now, &to_bob, Draft::audio(audio.clone()))
    })
    .unwrap();
    let sticker = Sticker {
        hash: "QmSticker".into(),
        pack: 3,
    };
    net.with(alice, |m, now| {
        m.send(now, &to_bob, Draft::sticker(sticker.clone()))
    })
    .unwrap();
    let got = |n: &Net| -> Vec<Content> {
        n.events[bob]
            .iter()
            .filter_map(|e| match e {
                MessengerEvent::MessageReceived { entry, .. } => {
                    Some(entry.message.content.clone())
                }
                _ => None,
            })
            .collect()
    };
    assert!(
        net.run_until(Duration::from_secs(120), |n| got(n).len() == 3),
        "got {}",
        got(&net).len()
    );
    let contents = got(&net);
    assert!(
        contents
            .iter()
            .any(|c| matches!(c, Content::Image(i) if i.data == png && i.width == 640))
    );
    assert!(contents.contains(&Content::Audio(audio)));
    assert!(contents.contains(&Content::Sticker(sticker)));
    // The image travelled in segments: nothing the full node carried is near its size.
    let biggest = net.carried[f]
        .iter()
        .map(|m| m.payload.len())
        .max()
        .unwrap();
    assert!(net.carried[f].len() > 5);
    assert!(
        biggest < 64 * 1024,
        "a message of {biggest} bytes was not segmented"
    );

    // Bob reacts, changes his mind.
    let to_alice = ChatId::OneToOne(alice_key);
    net.with(bob, |m, now| {
        m.react(now, &to_alice, img_id, Emoji::Love, false)
    })
    .unwrap();
    net.with(bob, |m, now| {
        m.react(now, &to_alice, img_id, Emoji::ThumbsUp, false)
    })
    .unwrap();
    assert!(net.run_until(Duration::from_secs(120), |n| {
        n.messenger(alice).reactions(&to_bob, &img_id).len() == 2
    }));
    net.with(bob, |m, now| {
        m.react(now, &to_alice, img_id, Emoji::Love, true)
    })
    .unwrap();
    assert!(net.run_until(Duration::from_secs(120), |n| {
        let r = n.messenger(alice).reactions(&to_bob, &img_id);
        !r.contains_key(&Emoji::Love) && r.get(&Emoji::ThumbsUp) == Some(&1)
    }));
}

#[test]
fn bundle_is_published_on_start_and_periodically() {
    let mut net = Net::new(0xb0_0d1e);
    let config = MessengerConfig {
        bundle_interval: Duration::from_secs(3600),
        ..MessengerConfig::default()
    };
    let f = net.add_full_node(&config);
    let (alice, _) = net.add_messenger(config);
    net.link(alice, f);
    let key = *net.messenger(alice).public_key();
    let topic = StatusTopic::contact_code(key.ed25519_bytes())
        .content_topic()
        .as_str()
        .to_owned();
    net.run_for(Duration::from_secs(3 * 3600 + 60));
    let times: Vec<Duration> = net.originated[alice]
        .iter()
        .filter(|(_, t)| *t == topic)
        .map(|(d, _)| *d)
        .collect();
    assert_eq!(times.len(), 4, "published at {times:?}");
    assert!(times[0] < Duration::from_secs(5));
    for w in times.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_secs(3599) && gap <= Duration::from_secs(3601),
            "gap {gap:?}"
        );
    }
}
