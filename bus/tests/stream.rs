//! `ensure_deploy_progress` on a real nats-server: creates the stream once,
//! leaves it (and its messages) alone on every later call, and brings a
//! drifted config back.

use async_nats::jetstream;
use sdp_bus::stream::{DEPLOY_PROGRESS, deploy_progress_config, ensure_deploy_progress};

#[tokio::test]
async fn ensure_stream_is_idempotent() {
    let server = sdp_testkit::NatsServer::start();
    let client = async_nats::connect(server.url()).await.expect("connect");
    let js = jetstream::new(client);

    let mut stream = ensure_deploy_progress(&js, 1).await.expect("create");
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.subjects, ["deploy.progress.>"]);
    assert_eq!(info.config.storage, jetstream::stream::StorageType::File);

    js.publish("deploy.progress.d1", "{}".into())
        .await
        .expect("publish")
        .await
        .expect("ack");

    // Drift: someone shrank max_age; the next start restores it.
    let mut drifted = deploy_progress_config(1);
    drifted.max_age = std::time::Duration::from_secs(3600);
    js.update_stream(drifted).await.expect("drift");

    for _ in 0..3 {
        ensure_deploy_progress(&js, 1).await.expect("ensure again");
    }
    let mut stream = js.get_stream(DEPLOY_PROGRESS).await.expect("stream");
    let info = stream.info().await.expect("info");
    assert_eq!(info.config.max_age, deploy_progress_config(1).max_age);
    assert_eq!(info.state.messages, 1, "ensuring must not drop messages");
}
