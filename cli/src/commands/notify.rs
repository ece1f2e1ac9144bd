//! `sdp notify show|set|clear (--template T | --environment E)` over
//! `/api/{templates,environments}/{name}/notify`: the outgoing webhooks a
//! template's or an environment's sandboxes send to. `set` adds a URL or
//! replaces the events of one already there; `clear` removes one URL, or
//! all (`--webhook URL`). A change reads the list, applies itself and writes it whole (only
//! the owner's creator and admins see full URLs, and only they may write).

use clap::{Args, Subcommand};
use sdp_api::{NotifyEvent, NotifyTarget, TemplateNotify};

use crate::api::Client;
use crate::output::{self, render_table};
use crate::{CliError, Ctx, Exit};

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// The webhooks (full URLs for the owner's creator and admins, their
    /// origins for everyone else).
    Show(NotifyShowArgs),
    /// Add a webhook, or change the events of one already there.
    Set(NotifySetArgs),
    /// Remove a webhook (--url), or all of them.
    Clear(NotifyClearArgs),
}

/// Whose webhooks: one template's or one environment's.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Owner {
    /// A template's webhooks (every sandbox made from it).
    #[arg(long)]
    pub template: Option<String>,
    /// An environment's webhooks (every sandbox that runs with it).
    #[arg(long)]
    pub environment: Option<String>,
}

#[derive(Debug, Args)]
pub struct NotifyShowArgs {
    #[command(flatten)]
    pub owner: Owner,
}

#[derive(Debug, Args)]
pub struct NotifySetArgs {
    #[command(flatten)]
    pub owner: Owner,
    /// The webhook's URL (https; a Slack incoming webhook, say). Not
    /// `--url` (nor a field named `url`: clap would take it for the
    /// global one, which names the control plane).
    #[arg(long, value_name = "URL")]
    pub webhook: String,
    /// An event it takes (repeatable; none: all of them):
    /// deployment.started, deployment.running, deployment.failed,
    /// test_run.ended.
    #[arg(long = "event", value_name = "EVENT", value_parser = parse_event)]
    pub events: Vec<NotifyEvent>,
}

#[derive(Debug, Args)]
pub struct NotifyClearArgs {
    #[command(flatten)]
    pub owner: Owner,
    /// Only this webhook's URL (default: all).
    #[arg(long, value_name = "URL")]
    pub webhook: Option<String>,
}

fn parse_event(text: &str) -> Result<NotifyEvent, String> {
    NotifyEvent::parse(text).ok_or_else(|| {
        let known: Vec<&str> = NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
        format!("unknown event {text:?}: one of {}", known.join(", "))
    })
}

impl Owner {
    /// `template T` or `environment E`, for messages.
    fn describe(&self) -> String {
        match (&self.template, &self.environment) {
            (Some(template), _) => format!("template {template}"),
            (None, Some(environment)) => format!("environment {environment}"),
            (None, None) => "nothing".to_owned(),
        }
    }

    async fn read(&self, client: &Client) -> Result<TemplateNotify, CliError> {
        Ok(match (&self.template, &self.environment) {
            (Some(template), _) => client.template_notify(template).await?,
            (None, Some(environment)) => client.environment_notify(environment).await?,
            (None, None) => return Err(CliError::Usage("name --template or --environment".into())),
        })
    }

    async fn write(
        &self,
        client: &Client,
        body: &TemplateNotify,
    ) -> Result<TemplateNotify, CliError> {
        Ok(match (&self.template, &self.environment) {
            (Some(template), _) => client.put_template_notify(template, body).await?,
            (None, Some(environment)) => client.put_environment_notify(environment, body).await?,
            (None, None) => return Err(CliError::Usage("name --template or --environment".into())),
        })
    }
}

pub async fn run(ctx: &Ctx, command: NotifyCommand) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let answer = match command {
        NotifyCommand::Show(args) => args.owner.read(&client).await?,
        NotifyCommand::Set(args) => {
            let mut list = args.owner.read(&client).await?;
            set(&mut list.targets, args.webhook.clone(), args.events);
            let saved = args.owner.write(&client, &list).await?;
            if !ctx.json() {
                eprintln!("webhook set on {}", args.owner.describe());
            }
            saved
        }
        NotifyCommand::Clear(args) => {
            let mut list = args.owner.read(&client).await?;
            let before = list.targets.len();
            match &args.webhook {
                Some(url) => list.targets.retain(|t| &t.url != url),
                None => list.targets.clear(),
            }
            if let Some(url) = &args.webhook
                && list.targets.len() == before
            {
                return Err(CliError::api(
                    404,
                    "not_found",
                    format!("{} has no webhook {url}", args.owner.describe()),
                ));
            }
            let saved = args.owner.write(&client, &list).await?;
            if !ctx.json() {
                eprintln!(
                    "{} webhook(s) removed from {}",
                    before - saved.targets.len(),
                    args.owner.describe()
                );
            }
            saved
        }
    };
    if ctx.json() {
        output::print_json(&answer)?;
    } else {
        output::print(&table(&answer))?;
    }
    Ok(Exit::Ok)
}

/// Adds `url` with `events`, or gives the one already there these events.
fn set(targets: &mut Vec<NotifyTarget>, url: String, events: Vec<NotifyEvent>) {
    let mut events = events;
    events.dedup();
    match targets.iter_mut().find(|t| t.url == url) {
        Some(target) => target.events = events,
        None => targets.push(NotifyTarget { url, events }),
    }
}

pub fn table(answer: &TemplateNotify) -> String {
    let rows: Vec<Vec<String>> = answer
        .targets
        .iter()
        .map(|t| {
            let events = if t.events.is_empty() {
                "all".to_owned()
            } else {
                let names: Vec<&str> = t.events.iter().map(|e| e.as_str()).collect();
                names.join(",")
            };
            vec![t.url.clone(), events]
        })
        .collect();
    render_table(&["url", "events"], &rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_adds_or_replaces_the_events_of_the_same_url() {
        let mut targets = Vec::new();
        set(&mut targets, "https://a.example/x".into(), vec![]);
        set(
            &mut targets,
            "https://b.example/y".into(),
            vec![NotifyEvent::DeploymentFailed],
        );
        set(
            &mut targets,
            "https://a.example/x".into(),
            vec![NotifyEvent::DeploymentRunning],
        );
        assert_eq!(targets.len(), 2);
        assert_eq!(targets[0].events, [NotifyEvent::DeploymentRunning]);
        let text = table(&TemplateNotify { targets });
        assert!(text.starts_with("URL"), "{text}");
        assert!(text.contains("deployment.failed"), "{text}");
        let empty = table(&TemplateNotify {
            targets: vec![NotifyTarget {
                url: "https://c.example".into(),
                events: vec![],
            }],
        });
        assert!(empty.contains("all"), "{empty}");
    }

    #[test]
    fn events_are_checked_when_parsed() {
        assert_eq!(parse_event("test_run.ended"), Ok(NotifyEvent::TestRunEnded));
        let err = parse_event("deploy").expect_err("unknown");
        assert!(err.contains("deployment.failed"), "{err}");
    }
}
