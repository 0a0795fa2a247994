//! `orderly-api` flags: `serve` (default), `create-admin` and `openapi`.

use std::io::{Read, Write};

use anyhow::Context;
use clap::{Parser, Subcommand};
use orderly_core::Settings;
use orderly_db::users::Role;
use secrecy::{ExposeSecret, SecretString};
use utoipa::OpenApi;

use crate::routes::auth::register::create_user;
use crate::validation::{email_address, password_length};

/// Orderly's HTTP API.
#[derive(Debug, Parser)]
#[command(name = "orderly-api", version)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API on API_ADDR.
    Serve,
    /// Create an admin account; the password is read from standard input.
    CreateAdmin {
        /// The admin's e-mail.
        #[arg(long)]
        email: String,
        /// The admin's display name.
        #[arg(long, default_value = "Administrator")]
        name: String,
        /// Read the password from standard input (required: never pass it as a flag).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Print the OpenAPI document as JSON and exit (needs no configuration, database or
    /// Redis: `deploy/openapi-lint.sh` lints what this prints).
    Openapi,
}

/// Runs a command that needs no settings (`openapi`), before any are read; `None` for
/// the others, which [`run`] serves.
pub fn run_without_settings(cli: &Cli) -> Option<anyhow::Result<()>> {
    match cli.command {
        Some(Command::Openapi) => Some(print_openapi()),
        _ => None,
    }
}

/// Writes the OpenAPI document, as served at `/api/v1/openapi.json`, to standard output.
pub fn print_openapi() -> anyhow::Result<()> {
    let json = crate::routes::openapi_document::ApiDoc::openapi()
        .to_pretty_json()
        .context("serialising the OpenAPI document")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}").context("writing the OpenAPI document")?;
    Ok(())
}

/// Runs the parsed command.
pub async fn run(cli: Cli, settings: Settings) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = crate::startup::Application::build(settings).await?;
            tracing::info!(port = app.port(), "orderly-api listening");
            app.run_until_stopped()
                .await
                .context("the HTTP server failed")
        }
        Command::CreateAdmin { email, name, .. } => create_admin(settings, &email, &name).await,
        Command::Openapi => print_openapi(),
    }
}

async fn create_admin(settings: Settings, email: &str, name: &str) -> anyhow::Result<()> {
    email_address(email)
        .map_err(|_| anyhow::anyhow!("--email: `{email}` is not a valid e-mail address"))?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("reading the password from standard input")?;
    let password = SecretString::from(password.trim_end_matches(['\r', '\n']).to_owned());
    password_length(password.expose_secret())
        .map_err(|e| anyhow::anyhow!("password: {}", e.message.unwrap_or_default()))?;
    let db = orderly_core::db::connect(&settings, orderly_core::config::Binary::Api, 2).await?;
    let user = create_user(
        &db,
        email,
        password.expose_secret().to_owned(),
        name,
        None,
        Role::Admin,
    )
    .await
    .context("creating the admin")?;
    tracing::info!(user.id = %user.id, "admin created");
    Ok(())
}
