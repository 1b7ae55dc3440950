//! One node's MQTT session after CONNECT, as a state machine without I/O: a packet from
//! the client in, the [`Action`]s it causes out, in the order the connection loop must
//! carry them out (rumqttc's `state.rs` is the model). The loop in
//! `connection.rs` does the reading, writing and waiting.

use std::collections::HashSet;

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, SubAck, SubscribeReasonCode,
    UnsubAck,
};
use skerry_shared::frame::MAX_FRAME_BYTES;
use skerry_shared::ids::NodeId;

use super::authz::{authorize_publish, authorize_subscribe, down_topic};

/// QoS 2 publishes a client may have between PUBLISH and PUBREL. Agents publish QoS 0 or
/// 1; this only keeps a client that never sends PUBREL from growing the set.
const MAX_QOS2_IN_FLIGHT: usize = 64;

/// What the connection loop does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Hand a payload to the sync layer (`up`), waiting for room, before any later action.
    Forward(Bytes),
    /// Write a packet to the client.
    Send(Packet),
    /// A subscription filter was denied (the SUBACK says so): count and log it.
    Denied(String),
    /// End the connection.
    Close(Close),
}

/// Why a session ends from the client's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Close {
    /// The client sent DISCONNECT.
    Disconnect,
    /// A PUBLISH to a topic that is not the node's own `up`: never forwarded.
    DeniedPublish(String),
    /// A PUBLISH whose payload is over the frame limit.
    Oversize(usize),
    /// A packet a client may not send here, or at this point.
    Protocol(String),
}

/// The answer to a CONNECT's protocol level: only MQTT 3.1.1.
pub(crate) fn check_protocol(connect: &rumqttc::mqttbytes::v4::Connect) -> ConnectReturnCode {
    match connect.protocol {
        rumqttc::mqttbytes::Protocol::V4 => ConnectReturnCode::Success,
        rumqttc::mqttbytes::Protocol::V5 => ConnectReturnCode::RefusedProtocolVersion,
    }
}

/// One node's session.
#[derive(Debug)]
pub(crate) struct Session {
    node: NodeId,
    down: String,
    subscribed: bool,
    qos2: HashSet<u16>,
}

impl Session {
    pub(crate) fn new(node: NodeId) -> Session {
        Session {
            node,
            down: down_topic(node),
            subscribed: false,
            qos2: HashSet::new(),
        }
    }

    /// Whether the node holds its `down` subscription, so down payloads may be published.
    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// The PUBLISH that carries a down payload: QoS 0, the sync protocol acks above MQTT.
    pub(crate) fn publish_down(&self, payload: Bytes) -> Packet {
        Packet::Publish(Publish::from_bytes(
            self.down.clone(),
            QoS::AtMostOnce,
            payload,
        ))
    }

    /// The actions a packet from the client causes.
    pub(crate) fn on_packet(&mut self, packet: Packet) -> Vec<Action> {
        match packet {
            Packet::Publish(publish) => self.on_publish(publish),
            Packet::PubRel(rel) => {
                // Answered even for an id it does not know, as MQTT 3.1.1 asks (4.3.3).
                self.qos2.remove(&rel.pkid);
                vec![Action::Send(Packet::PubComp(PubComp::new(rel.pkid)))]
            }
            Packet::Subscribe(subscribe) => {
                let mut actions = Vec::new();
                let mut codes = Vec::with_capacity(subscribe.filters.len());
                for filter in subscribe.filters {
                    if authorize_subscribe(self.node, &filter.path) {
                        self.subscribed = true;
                        codes.push(SubscribeReasonCode::Success(QoS::AtMostOnce));
                    } else {
                        codes.push(SubscribeReasonCode::Failure);
                        actions.push(Action::Denied(filter.path));
                    }
                }
                actions.push(Action::Send(Packet::SubAck(SubAck::new(
                    subscribe.pkid,
                    codes,
                ))));
                actions
            }
            Packet::Unsubscribe(unsubscribe) => {
                if unsubscribe.topics.contains(&self.down) {
                    self.subscribed = false;
                }
                vec![Action::Send(Packet::UnsubAck(UnsubAck::new(
                    unsubscribe.pkid,
                )))]
            }
            Packet::PingReq => vec![Action::Send(Packet::PingResp)],
            Packet::Disconnect => vec![Action::Close(Close::Disconnect)],
            Packet::Connect(_) => vec![Action::Close(Close::Protocol(
                "a second CONNECT".to_owned(),
            ))],
            other => vec![Action::Close(Close::Protocol(format!(
                "a client may not send {}",
                packet_name(&other)
            )))],
        }
    }

