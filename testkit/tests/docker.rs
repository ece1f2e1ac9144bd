//! Docker helpers against the real engine.

use std::process::Command;

use sdp_testkit::{
    ContainerCleanup, containers_with_label, docker_bridge_gateway, ensure_busybox_image, unique_id,
};

fn docker(args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .args(args)
        .output()
        .expect("docker runs")
}

#[test]
fn busybox_image_is_idempotent_and_runs() {
    let image = ensure_busybox_image();
    assert_eq!(image, "sdp-test-busybox:1");
    let id = |img: &str| {
        String::from_utf8_lossy(&docker(&["image", "inspect", "--format", "{{.Id}}", img]).stdout)
            .trim()
            .to_owned()
    };
    let first = id(&image);
    assert_eq!(ensure_busybox_image(), image);
    assert_eq!(id(&image), first, "second call re-imported the image");

    let out = docker(&["run", "--rm", &image, "/bin/echo", "hi"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");

    let out = docker(&[
        "run",
        "--rm",
        &image,
        "sh",
        "-c",
        "stat -c %a /tmp && grep -c . /etc/passwd && readlink /bin/wget && id -un",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1777\n2\nbusybox\nroot\n"
    );

    let out = docker(&["run", "--rm", "--user", "nobody", &image, "id", "-un"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "nobody\n");
}

#[test]
fn busybox_image_concurrent_calls_agree() {
    let handles: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(ensure_busybox_image))
        .collect();
    for h in handles {
        assert_eq!(h.join().expect("no panic"), "sdp-test-busybox:1");
    }
}

#[test]
fn bridge_gateway_is_an_ipv4_address() {
    let ip = docker_bridge_gateway();
    ip.parse::<std::net::Ipv4Addr>()
        .unwrap_or_else(|e| panic!("{ip:?}: {e}"));
}

#[test]
fn cleanup_removes_labelled_containers() {
    let image = ensure_busybox_image();
    let value = unique_id("t");
    let cleanup = ContainerCleanup::new("sdp-testkit-test", &value);
    let label = format!("sdp-testkit-test={value}");
    let name = unique_id("sdp-testkit");
    let out = docker(&[
        "run", "-d", "--name", &name, "--label", &label, &image, "sleep", "300",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = docker(&["create", "--label", &label, &image, "true"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(cleanup.containers().len(), 2);
    assert_eq!(containers_with_label("sdp-testkit-test", &value).len(), 2);
    assert!(containers_with_label("sdp-testkit-test", "other-value").is_empty());
    drop(cleanup);
    assert!(containers_with_label("sdp-testkit-test", &value).is_empty());
}
