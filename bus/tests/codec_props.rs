//! Property tests: the codec never panics on arbitrary input, and every
//! event survives a round trip.

use proptest::prelude::*;
use sdp_bus::*;

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Event>(&bytes);
        let _ = decode::<DeployRequest>(&bytes);
        let _ = decode::<Heartbeat>(&bytes);
    }

    #[test]
    fn decode_never_panics_on_json_shapes(v in any::<i64>(), text in ".{0,64}", seq in any::<i64>()) {
        let payload = serde_json::json!({
            "v": v, "deployment_id": text, "seq": seq, "ts": text,
            "agent_id": text, "body": {"type": text, "line": text},
        });
        let _ = decode::<Event>(payload.to_string().as_bytes());
    }

    #[test]
    fn log_events_round_trip(seq in 1u64..u64::MAX, line in ".{0,200}", agent in "[a-z0-9-]{1,20}") {
        let event = Event {
            deployment_id: DeploymentId::generate(),
            seq,
            ts: chrono::Utc::now(),
            agent_id: agent,
            body: EventBody::Log { stream: LogStream::Stdout, line },
        };
        let back: Event = decode(&encode(&event)).expect("round trip");
        prop_assert_eq!(back, event);
    }

    #[test]
    fn log_batches_round_trip(
        seq in 1u64..u64::MAX,
        first_line in 1u64..u64::MAX,
        lines in proptest::collection::vec(".{0,80}", 0..40),
    ) {
        let event = Event {
            deployment_id: DeploymentId::generate(),
            seq,
            ts: chrono::Utc::now(),
            agent_id: "micro-1".into(),
            body: EventBody::Logs { stream: LogStream::Stderr, first_line, lines },
        };
        let back: Event = decode(&encode(&event)).expect("round trip");
        prop_assert_eq!(back, event);
    }
}
