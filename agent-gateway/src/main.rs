//! sdp-agent-gateway: the agent for the PHP API gateway of each sandbox
//! (`kind = gateway`): the shared agent with the PHP flavour (composer
//! install, `php -S`, routes.json).

use std::process::ExitCode;
use std::sync::Arc;

fn main() -> ExitCode {
    sdp_agentlib::cli::main(
        "sdp-agent-gateway",
        "SDP agent: runs the PHP API gateway of each sandbox",
        Arc::new(sdp_agentlib::PhpFlavour),
    )
}
