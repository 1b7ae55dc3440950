//! Fuzzing of the MQTT endpoint's packet decoding, on stable Rust, in the normal suite.
//!
//! The endpoint has no decode step of its own: it reads packets with rumqttc's MQTT 3.1.1
//! codec as every connection sets it up ([`skerry_cloud::mqtt::packet_codec`], packets of
//! at most 257 KiB). Valid packets of every kind the endpoint takes, mutated, and random
//! bytes go through it: no input may panic, and the most bytes held at one time while one
//! input is decoded must stay under 128 per byte of input plus 1 MiB, as for the frame
//! decoders (shared/tests/fuzz.rs). `SKERRY_FUZZ_CASES` sets the cases (default 64):
//! `cargo test -p skerry-cloud --test mqtt_packets -- --nocapture`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    Connect, Packet, PubAck, PubComp, PubRec, PubRel, Publish, Subscribe, Unsubscribe,
};
use tokio_util::codec::{Decoder, Encoder};

fn cases() -> u32 {
    std::env::var("SKERRY_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
}

/// Decodes every packet in `input`; the peak of bytes held, and how many packets decoded.
fn decode_all(input: &[u8]) -> (u64, usize) {
    let mut decoded = 0;
    let info = allocation_counter::measure(|| {
        let mut codec = skerry_cloud::mqtt::packet_codec();
        let mut buf = BytesMut::from(input);
        // Every packet takes at least two bytes, so this ends.
        while let Ok(Some(packet)) = codec.decode(&mut buf) {
            decoded += 1;
            std::hint::black_box(packet);
        }
    });
    let bound = 128 * input.len() as u64 + (1 << 20);
    assert!(
        info.bytes_max <= bound,
        "{} bytes held at once decoding {} bytes, over {bound}; input: {}",
        info.bytes_max,
        input.len(),
        hex::encode(&input[..input.len().min(256)])
    );
    (info.bytes_max, decoded)
}

fn packet() -> impl Strategy<Value = Packet> {
    let topic = "skerry/v1/nodes/[0-9a-f-]{1,36}/(up|down)";
    let qos = prop::sample::select(vec![QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]);
    prop_oneof![
        ("[a-z0-9-]{1,36}", any::<u16>()).prop_map(|(id, keep_alive)| {
            let mut c = Connect::new(id);
            c.keep_alive = keep_alive;
            Packet::Connect(c)
        }),
        (
            topic,
            qos.clone(),
            1u16..,
            prop::collection::vec(any::<u8>(), 0..2048)
        )
            .prop_map(|(t, q, pkid, payload)| {
                let mut p = Publish::from_bytes(t, q, Bytes::from(payload));
                if q != QoS::AtMostOnce {
                    p.pkid = pkid;
                }
                Packet::Publish(p)
            }),
        (topic, qos).prop_map(|(t, q)| Packet::Subscribe(Subscribe::new(t, q))),
        topic.prop_map(|t| Packet::Unsubscribe(Unsubscribe::new(t))),
        (1u16..).prop_map(|id| Packet::PubAck(PubAck::new(id))),
        (1u16..).prop_map(|id| Packet::PubRec(PubRec::new(id))),
        (1u16..).prop_map(|id| Packet::PubRel(PubRel::new(id))),
        (1u16..).prop_map(|id| Packet::PubComp(PubComp::new(id))),
        Just(Packet::PingReq),
        Just(Packet::Disconnect),
    ]
}

/// The packets one after the other, each encoded into a buffer of its own: a CONNECT that
/// rumqttc 0.25 encodes after another packet in the same buffer comes out with its protocol
/// name damaged ("M\x02TT"), which the endpoint rightly refuses. Clients send one CONNECT,
/// first, so only this test meets it.
fn encode(packets: Vec<Packet>) -> Vec<u8> {
    let mut codec = skerry_cloud::mqtt::packet_codec();
    let mut out = Vec::new();
    for p in packets {
        let mut buf = BytesMut::new();
        codec.encode(p, &mut buf).unwrap();
        out.extend_from_slice(&buf);
    }
    out
}

#[test]
fn mutated_and_random_packets() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    // Inputs, peak, packets decoded.
    let stats = std::cell::Cell::new((0u64, 0u64, 0usize));
    let add = |peak: u64, decoded: usize| {
        let (n, p, d) = stats.get();
        stats.set((n + 1, p.max(peak), d + decoded));
    };
    let edits = prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6);
    let cuts = (any::<prop::sample::Index>(), any::<bool>());
    runner
        .run(
            &(
                prop::collection::vec(packet(), 1..6),
                edits,
                cuts,
                prop::collection::vec(any::<u8>(), 0..1024),
            ),
            |(packets, edits, (cut, truncate), random)| {
                let count = packets.len();
                let mut bytes = encode(packets);
                let (peak, decoded) = decode_all(&bytes);
                assert_eq!(decoded, count, "valid packets did not all decode");
                add(peak, decoded);
                for (at, b) in edits {
                    let i = at.index(bytes.len());
                    bytes[i] = b;
                }
                if truncate {
                    bytes.truncate(cut.index(bytes.len() + 1));
                }
                for input in [&bytes[..], &random[..]] {
                    let (peak, decoded) = decode_all(input);
                    add(peak, decoded);
                }
                Ok(())
            },
        )
        .unwrap();
    let stats = stats.get();
    println!(
        "MQTT packets: {} inputs, {} packets decoded, peak {} bytes held at once (bound 128 per input byte + 1 MiB)",
        stats.0, stats.2, stats.1
    );
}

/// A fixed header that announces the largest remaining length: refused at the limit,
/// without reserving it.
#[test]
fn an_announced_huge_packet_reserves_nothing() {
    // PUBLISH, remaining length 268,435,455 (the most MQTT can say), then a few bytes.
    let input = [0x30, 0xff, 0xff, 0xff, 0x7f, 0, 1, b'a'];
    let mut codec = skerry_cloud::mqtt::packet_codec();
    let mut buf = BytesMut::from(&input[..]);
    assert!(codec.decode(&mut buf).is_err());
    let (peak, decoded) = decode_all(&input);
    println!("announced 256 MiB packet: {peak} bytes held at most");
    assert_eq!(decoded, 0);
}
