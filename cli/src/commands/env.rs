//! `sdp env SANDBOX REPO [KEY=VALUE…] [--unset KEY…]` over
//! `/api/sandboxes/{name}/services/{repo}/env`: the sandbox's own env for
//! a service, over the template's. A change reads the env, applies the
//! assignments and removals, and writes it whole; the control plane
//! re-applies a running service with it.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::api::segment;
use crate::args::EnvArgs;
use crate::output::{self, render_table};
use crate::{CliError, Ctx, Exit};

pub async fn run(ctx: &Ctx, args: EnvArgs) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let path = format!(
        "/api/sandboxes/{}/services/{}/env",
        segment(&args.sandbox),
        segment(&args.repo)
    );
    let mut answer: Value = client.get(&path).await?;
    if !args.set.is_empty() || !args.unset.is_empty() {
        // Values are shown only to who may change them: without them,
        // the write would be refused anyway.
        let Some(current) = answer["env"].as_object() else {
            return Err(CliError::Api {
                status: 403,
                code: "forbidden".to_owned(),
                message: format!(
                    "only the owner of sandbox {} or an admin may change its env",
                    args.sandbox
                ),
            });
        };
        let mut env: BTreeMap<String, Value> = current
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for key in &args.unset {
            env.remove(key);
        }
        for (key, value) in &args.set {
            env.insert(key.clone(), Value::String(value.clone()));
        }
        answer = client.put(&path, &json!({ "env": env })).await?;
        if !ctx.json() {
            let restart = if answer["reapplying"].as_bool() == Some(true) {
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
pub fn table(answer: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut rows: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(template) = answer["template_env"].as_object() {
        for (key, value) in template {
            let row = vec![key.clone(), text(value), "template".into()];
            rows.insert(key.clone(), row);
        }
    }
    for key in answer["keys"].as_array().into_iter().flatten() {
        let key = text(key);
        let value = match answer["env"].get(&key) {
            Some(value) => text(value),
            None => "(hidden)".to_owned(),
        };
        rows.insert(key.clone(), vec![key, value, "sandbox".into()]);
    }
    render_table(
        &["key", "value", "from"],
        &rows.into_values().collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sandbox_overrides_the_template_and_hidden_values_say_so() {
        let answer = json!({
            "keys": ["A", "B"],
            "env": { "A": "sandbox", "B": "b" },
            "template_env": { "A": "template", "C": "c" },
        });
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
        let hidden = table(&json!({ "keys": ["A"], "template_env": {} }));
        assert!(hidden.contains("(hidden)"), "{hidden}");
    }
}
