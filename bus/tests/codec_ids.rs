//! Ids and names that become a path, a subject or a container name are
//! checked when a payload is decoded: a hostile one never reaches a handler.

use sdp_bus::*;
use serde_json::{Value, json};

const HOSTILE: [&str; 6] = ["../x", "../../name", "a/b", "a.b", "", "a b"];

fn decodes<T: serde::de::DeserializeOwned>(value: &Value) -> bool {
    decode::<T>(&serde_json::to_vec(value).expect("json")).is_ok()
}

fn event(deployment_id: &str, agent_id: &str) -> Value {
    json!({
        "v": 1,
        "deployment_id": deployment_id,
        "seq": 1,
        "ts": "2026-11-27T12:00:00Z",
        "agent_id": agent_id,
        "body": {"type": "log", "stream": "stdout", "line": "x"},
    })
}

#[test]
fn a_deployment_id_that_is_not_a_token_does_not_decode() {
    assert!(decodes::<Event>(&event("d0190aabbcc", "agent-1")));
    for bad in HOSTILE {
        assert!(!decodes::<Event>(&event(bad, "agent-1")), "{bad:?}");
        let reconcile = json!({"v": 1, "keep": [bad]});
        assert!(!decodes::<Reconcile>(&reconcile), "{bad:?}");
        assert!(serde_json::from_value::<DeploymentId>(json!(bad)).is_err());
        assert!(DeploymentId::try_from(bad.to_owned()).is_err());
    }
}

#[test]
fn agent_ids_kinds_and_stream_ids_must_be_tokens() {
    let heartbeat = |agent_id: &str, kind: &str| {
        json!({"v": 1, "agent_id": agent_id, "kind": kind, "host": "h", "version": "0",
               "running": [], "missing_images": [], "capacity": 1})
    };
    assert!(decodes::<Heartbeat>(&heartbeat("agent_1", "micro")));
    let logs = |stream_id: &str| json!({"v": 1, "deployment_id": "d1", "stream_id": stream_id, "window": 4});
    assert!(decodes::<ContainerLogs>(&logs("s1")));
    for bad in HOSTILE {
        assert!(!decodes::<Heartbeat>(&heartbeat(bad, "micro")), "{bad:?}");
        assert!(!decodes::<Heartbeat>(&heartbeat("a", bad)), "{bad:?}");
        assert!(!decodes::<Event>(&event("d1", bad)), "{bad:?}");
        assert!(
            !decodes::<DeployAccepted>(&json!({"v": 1, "agent_id": bad})),
            "{bad:?}"
        );
        assert!(!decodes::<ContainerLogs>(&logs(bad)), "{bad:?}");
    }
}

#[test]
fn sandbox_and_repo_names_are_checked_on_every_request() {
    let request = |sandbox: &str, repo: &str| {
        json!({"v": 1, "deployment_id": "d1", "sandbox": sandbox, "repo": repo,
               "branch": "main", "credential": {"username": "u", "password": "p"}})
    };
    assert!(decodes::<DeployRequest>(&request("alpha-1", "svc.v2_x")));
    for bad in ["../x", "a.b", "a_b", "A", ""] {
        assert!(!decodes::<DeployRequest>(&request(bad, "users")), "{bad:?}");
        assert!(
            !decodes::<Teardown>(&json!({"v": 1, "sandbox": bad})),
            "{bad:?}"
        );
        let probe = json!({"v": 1, "sandbox": bad, "service": "gw", "routes": []});
        assert!(!decodes::<Probe>(&probe), "{bad:?}");
    }
    for bad in ["../x", "..", "a/b", "-x", ""] {
        assert!(!decodes::<DeployRequest>(&request("alpha", bad)), "{bad:?}");
        let credential = json!({"username": "u", "password": "p"});
        let list = json!({"v": 1, "repo": bad, "credential": credential});
        assert!(!decodes::<ListBranches>(&list), "{bad:?}");
        let status = json!({"v": 1, "repo": bad, "credential": credential, "branches": []});
        assert!(!decodes::<BranchStatus>(&status), "{bad:?}");
        let probe = json!({"v": 1, "sandbox": "alpha", "service": bad, "routes": []});
        assert!(!decodes::<Probe>(&probe), "{bad:?}");
    }
}
