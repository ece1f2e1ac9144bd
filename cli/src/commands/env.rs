//! `sdp env SANDBOX REPO [KEY=VALUE…] [--unset KEY…]` over
//! `/api/sandboxes/{name}/services/{repo}/env`: the sandbox's own env for
//! a service, over the template's. A change reads the env, applies the
//! assignments and removals, and writes it whole; the control plane
//! re-applies a running service with it.

use std::collections::BTreeMap;

use sdp_api::{ServiceEnv, ServiceEnvWrite};

use crate::args::EnvArgs;
use crate::output::{self, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: EnvArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let mut answer = client.service_env(&args.sandbox, &args.repo).await?;
    if !args.set.is_empty() || !args.unset.is_empty() {
        // Values are shown only to who may change them: without them,
        // the write would be refused anyway.
        let Some(mut env) = answer.env.take() else {
            return Err(CliError::api(
                403,
                "forbidden",
                format!(
                    "only the owner of sandbox {} or an admin may change its env",
                    args.sandbox
                ),
            ));
        };
        for key in &args.unset {
            env.remove(key);
        }
        for (key, value) in &args.set {
            env.insert(key.clone(), value.clone());
        }
        answer = client
            .put_service_env(&args.sandbox, &args.repo, &ServiceEnvWrite { env })
            .await?;
        if !ctx.json() {
            let restart = if answer.reapplying {
                ": the running service restarts with it"
            } else {
                ": the next deploy uses it"
            };
            eprintln!("env of {} in {} saved{restart}", args.repo, args.sandbox);
        }
    }
    if ctx.json() {
        output::print_json(&answer)?;
    } else {
        output::print(&table(&answer))?;
    }
    Ok(Exit::Ok)
}

/// The service's env as a table: key, value, where it comes from (the
/// sandbox's over the template's; a hidden value for who may not see it).
pub fn table(answer: &ServiceEnv) -> String {
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in &answer.template_env {
        let row = vec![key.clone(), value.clone(), "template".into()];
        rows.insert(key.clone(), row);
    }
    for key in &answer.keys {
        let value = match answer.env.as_ref().and_then(|env| env.get(key)) {
            Some(value) => value.clone(),
            None => "(hidden)".to_owned(),
        };
        rows.insert(key.clone(), vec![key.clone(), value, "sandbox".into()]);
    }
    render_table(
        &["key", "value", "from"],
        &rows.into_values().collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn service_env(keys: &[&str], env: Option<BTreeMap<String, String>>) -> ServiceEnv {
        ServiceEnv {
            sandbox: "alpha".into(),
            repo: "users".into(),
            keys: keys.iter().map(|k| (*k).to_owned()).collect(),
            env,
            template_env: map(&[("A", "template"), ("C", "c")]),
            reapplying: false,
        }
    }

    #[test]
    fn the_sandbox_overrides_the_template_and_hidden_values_say_so() {
        let answer = service_env(&["A", "B"], Some(map(&[("A", "sandbox"), ("B", "b")])));
        let text = table(&answer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("KEY"), "{text}");
        assert!(
            lines[1].starts_with('A') && lines[1].ends_with("sandbox"),
            "{text}"
        );
        assert!(
            lines[2].starts_with('B') && lines[2].ends_with("sandbox"),
            "{text}"
        );
        assert!(
            lines[3].starts_with('C') && lines[3].ends_with("template"),
            "{text}"
        );
        assert!(!text.contains("(hidden)"), "{text}");
        let hidden = table(&service_env(&["A"], None));
        assert!(hidden.contains("(hidden)"), "{hidden}");
    }
}
