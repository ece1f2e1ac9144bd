//! `install.sh --nats-agent KIND:ID`: the control host's `/etc/nats/auth.conf`
//! gets one NATS user per named agent (nats/gen-auth.sh), which nats-server
//! accepts; a second run changes nothing; naming another agent replaces the
//! unedited file; a bad id, or the flag without the control role, is
//! refused before anything is installed.

use std::path::Path;
use std::process::{Command, Stdio};

use sdp_packaging::{TempDir, build_bundle, extract, run, text, tree};

fn install(bundle: &Path, root: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = run(Command::new(bundle.join("install.sh"))
        .args(args)
        .arg("--root")
        .arg(root));
    let (stdout, stderr) = text(&out);
    (out.status.code(), format!("{stdout}\n{stderr}"))
}

/// `nats-server -t -c auth.conf` with a password for each of `users`
/// (the env var names of the users in the file).
fn assert_nats_accepts(auth: &Path, users: &[&str]) {
    let out = Command::new("nats-server")
        .arg("-t")
        .arg("-c")
        .arg(auth)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(users.iter().map(|var| (*var, "pSecret1")))
        .stdin(Stdio::null())
        .output()
        .expect("run nats-server -t");
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
}

#[test]
fn nats_agent_users_are_generated_per_agent_id() {
    let dist = TempDir::new().expect("temp dir");
    let bundle = build_bundle(dist.path(), None);
    let unpacked = TempDir::new().expect("temp dir");
    let bundle = extract(&bundle, unpacked.path());

    // Refused before anything is written.
    let empty = TempDir::new().expect("temp dir");
    for args in [
        &["--role", "control", "--nats-agent", "micro:../x"][..],
        &[
            "--role",
            "control",
            "--nats-agent",
            "micro:a",
            "--nats-agent",
            "micro:a",
        ],
        &["--role", "micro", "--nats-agent", "micro:micro-1"],
    ] {
        let (code, output) = install(&bundle, empty.path(), args);
        assert_eq!(code, Some(2), "{args:?}: {output}");
    }
    assert!(tree(empty.path()).is_empty(), "{:?}", tree(empty.path()));

    let root_dir = TempDir::new().expect("temp dir");
    let root = root_dir.path();
    let agents = ["--nats-agent", "micro:micro-1", "--nats-agent", "micro:m-2"];
    let roles = ["--role", "control"];
    let (code, output) = install(&bundle, root, &[&roles[..], &agents].concat());
    assert_eq!(code, Some(0), "{output}");
    let auth = root.join("etc/nats/auth.conf");
    let conf = std::fs::read_to_string(&auth).expect("auth.conf");
    assert!(conf.contains("\"agent.heartbeat.micro.m-2\""), "{conf}");
    assert!(conf.contains("\"agent.cmd.m-2.>\""), "{conf}");
    assert!(
        conf.contains(
            r#"{ user: "agent-m-2", password: $NATS_PW_AGENT_M_2, permissions: $AGENT_M_2 }"#
        ),
        "{conf}"
    );
    assert!(
        !conf.contains("agent-gateway-1"),
        "only the named agents: {conf}"
    );
    let base = [
        "NATS_PW_CONTROL_PLANE",
        "NATS_PW_PERSISTER",
        "NATS_PW_DEBUG",
        "NATS_PW_AGENT_MICRO_1",
    ];
    assert_nats_accepts(&auth, &[&base[..], &["NATS_PW_AGENT_M_2"]].concat());

    // Again: nothing changes.
    let before = tree(root);
    let (code, output) = install(&bundle, root, &[&roles[..], &agents].concat());
    assert_eq!(code, Some(0), "{output}");
    assert!(output.contains("nothing changed"), "{output}");
    assert_eq!(tree(root), before);

    // Another agent: the unedited file is replaced, not left as .new.
    let more = [&agents[..], &["--nats-agent", "gateway:g-3"]].concat();
    let (code, output) = install(&bundle, root, &[&roles[..], &more].concat());
    assert_eq!(code, Some(0), "{output}");
    let conf = std::fs::read_to_string(&auth).expect("auth.conf");
    assert!(conf.contains("\"agent.heartbeat.gateway.g-3\""), "{conf}");
    assert!(!root.join("etc/nats/auth.conf.new").exists());
    assert_nats_accepts(
        &auth,
        &[&base[..], &["NATS_PW_AGENT_M_2", "NATS_PW_AGENT_G_3"]].concat(),
    );

    // An edited file is kept; the generated one lands beside it.
    std::fs::write(&auth, format!("{conf}# edited\n")).expect("edit");
    let (code, output) = install(&bundle, root, &[&roles[..], &agents].concat());
    assert_eq!(code, Some(0), "{output}");
    assert!(
        std::fs::read_to_string(&auth)
            .expect("auth.conf")
            .ends_with("# edited\n")
    );
    assert!(root.join("etc/nats/auth.conf.new").exists(), "{output}");
}
