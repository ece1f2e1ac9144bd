//! `sdp sandbox ls|show|create|rm|pin|unpin|renew` over
//! `/api/sandboxes[/{name}]` (and `stale`, in [`super::checks`], and
//! `wake`, in [`super::wake`]).

use sdp_api::{NewSandbox, SandboxPatch, SandboxView, ServiceView};

use crate::args::SandboxCommand;
use crate::listing::{self, Listed};
use crate::output::{self, cell_of, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, command: SandboxCommand) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let shown = match command {
        SandboxCommand::Ls { limit } => {
            let list = client.all_sandboxes(listing::wanted(limit)).await?;
            return listing::print(ctx, &list);
        }
        SandboxCommand::Show { name } => client.sandbox(&name).await?,
        SandboxCommand::Stale { name } => return super::checks::stale(ctx, &name).await,
        SandboxCommand::Wake { name } => return super::wake::run(ctx, &client, &name).await,
        SandboxCommand::Create {
            name,
            template,
            environment,
            ttl_hours,
            pin,
            resources,
        } => {
            let body = NewSandbox {
                name,
                template,
                environment,
                ttl_hours,
                pinned: pin,
                resources,
            };
            client.create_sandbox(&body).await?
        }
        SandboxCommand::Rm { name } => {
            let report = client.delete_sandbox(&name).await?;
            if ctx.json() {
                output::print_json(&report)?;
            } else {
                eprintln!("Sandbox {name} is being torn down.");
            }
            return Ok(Exit::Ok);
        }
        SandboxCommand::Pin { name } => {
            let pin = SandboxPatch {
                pinned: Some(true),
                ..SandboxPatch::default()
            };
            client.update_sandbox(&name, &pin).await?
        }
        SandboxCommand::Unpin { name } => {
            let unpin = SandboxPatch {
                pinned: Some(false),
                ..SandboxPatch::default()
            };
            client.update_sandbox(&name, &unpin).await?
        }
        SandboxCommand::Renew { name, ttl_hours } => {
            let renew = SandboxPatch {
                renew: true,
                ttl_hours,
                ..SandboxPatch::default()
            };
            client.update_sandbox(&name, &renew).await?
        }
    };
    show_one(ctx, &shown)
}

impl Listed for SandboxView {
    const HEADERS: &'static [&'static str] =
        &["name", "owner", "template", "expires", "pinned", "services"];

    fn cells(&self) -> Vec<String> {
        vec![
            cell_of(&self.sandbox.name),
            cell_of(&self.sandbox.owner),
            cell_of(&self.sandbox.template),
            sdp_api::timestamp::text(self.sandbox.expires_at),
            cell_of(&self.sandbox.pinned),
            services(&self.services),
        ]
    }
}

/// `users:running,orders:failed`
fn services(services: &[ServiceView]) -> String {
    let list: Vec<String> = services
        .iter()
        .map(|s| format!("{}:{}", cell_of(&s.repo), cell_of(&s.status)))
        .collect();
    if list.is_empty() {
        "-".to_owned()
    } else {
        list.join(",")
    }
}

pub(crate) fn show_one(ctx: &Ctx, sandbox: &SandboxView) -> Result<Exit, CliError> {
    if ctx.json() {
        output::print_json(sandbox)?;
        return Ok(Exit::Ok);
    }
    let s = &sandbox.sandbox;
    let mut fields = vec![
        ("name", cell_of(&s.name)),
        ("owner", cell_of(&s.owner)),
        ("template", cell_of(&s.template)),
        ("environment", cell_of(&sandbox.effective_environment)),
        ("expires", sdp_api::timestamp::text(s.expires_at)),
        ("pinned", cell_of(&s.pinned)),
        ("state", s.state.as_str().to_owned()),
        ("gateway", cell_of(&sandbox.gateway_url)),
    ];
    if sandbox.preview_url.is_some() {
        fields.push(("preview", cell_of(&sandbox.preview_url)));
    }
    let mut text = String::new();
    for (label, value) in fields {
        text.push_str(&format!("{label:<12} {value}\n"));
    }
    let services: Vec<Vec<String>> = sandbox
        .services
        .iter()
        .map(|s| {
            vec![
                cell_of(&s.repo),
                cell_of(&s.branch),
                cell_of(&s.status),
                cell_of(&s.deployment_id),
                cell_of(&s.url),
            ]
        })
        .collect();
    if !services.is_empty() {
        text.push('\n');
        text.push_str(&render_table(
            &["service", "branch", "status", "deployment", "url"],
            &services,
        ));
    }
    if let Some(routes) = sandbox.routes.as_ref().filter(|r| !r.is_empty()) {
        text.push('\n');
        text.push_str(&super::routes::table(routes));
    }
    output::print(&text)?;
    Ok(Exit::Ok)
}