    fn on_publish(&mut self, publish: Publish) -> Vec<Action> {
        if !authorize_publish(self.node, &publish.topic) {
            return vec![Action::Close(Close::DeniedPublish(publish.topic))];
        }
        if publish.payload.len() > MAX_FRAME_BYTES {
            return vec![Action::Close(Close::Oversize(publish.payload.len()))];
        }
        match publish.qos {
            QoS::AtMostOnce => vec![Action::Forward(publish.payload)],
            QoS::AtLeastOnce => vec![
                Action::Forward(publish.payload),
                Action::Send(Packet::PubAck(PubAck::new(publish.pkid))),
            ],
            QoS::ExactlyOnce => {
                let rec = Action::Send(Packet::PubRec(PubRec::new(publish.pkid)));
                if self.qos2.contains(&publish.pkid) {
                    // A resend before PUBREL: acknowledged again, forwarded once.
                    vec![rec]
                } else if self.qos2.len() >= MAX_QOS2_IN_FLIGHT {
                    vec![Action::Close(Close::Protocol(format!(
                        "more than {MAX_QOS2_IN_FLIGHT} QoS 2 publishes without PUBREL"
                    )))]
                } else {
                    self.qos2.insert(publish.pkid);
                    vec![Action::Forward(publish.payload), rec]
                }
            }
        }
    }
}

