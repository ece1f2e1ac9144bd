//! `nats/gen-auth.sh` (what `install.sh --nats-agent KIND:ID` runs): the
//! shipped `auth.conf` is its output for the two sample agents, and an
//! agent user it generates may publish only its own heartbeat and subscribe
//! only to its own commands, checked on the real server.

use std::path::Path;
use std::process::{Command, Stdio};

use super::harness::{SecureNats, nats_dir};

/// `gen-auth.sh AGENTS < nats/auth.conf`: (exit code, stdout, stderr).
fn gen_auth(agents: &[&str]) -> (Option<i32>, String, String) {
    let input = std::fs::File::open(nats_dir().join("auth.conf")).expect("auth.conf");
    let out = Command::new("bash")
        .arg(nats_dir().join("gen-auth.sh"))
        .args(agents)
        .stdin(Stdio::from(input))
        .output()
        .expect("run gen-auth.sh");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_shipped_auth_conf_is_the_generated_one() {
    let (code, rendered, stderr) = gen_auth(&["micro:micro-1", "gateway:gateway-1"]);
    assert_eq!(code, Some(0), "{stderr}");
    let shipped = std::fs::read_to_string(nats_dir().join("auth.conf")).expect("auth.conf");
    assert_eq!(
        rendered, shipped,
        "nats/auth.conf differs from gen-auth.sh's output: regenerate it"
    );
}

#[test]
fn bad_agent_specs_are_refused() {
    for bad in [
        &["micro"][..],
        &["micro:../x"],
        &["micro:a.b"],
        &["mi cro:a"],
        &["micro:a-b", "gateway:a_b"],
        &["micro:x", "micro:x"],
    ] {
        let (code, _, stderr) = gen_auth(bad);
        assert_eq!(code, Some(2), "{bad:?} was accepted: {stderr}");
    }
}

#[tokio::test]
async fn a_generated_agent_user_uses_only_its_own_subjects() {
    let (code, rendered, stderr) = gen_auth(&["micro:micro-1", "gateway:gateway-1", "micro:m_7"]);
    assert_eq!(code, Some(0), "{stderr}");
    let dir = tempfile::tempdir().expect("temp dir");
    let auth = dir.path().join("auth.conf");
    std::fs::write(&auth, rendered).expect("write auth.conf");
    let nats =
        SecureNats::start_with_auth(Path::new(&auth), &[("agent-m_7", "NATS_PW_AGENT_M_7")]).await;
    let agent = nats.connect("agent-m_7").await;

    // Its own heartbeat and commands: allowed.
    agent
        .client
        .publish("agent.heartbeat.micro.m_7", "mine".into())
        .await
        .expect("publish");
    let _own = agent
        .client
        .subscribe("agent.cmd.m_7.>")
        .await
        .expect("subscribe");
    agent.assert_allowed().await;

    // Another agent's heartbeat or commands: refused by the server.
    for subject in [
        "agent.heartbeat.micro.micro-1",
        "agent.heartbeat.gateway.m_7",
    ] {
        agent
            .client
            .publish(subject, "forged".into())
            .await
            .expect("publish");
    }
    let mut theirs = Vec::new();
    for subject in [
        "agent.cmd.micro-1.deploy",
        "agent.cmd.micro-1.>",
        "agent.cmd.*.deploy",
    ] {
        theirs.push(agent.client.subscribe(subject).await.expect("subscribe"));
    }
    agent
        .assert_denied(&[
            ("Publish", "agent.heartbeat.micro.micro-1"),
            ("Publish", "agent.heartbeat.gateway.m_7"),
            ("Subscription", "agent.cmd.micro-1.deploy"),
            ("Subscription", "agent.cmd.micro-1.>"),
            ("Subscription", "agent.cmd.*.deploy"),
        ])
        .await;
}
