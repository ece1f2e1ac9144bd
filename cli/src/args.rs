//! The command line, as clap derive types: one enum of subcommands.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::output::Format;
use crate::target::Target;

#[derive(Debug, Parser)]
#[command(
    name = "sdp",
    version,
    about = "The SDP command line: sandboxes, deployments, logs and routes",
    after_help = AFTER_HELP,
)]
pub struct Cli {
    /// Output: `table` for people, `json` for scripts (errors too).
    #[arg(short, long, global = true, value_enum, default_value = "table")]
    pub output: Format,
    /// The control plane, e.g. https://sdp.example.com (default: the one
    /// you logged in to).
    #[arg(long, global = true, env = "SDP_URL")]
    pub url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

/// Shown after `--help`: the environment and the exit codes (the same
/// table as [`crate::exit::TABLE`]; a test keeps them equal).
pub const AFTER_HELP: &str = "\
Environment:
  SDP_URL            the control plane (like --url)
  SDP_TOKEN          a session token, instead of the stored login
  SDP_NATS_URL, SDP_NATS_USER, SDP_NATS_PASSWORD, SDP_NATS_CREDS   for `sdp tap`
  NO_COLOR           no colour
  XDG_CONFIG_HOME    where the login is stored (sdp/session.json, mode 0600)

Exit codes:
  0  ok (a followed deployment is running)
  1  a deployment failed
  2  usage error (bad arguments, or input the server refused)
  3  authentication: not logged in, session expired, wrong password, forbidden
  4  a deployment was cancelled
  5  --timeout ran out (the deployment goes on)
  6  control plane or NATS unreachable, or a server error
  7  not found or conflict";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with your git (Bitbucket) credential; the password is prompted.
    Login(LoginArgs),
    /// End the session and forget the stored token.
    Logout,
    /// Who the stored session belongs to.
    Whoami,
    /// List, show, create, remove, pin and renew sandboxes.
    #[command(subcommand)]
    Sandbox(SandboxCommand),
    /// Deploy services into a sandbox and follow them to the end.
    Deploy(DeployArgs),
    /// Deploy a past deployment's commit again, into its sandbox (roll
    /// back), and follow it to the end.
    #[command(visible_alias = "redeploy")]
    Rollback(RollbackArgs),
    /// A deployment's build log (`-f`: follow it live).
    Logs(LogsArgs),
    /// Past deployments, newest first.
    History(HistoryArgs),
    /// The audit trail: who changed what, newest first (admins see all,
    /// others their own actions and their sandboxes').
    Audit(AuditArgs),
    /// Build statuses (Bitbucket) and outgoing webhooks sent, newest
    /// first, with each one's last outcome.
    Deliveries(DeliveriesArgs),
    /// A sandbox's routes, or change one.
    Routes(RoutesArgs),
    /// Autodeploy: redeploy a service of a sandbox when its branch is
    /// pushed to (on), or no longer (off).
    Autodeploy(AutodeployArgs),
    /// `autodeploy`'s first name, kept for scripts: `sdp follow SANDBOX
    /// REPO [--off]`.
    #[command(hide = true)]
    Follow(FollowArgs),
    /// A service's env in a sandbox (over the template's), or change it:
    /// KEY=VALUE sets, --unset KEY removes; a running service restarts
    /// with it.
    Env(EnvArgs),
    /// A sandbox's resources (databases): `ls`, `reset`, `add` or `rm` one.
    #[command(subcommand)]
    Resource(crate::commands::resource::ResourceCommand),
    /// Outgoing webhooks of a template or an environment: `show`, `set`
    /// one (add, or change its events), `clear` one or all.
    #[command(subcommand)]
    Notify(crate::commands::notify::NotifyCommand),
    /// Cancel a deployment.
    Cancel {
        /// The deployment id.
        id: String,
    },
    /// The agents and whether they are online.
    Agents,
    /// Check an agent against the bus contract (docs/AGENTS.md).
    #[command(subcommand)]
    Agent(crate::commands::agent_check::AgentCommand),
    /// Open the sandbox's gateway URL (prints it when not on a terminal).
    Open { sandbox: String },
    /// Print bus messages as JSON lines ({subject, data}) from NATS.
    Tap(TapArgs),
    /// Run the sandbox's tests (the template's `tests`, or --repo/--branch)
    /// against it; --follow prints the output and exits 0 passed, 1
    /// failed, 4 cancelled. `sdp test cancel ID` stops a run.
    Test(TestArgs),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// Your git user name (prompted when missing).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from stdin (one line) instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}

#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// List sandboxes, by name.
    Ls {
        /// At most this many (default: all, page by page).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
    },
    /// A sandbox with its services and routes.
    Show { name: String },
    /// Create a sandbox.
    Create {
        name: String,
        #[arg(long)]
        template: Option<String>,
        #[arg(long)]
        environment: Option<String>,
        /// Lifetime in hours (default: the server's).
        #[arg(long)]
        ttl_hours: Option<u32>,
        /// Never expire.
        #[arg(long)]
        pin: bool,
        /// A resource of the sandbox's own, `NAME=ENGINE:ENV_VAR` (e.g.
        /// `cache=redis:REDIS_URL`); repeat for more.
        #[arg(long = "resource", value_parser = crate::commands::resource::parse_spec)]
        resources: Vec<sdp_api::ResourceSpec>,
    },
    /// Tear a sandbox down.
    Rm { name: String },
    /// Keep a sandbox past its expiry.
    Pin { name: String },
    /// Let a sandbox expire again.
    Unpin { name: String },
    /// Push a sandbox's expiry out (by its TTL, or --ttl-hours).
    Renew {
        name: String,
        #[arg(long)]
        ttl_hours: Option<u32>,
    },
    /// Whether each running service's branch moved since its deployed
    /// commit, and by how many commits.
    Stale { name: String },
    /// Wake a sleeping sandbox: returns once its services are healthy.
    Wake { name: String },
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The sandbox (created if missing).
    pub sandbox: String,
    /// REPO@BRANCH, one or more (REPO alone: the branch the sandbox has).
    #[arg(required = true, value_parser = parse_target)]
    pub targets: Vec<Target>,
    /// Start the deployments and return at once.
    #[arg(long)]
    pub detach: bool,
    /// Give up following after this long (e.g. 90s, 10m); exit 5. The
    /// deployments go on.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
    /// Deploy this commit of the branch (full SHA; its head or an
    /// ancestor) instead of the head. One target only.
    #[arg(long, value_parser = parse_commit)]
    pub commit: Option<String>,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The deployment whose commit to deploy again (see `sdp history`).
    pub id: String,
    /// Start the deployment and return at once.
    #[arg(long)]
    pub detach: bool,
    /// Give up following after this long (e.g. 90s, 10m); exit 5.
    #[arg(long, value_parser = parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TestArgs {
    #[command(subcommand)]
    pub command: Option<TestCommand>,
    /// The sandbox to test.
    #[arg(required = true)]
    pub sandbox: Option<String>,
    /// The repo holding the tests (default: the template's).
    #[arg(long)]
    pub repo: Option<String>,
    /// Its branch (default: the template's, else main).
    #[arg(long)]
    pub branch: Option<String>,
    /// Follow the run's output to its end; exit 0 passed, 1 failed, 4
    /// cancelled.
    #[arg(short, long)]
    pub follow: bool,
    /// List the sandbox's test runs, newest first, instead.
    #[arg(long, conflicts_with_all = ["repo", "branch", "follow"])]
    pub list: bool,
    /// With --list: at most this many (default: all, page by page).
    #[arg(long, requires = "list", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

/// What `sdp test` does besides starting a run.
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Cancel a test run that has not ended: its command stops and its
    /// container is removed; it ends `cancelled` (your name in its log).
    Cancel {
        /// The run's id (`sdp test SANDBOX --list`).
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The deployment id.
    pub id: String,
    /// Follow the log live until the deployment settles (with
    /// `--runtime`: until the container stops or you press Ctrl-C).
    #[arg(short, long)]
    pub follow: bool,
    /// The running container's own output instead of the build log.
    #[arg(long)]
    pub runtime: bool,
    /// With --runtime: the last N lines first (0-10000; server default
    /// 1000 without --since).
    #[arg(long, requires = "runtime")]
    pub tail: Option<u32>,
    /// With --runtime: only lines since then (RFC 3339 or unix seconds).
    #[arg(long, requires = "runtime")]
    pub since: Option<String>,
    /// With --runtime: only lines containing this text (matched on the
    /// agent, plain and case-sensitive).
    #[arg(long, requires = "runtime")]
    pub grep: Option<String>,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    #[arg(long)]
    pub sandbox: Option<String>,
    #[arg(long)]
    pub repo: Option<String>,
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many, newest first (default: all, page by page).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this user's actions (or `bitbucket-push`).
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub sandbox: Option<String>,
    /// Only this action (`login`, `deploy`, `sandbox.create`, …).
    #[arg(long)]
    pub action: Option<String>,
    /// From this time on (RFC 3339, e.g. 2026-01-01T00:00:00Z).
    #[arg(long)]
    pub since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many, newest first (default: all, page by page).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DeliveriesArgs {
    /// Only this sandbox's.
    pub sandbox: Option<String>,
    /// At most this many, newest first (default: all, page by page).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RoutesArgs {
    /// The sandbox whose routes to list.
    pub sandbox: Option<String>,
    #[command(subcommand)]
    pub action: Option<RoutesAction>,
}

#[derive(Debug, Subcommand)]
pub enum RoutesAction {
    /// Send SERVICE's requests in SANDBOX to TARGET (an http(s) URL).
    Set {
        sandbox: String,
        service: String,
        target: String,
    },
    /// Drop the manual route: back to the sandbox's own or the baseline.
    Reset { sandbox: String, service: String },
    /// Check every route from the sandbox gateway's network: HTTP status
    /// and latency, or the broken hop and why.
    Check { sandbox: String },
}

#[derive(Debug, Args)]
pub struct AutodeployArgs {
    /// Turn it on or off.
    #[arg(value_enum)]
    pub switch: Switch,
    /// The sandbox.
    pub sandbox: String,
    /// The service (repo name); a push to the branch of its newest
    /// deployment redeploys it.
    pub repo: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

/// The arguments of the hidden `sdp follow` (autodeploy's first name).
#[derive(Debug, Args)]
pub struct FollowArgs {
    /// The sandbox.
    pub sandbox: String,
    /// The service (repo name).
    pub repo: String,
    /// Autodeploy off.
    #[arg(long)]
    pub off: bool,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// The sandbox.
    pub sandbox: String,
    /// The service (repo name).
    pub repo: String,
    /// Variables to set, as KEY=VALUE (the value may hold `=`).
    #[arg(value_parser = parse_assignment)]
    pub set: Vec<(String, String)>,
    /// A variable to remove (repeatable).
    #[arg(long = "unset", value_name = "KEY")]
    pub unset: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TapArgs {
    /// The subject to listen on.
    #[arg(default_value = "deploy.>")]
    pub subject: String,
    /// NATS server(s), comma separated.
    #[arg(long, env = "SDP_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// A .creds file (JWT + nkey). User and password come from
    /// SDP_NATS_USER / SDP_NATS_PASSWORD, never from arguments.
    #[arg(long, env = "SDP_NATS_CREDS")]
    pub nats_creds: Option<PathBuf>,
    /// CA certificate for a TLS server.
    #[arg(long, env = "SDP_NATS_TLS_CA")]
    pub nats_tls_ca: Option<PathBuf>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
}

fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text)
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

fn parse_commit(text: &str) -> Result<String, String> {
    sdp_bus::validate::commit(text)
        .map(|()| text.to_owned())
        .map_err(|e| e.to_string())
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (use e.g. 90s, 10m, 1h)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn test_takes_a_sandbox_or_the_cancel_of_a_run() {
        let cli = Cli::try_parse_from(["sdp", "test", "alpha", "--follow"]).expect("parse");
        let Command::Test(args) = cli.command else {
            panic!("test")
        };
        assert_eq!(args.sandbox.as_deref(), Some("alpha"));
        assert!(args.follow && args.command.is_none());
        let cli = Cli::try_parse_from(["sdp", "test", "cancel", "r-1"]).expect("parse");
        let Command::Test(args) = cli.command else {
            panic!("test")
        };
        assert!(matches!(args.command, Some(TestCommand::Cancel { ref id }) if id == "r-1"));
        assert!(
            Cli::try_parse_from(["sdp", "test"]).is_err(),
            "a sandbox or cancel"
        );
        assert!(
            Cli::try_parse_from(["sdp", "test", "cancel"]).is_err(),
            "cancel needs an id"
        );
    }

    #[test]
    fn help_lists_the_exit_codes() {
        assert!(AFTER_HELP.ends_with(crate::exit::TABLE));
    }

    #[test]
    fn deploy_takes_several_targets_and_a_timeout() {
        let cli = Cli::try_parse_from([
            "sdp",
            "deploy",
            "alpha",
            "users@feature/x",
            "orders",
            "--timeout",
            "90s",
            "-o",
            "json",
        ])
        .expect("parses");
        assert_eq!(cli.output, Format::Json);
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.sandbox, "alpha");
        assert_eq!(args.targets.len(), 2);
        assert_eq!(args.targets[1].branch, None);
        assert_eq!(args.timeout, Some(Duration::from_secs(90)));
    }

    #[test]
    fn routes_lists_or_changes() {
        let cli = Cli::try_parse_from(["sdp", "routes", "alpha"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Routes(RoutesArgs {
                sandbox: Some(_),
                action: None
            })
        ));
        let cli = Cli::try_parse_from(["sdp", "routes", "set", "alpha", "users", "http://x"])
            .expect("parses");
        assert!(matches!(
            cli.command,
            Command::Routes(RoutesArgs {
                action: Some(RoutesAction::Set { .. }),
                ..
            })
        ));
    }

    #[test]
    fn autodeploy_takes_on_or_off_a_sandbox_and_a_repo() {
        for (word, switch) in [("on", Switch::On), ("off", Switch::Off)] {
            let cli =
                Cli::try_parse_from(["sdp", "autodeploy", word, "alpha", "users"]).expect("parses");
            let Command::Autodeploy(args) = cli.command else {
                panic!("not autodeploy")
            };
            assert_eq!(
                (args.switch, args.sandbox.as_str(), args.repo.as_str()),
                (switch, "alpha", "users")
            );
        }
        assert!(Cli::try_parse_from(["sdp", "autodeploy", "alpha", "users"]).is_err());
    }

    /// `sdp follow`, autodeploy's first name, still parses but is not
    /// listed.
    #[test]
    fn follow_takes_a_sandbox_a_repo_and_off() {
        let cli =
            Cli::try_parse_from(["sdp", "follow", "alpha", "users", "--off"]).expect("parses");
        let Command::Follow(args) = cli.command else {
            panic!("not follow")
        };
        assert_eq!(
            (args.sandbox.as_str(), args.repo.as_str(), args.off),
            ("alpha", "users", true)
        );
        let help = <Cli as clap::CommandFactory>::command()
            .render_help()
            .to_string();
        assert!(help.contains("autodeploy"), "{help}");
        assert!(
            !help.lines().any(|l| l.trim_start().starts_with("follow ")),
            "{help}"
        );
    }

    #[test]
    fn env_takes_assignments_and_unsets() {
        let cli = Cli::try_parse_from([
            "sdp", "env", "alpha", "users", "A=1", "B=x=y", "--unset", "C", "--unset", "D",
        ])
        .expect("parses");
        let Command::Env(args) = cli.command else {
            panic!("not env")
        };
        assert_eq!(
            args.set,
            [("A".into(), "1".into()), ("B".into(), "x=y".into())]
        );
        assert_eq!(args.unset, ["C", "D"]);
        let err = Cli::try_parse_from(["sdp", "env", "alpha", "users", "NOEQUALS"])
            .expect_err("not an assignment");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn deploy_takes_a_full_commit_and_rollback_an_id() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let cli = Cli::try_parse_from(["sdp", "deploy", "alpha", "users@main", "--commit", sha])
            .expect("parses");
        let Command::Deploy(args) = cli.command else {
            panic!("not deploy")
        };
        assert_eq!(args.commit.as_deref(), Some(sha));
        let err = Cli::try_parse_from(["sdp", "deploy", "alpha", "users@main", "--commit", "abc"])
            .expect_err("a short sha is refused");
        assert_eq!(err.exit_code(), 2);
        for name in ["rollback", "redeploy"] {
            let cli = Cli::try_parse_from(["sdp", name, "d0190"]).expect("parses");
            assert!(matches!(
                cli.command,
                Command::Rollback(RollbackArgs { .. })
            ));
        }
    }

    #[test]
    fn notify_takes_one_owner_a_url_and_events() {
        use crate::commands::notify::NotifyCommand;
        let cli = Cli::try_parse_from([
            "sdp",
            "notify",
            "set",
            "--environment",
            "base",
            "--webhook",
            "https://hooks.example/x",
            "--event",
            "deployment.failed",
            "--event",
            "test_run.ended",
        ])
        .expect("parses");
        let Command::Notify(NotifyCommand::Set(args)) = cli.command else {
            panic!("not notify set")
        };
        assert_eq!(args.owner.environment.as_deref(), Some("base"));
        assert_eq!(args.events.len(), 2);
        assert_eq!(args.webhook, "https://hooks.example/x");
        assert_eq!(cli.url, None, "--webhook is not the control plane's --url");
        for bad in [
            &["sdp", "notify", "show"][..],
            &[
                "sdp",
                "notify",
                "show",
                "--template",
                "t",
                "--environment",
                "e",
            ],
            &[
                "sdp",
                "notify",
                "set",
                "--template",
                "t",
                "--webhook",
                "u",
                "--event",
                "x",
            ],
        ] {
            let err = Cli::try_parse_from(bad).expect_err("refused");
            assert_eq!(err.exit_code(), 2, "{bad:?}");
        }
    }

    #[test]
    fn a_bad_target_is_a_usage_error() {
        let err =
            Cli::try_parse_from(["sdp", "deploy", "alpha", "Users@main"]).expect_err("refused");
        assert_eq!(err.exit_code(), 2);
    }
}