/// A packet's name in MQTT's words, for logs.
pub(crate) fn packet_name(packet: &Packet) -> &'static str {
    match packet {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect => "DISCONNECT",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::authz::up_topic;
    use rumqttc::mqttbytes::v4::{ConnAck, PubRel, Subscribe, SubscribeFilter, Unsubscribe};

    fn publish(topic: &str, qos: QoS, pkid: u16, payload: &'static [u8]) -> Packet {
        let mut p = Publish::from_bytes(topic, qos, Bytes::from_static(payload));
        p.pkid = pkid;
        Packet::Publish(p)
    }

    fn subscribe(pkid: u16, filters: &[&str]) -> Packet {
        Packet::Subscribe(Subscribe {
            pkid,
            filters: filters
                .iter()
                .map(|f| SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce))
                .collect(),
        })
    }

    #[test]
    fn grants_only_the_nodes_own_down_at_qos_0() {
        let (a, b) = (NodeId::random(), NodeId::random());
        let mut s = Session::new(a);
        assert!(!s.subscribed());
        let actions = s.on_packet(subscribe(7, &["#", &down_topic(b)]));
        assert_eq!(
            actions,
            vec![
                Action::Denied("#".to_owned()),
                Action::Denied(down_topic(b)),
                Action::Send(Packet::SubAck(SubAck::new(
                    7,
                    vec![SubscribeReasonCode::Failure, SubscribeReasonCode::Failure]
                ))),
            ]
        );
        assert!(!s.subscribed());
        let actions = s.on_packet(subscribe(8, &[&down_topic(a), "skerry/v1/nodes/+/down"]));
        assert_eq!(
            actions,
            vec![
                Action::Denied("skerry/v1/nodes/+/down".to_owned()),
                Action::Send(Packet::SubAck(SubAck::new(
                    8,
                    vec![
                        SubscribeReasonCode::Success(QoS::AtMostOnce),
                        SubscribeReasonCode::Failure
                    ]
                ))),
            ]
        );
        assert!(s.subscribed());
        let unsub = Packet::Unsubscribe(Unsubscribe {
            pkid: 9,
            topics: vec![down_topic(a)],
        });
        assert_eq!(
            s.on_packet(unsub),
            vec![Action::Send(Packet::UnsubAck(UnsubAck::new(9)))]
        );
        assert!(!s.subscribed());
    }

    #[test]
    fn forwards_publishes_to_the_nodes_own_up_and_acks_after() {
        let a = NodeId::random();
        let mut s = Session::new(a);
        assert_eq!(
            s.on_packet(publish(&up_topic(a), QoS::AtMostOnce, 0, b"zero")),
            vec![Action::Forward(Bytes::from_static(b"zero"))]
        );
        assert_eq!(
            s.on_packet(publish(&up_topic(a), QoS::AtLeastOnce, 3, b"one")),
            vec![
                Action::Forward(Bytes::from_static(b"one")),
                Action::Send(Packet::PubAck(PubAck::new(3)))
            ]
        );
        // QoS 2: forwarded once, however often it is resent before PUBREL.
        let rec = Action::Send(Packet::PubRec(PubRec::new(4)));
        assert_eq!(
            s.on_packet(publish(&up_topic(a), QoS::ExactlyOnce, 4, b"two")),
            vec![Action::Forward(Bytes::from_static(b"two")), rec.clone()]
        );
        assert_eq!(
            s.on_packet(publish(&up_topic(a), QoS::ExactlyOnce, 4, b"two")),
            vec![rec]
        );
        assert_eq!(
            s.on_packet(Packet::PubRel(PubRel::new(4))),
            vec![Action::Send(Packet::PubComp(PubComp::new(4)))]
        );
        assert!(s.qos2.is_empty());
    }

    #[test]
    fn closes_on_a_publish_anywhere_else_without_forwarding() {
        let (a, b) = (NodeId::random(), NodeId::random());
        for topic in [
            up_topic(b),
            down_topic(a),
            "skerry/v1/nodes/+/up".to_owned(),
            "#".to_owned(),
        ] {
            let mut s = Session::new(a);
            assert_eq!(
                s.on_packet(publish(&topic, QoS::AtLeastOnce, 1, b"x")),
                vec![Action::Close(Close::DeniedPublish(topic.clone()))]
            );
        }
    }

    #[test]
    fn closes_on_an_oversize_payload() {
        let a = NodeId::random();
        let mut s = Session::new(a);
        let big = Publish::from_bytes(
            up_topic(a),
            QoS::AtMostOnce,
            Bytes::from(vec![0u8; MAX_FRAME_BYTES + 1]),
        );
        assert_eq!(
            s.on_packet(Packet::Publish(big)),
            vec![Action::Close(Close::Oversize(MAX_FRAME_BYTES + 1))]
        );
        let fits = Publish::from_bytes(
            up_topic(a),
            QoS::AtMostOnce,
            Bytes::from(vec![0u8; MAX_FRAME_BYTES]),
        );
        assert!(matches!(
            s.on_packet(Packet::Publish(fits)).as_slice(),
            [Action::Forward(p)] if p.len() == MAX_FRAME_BYTES
        ));
    }

    #[test]
    fn answers_pings_and_closes_on_disconnect_and_on_packets_only_a_server_sends() {
        let mut s = Session::new(NodeId::random());
        assert_eq!(
            s.on_packet(Packet::PingReq),
            vec![Action::Send(Packet::PingResp)]
        );
        assert_eq!(
            s.on_packet(Packet::Disconnect),
            vec![Action::Close(Close::Disconnect)]
        );
        for packet in [
            Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)),
            Packet::SubAck(SubAck::new(1, vec![])),
            Packet::PingResp,
            Packet::PubAck(PubAck::new(1)),
            Packet::Connect(rumqttc::mqttbytes::v4::Connect::new("again")),
        ] {
            assert!(matches!(
                s.on_packet(packet).as_slice(),
                [Action::Close(Close::Protocol(_))]
            ));
        }
    }

    #[test]
    fn down_payloads_go_out_at_qos_0_on_the_nodes_down() {
        let a = NodeId::random();
        let s = Session::new(a);
        let Packet::Publish(p) = s.publish_down(Bytes::from_static(b"frame")) else {
            panic!("not a publish");
        };
        assert_eq!(p.topic, down_topic(a));
        assert_eq!(p.qos, QoS::AtMostOnce);
        assert_eq!(&p.payload[..], b"frame");
    }
}
