//! `sdp login`, `logout`, `whoami`. The password is read from the
//! terminal without echo (or one line of stdin with `--password-stdin`),
//! sent once in the login body, and never stored or printed; the token
//! the control plane answers with is stored 0600 (see [`crate::session`]).

use std::io::BufRead;

use serde_json::json;

use sdp_api::client::ClientError;

use crate::args::LoginArgs;
use crate::output::{self, cell_of, render_table};
use crate::session::{self, Stored};
use crate::{CliError, Ctx, Exit};

pub async fn login(ctx: &Ctx, args: LoginArgs) -> Result<Exit, CliError> {
    let stored = session::load(&ctx.env)?;
    let (url, _) = session::resolve(ctx.url.as_deref(), None, stored.as_ref())?;
    let username = match args.username {
        Some(username) => username,
        None => prompt_line("Username: ")?,
    };
    if username.trim().is_empty() {
        return Err(CliError::Usage("a username is required".to_owned()));
    }
    let password = if args.password_stdin {
        read_stdin_line()?
    } else {
        rpassword::prompt_password(format!("Password for {username}: "))
            .map_err(CliError::Prompt)?
    };
    let client = crate::api::Client::new(&url, None);
    let answer = client.login(username.trim(), &password).await?;
    drop(password);
    let token = answer.token;
    let user = answer.user.username;
    // As the server wrote it (the stored session shows it as is).
    let expires_at = serde_json::to_value(answer.expires_at)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    let path = session::save(
        &ctx.env,
        &Stored {
            url: url.clone(),
            token,
            username: user.clone(),
            expires_at: expires_at.clone(),
        },
    )?;
    if ctx.json() {
        output::print_json(&json!({
            "user": { "username": user },
            "url": url,
            "expires_at": expires_at,
        }))?;
    } else {
        eprintln!(
            "Logged in to {url} as {user}; session stored in {}",
            path.display()
        );
    }
    Ok(Exit::Ok)
}

pub async fn logout(ctx: &Ctx) -> Result<Exit, CliError> {
    let client = ctx.client()?;
    if client.token().is_some() {
        // A session the server has already forgotten is still logged out.
        match client.logout().await {
            Ok(()) | Err(ClientError::Api { status: 401, .. }) => {}
            Err(err) => return Err(err.into()),
        }
    }
    let removed = session::remove(&ctx.env)?;
    if ctx.json() {
        output::print_json(&json!({ "logged_out": true, "removed": removed }))?;
    } else {
        eprintln!("Logged out.");
    }
    Ok(Exit::Ok)
}

pub async fn whoami(ctx: &Ctx) -> Result<Exit, CliError> {
    let client = ctx.logged_in()?;
    let me = client.me().await?;
    if ctx.json() {
        output::print_json(&me)?;
    } else {
        output::print(&render_table(
            &["user", "url", "expires", "can deploy"],
            &[vec![
                cell_of(&me.username),
                client.base().to_owned(),
                cell_of(&me.expires_at),
                cell_of(&me.can_deploy),
            ]],
        ))?;
    }
    Ok(Exit::Ok)
}

fn prompt_line(prompt: &str) -> Result<String, CliError> {
    eprint!("{prompt}");
    read_stdin_line()
}

fn read_stdin_line() -> Result<String, CliError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(CliError::Prompt)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}
