//! A node's topics, and what it may do with them: subscribe to its own `down` only, and
//! publish to its own `up` only. Exact matches: a filter with a wildcard (`+`, `#`) is
//! refused even when it would match the node's own topic, so a node never receives more
//! than its own messages, whatever it asks for.

use skerry_shared::ids::NodeId;

/// The topic the cloud publishes a node's messages on: `skerry/v1/nodes/{node_id}/down`.
pub fn down_topic(node: NodeId) -> String {
    format!("skerry/v1/nodes/{node}/down")
}

/// The topic a node publishes on: `skerry/v1/nodes/{node_id}/up`.
pub fn up_topic(node: NodeId) -> String {
    format!("skerry/v1/nodes/{node}/up")
}

/// May `node` subscribe with `filter`? Only to exactly its own `down` topic.
pub fn authorize_subscribe(node: NodeId, filter: &str) -> bool {
    filter == down_topic(node)
}

/// May `node` publish to `topic`? Only to exactly its own `up` topic.
pub fn authorize_publish(node: NodeId, topic: &str) -> bool {
    topic == up_topic(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(text: &str) -> NodeId {
        text.parse().unwrap()
    }

    const A: &str = "0a6c1d52-5b1e-4f43-9a0e-6f7d1b2c3d4e";
    const B: &str = "7f1e2d3c-4b5a-4678-9abc-def012345678";

    #[test]
    fn topics_name_the_node_id() {
        assert_eq!(
            down_topic(node(A)),
            "skerry/v1/nodes/0a6c1d52-5b1e-4f43-9a0e-6f7d1b2c3d4e/down"
        );
        assert_eq!(
            up_topic(node(A)),
            "skerry/v1/nodes/0a6c1d52-5b1e-4f43-9a0e-6f7d1b2c3d4e/up"
        );
    }

    #[test]
    fn a_node_subscribes_to_its_own_down_only() {
        let (a, b) = (node(A), node(B));
        assert!(authorize_subscribe(a, &down_topic(a)));
        for filter in [
            down_topic(b),
            up_topic(a),
            "skerry/v1/nodes/+/down".to_owned(),
            format!("skerry/v1/nodes/{A}/+"),
            format!("skerry/v1/nodes/{A}/#"),
            "skerry/v1/nodes/#".to_owned(),
            "skerry/#".to_owned(),
            "#".to_owned(),
            "+/+/+/+/+".to_owned(),
            format!("skerry/v1/nodes/{}/down", A.to_uppercase()),
            format!("skerry/v1/nodes/{A}/down/"),
            format!("/skerry/v1/nodes/{A}/down"),
            format!("$share/g/skerry/v1/nodes/{A}/down"),
            String::new(),
        ] {
            assert!(!authorize_subscribe(a, &filter), "{filter:?} was allowed");
        }
    }

    #[test]
    fn a_node_publishes_to_its_own_up_only() {
        let (a, b) = (node(A), node(B));
        assert!(authorize_publish(a, &up_topic(a)));
        for topic in [
            up_topic(b),
            down_topic(a),
            down_topic(b),
            "skerry/v1/nodes/+/up".to_owned(),
            format!("skerry/v1/nodes/{A}/#"),
            "#".to_owned(),
            format!("skerry/v1/nodes/{A}/up/more"),
            format!("skerry/v1/nodes/{}/up", A.to_uppercase()),
            String::new(),
        ] {
            assert!(!authorize_publish(a, &topic), "{topic:?} was allowed");
        }
    }
}
