//! Nothing a test started is left behind once its stack is dropped.

use crate::common::*;
use sdp_bus::Status;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_stack_leaves_nothing_behind() {
    let stack = Stack::start().await;
    let token = stack.login().await;
    let id = stack.deploy(&token, "alpha", BRANCH).await;
    let deployment = stack.wait_settled(&token, &id).await;
    assert_eq!(deployment.status, Status::Running, "{deployment:?}");

    let agent_id = stack.agent_id.clone();
    assert_eq!(
        sdp_testkit::containers_with_label("sdp.agent", &agent_id).len(),
        1
    );
    let dirs = [
        stack.cp_data.path().to_owned(),
        stack.agent_data.path().to_owned(),
        stack.repos.path().to_owned(),
        stack.nats.store_dir().to_owned(),
        stack.logs_dir.path().to_owned(),
    ];
    let port = stack.nats.port();
    let base_url = stack.base_url.clone();
    drop(stack);

    assert!(
        sdp_testkit::containers_with_label("sdp.agent", &agent_id).is_empty(),
        "containers left behind"
    );
    for dir in dirs {
        assert!(!dir.exists(), "{} left behind", dir.display());
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "nats-server still runs"
    );
    assert!(
        reqwest::get(format!("{base_url}/healthz")).await.is_err(),
        "control plane still runs"
    );
}
