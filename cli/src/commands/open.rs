//! `sdp open SANDBOX`: the sandbox's `preview_url`, else its
//! `gateway_url`. On a terminal it is handed to `xdg-open` (as one
//! argument, no shell) and printed; otherwise only printed.

use sdp_api::SandboxView;
use serde_json::json;

use crate::output;
use crate::{CliError, Ctx, Exit};

/// The URL to open: `preview_url` when the sandbox has one.
pub fn url_of(sandbox: &SandboxView) -> Option<&str> {
    sandbox
        .preview_url
        .as_deref()
        .or(sandbox.gateway_url.as_deref())
        .filter(|u| !u.is_empty())
}

pub async fn run(ctx: &Ctx, name: &str) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let sandbox = client.sandbox(name).await?;
    let Some(url) = url_of(&sandbox) else {
        return Err(CliError::api(
            404,
            "no_gateway",
            format!("sandbox {name} has no gateway URL yet: deploy its gateway first"),
        ));
    };
    if ctx.json() {
        output::print_json(&json!({ "url": url }))?;
        return Ok(Exit::Ok);
    }
    output::print(&format!("{url}\n"))?;
    if ctx.stdout_tty && (url.starts_with("http://") || url.starts_with("https://")) {
        let opened = std::process::Command::new("xdg-open")
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if opened.is_err() {
            eprintln!("(xdg-open is not available: open the URL yourself)");
        }
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sandbox(preview_url: Option<&str>, gateway_url: Option<&str>) -> SandboxView {
        SandboxView {
            sandbox: sdp_api::Sandbox {
                name: "alpha".into(),
                owner: "alice".into(),
                template: None,
                environment: None,
                created_at: Default::default(),
                expires_at: Default::default(),
                pinned: false,
                ttl_hours: 72,
                state: Default::default(),
                last_activity_at: None,
            },
            effective_environment: None,
            services: Vec::new(),
            gateway_url: gateway_url.map(str::to_owned),
            preview_url: preview_url.map(str::to_owned),
            routes: None,
        }
    }

    #[test]
    fn preview_wins_over_gateway() {
        let both = sandbox(Some("http://alpha.sdp"), Some("http://h:1"));
        assert_eq!(url_of(&both), Some("http://alpha.sdp"));
        let gateway = sandbox(None, Some("http://h:1"));
        assert_eq!(url_of(&gateway), Some("http://h:1"));
        assert_eq!(url_of(&sandbox(None, None)), None);
    }
}
