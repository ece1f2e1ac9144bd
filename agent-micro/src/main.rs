//! sdp-agent-micro: the agent for Go microservices (`kind = micro`): the
//! shared agent with the Go flavour (`go build` on the host).

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    sdp_agentlib::cli::main(
        "sdp-agent-micro",
        "SDP agent: builds and runs Go services of sandboxes",
        Arc::new(sdp_agentlib::GoFlavour::default()),
    )
}
