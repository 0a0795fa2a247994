//! The e-mail templates (`TEMPLATES_DIR/email/*.html` and `*.txt`), read and compiled once
//! at start-up (where `domain::messages::check` then renders every message from sample
//! data), so that a missing or broken file stops the worker instead of a customer's message.
//!
//! `.html` templates are HTML-escaped automatically; `.txt` templates are not.

pub mod filters;

use std::path::{Path, PathBuf};

use minijinja::syntax::SyntaxConfig;
use minijinja::value::Serde;
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;

/// The folder of `TEMPLATES_DIR` that holds the e-mail templates.
const EMAIL: &str = "email";

/// A template that cannot be used; each names the file and `TEMPLATES_DIR`.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The folder or a file could not be read.
    #[error("TEMPLATES_DIR: cannot read {}: {source}", path.display())]
    Unreadable {
        /// What could not be read.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A template the messages need is not there.
    #[error("TEMPLATES_DIR: {} is missing", path.display())]
    Missing {
        /// Where it was expected.
        path: PathBuf,
    },
    /// A file does not compile (a syntax error).
    #[error("TEMPLATES_DIR: {} is not a valid template: {source}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The engine's error, with the line.
        source: minijinja::Error,
    },
    /// A template failed to render (an unknown variable or filter, a missing include).
    #[error("TEMPLATES_DIR: {} does not render: {source}", path.display())]
    Render {
        /// The file.
        path: PathBuf,
        /// The engine's error, naming the template and line at fault.
        source: minijinja::Error,
    },
}

/// The compiled templates of `TEMPLATES_DIR`, built once and passed to what renders mail.
#[derive(Debug)]
pub struct Templates {
    env: Environment<'static>,
    dir: PathBuf,
}

impl Templates {
    /// Reads and compiles every file of `dir/email`: the first problem is the error.
    pub fn load(dir: &Path) -> Result<Self, TemplateError> {
        let mut env = Environment::new();
        env.set_syntax(whitespace());
        // A misspelt variable fails the start-up check instead of printing nothing.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        filters::register(&mut env);
        let folder = dir.join(EMAIL);
        let unreadable = |path: &Path| {
            let path = path.to_owned();
            move |source| TemplateError::Unreadable { path, source }
        };
        let mut entries = std::fs::read_dir(&folder)
            .map_err(unreadable(&folder))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(unreadable(&folder))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if file_name.starts_with('.') || !path.is_file() {
                continue;
            }
            let source = std::fs::read_to_string(&path).map_err(unreadable(&path))?;
            env.add_template_owned(format!("{EMAIL}/{file_name}"), source)
                .map_err(|source| TemplateError::Syntax { path, source })?;
        }
        Ok(Self {
            env,
            dir: dir.to_owned(),
        })
    }

    /// Renders template `name` (e.g. `email/reminder.html`) with `data`.
    pub fn render(&self, name: &str, data: &impl Serialize) -> Result<String, TemplateError> {
        let path = self.dir.join(name);
        let template = self.env.get_template(name).map_err(|e| match e.kind() {
            ErrorKind::TemplateNotFound => TemplateError::Missing { path: path.clone() },
            _ => TemplateError::Render {
                path: path.clone(),
                source: e,
            },
        })?;
        template
            .render(Value::from(Serde(data)))
            .map_err(|source| TemplateError::Render { path, source })
    }

    /// The folder the templates were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Block tags leave no blank lines or indentation behind (plain text is laid out by its
/// line breaks), and a file's final newline is kept.
fn whitespace() -> SyntaxConfig {
    let mut syntax = SyntaxConfig::builder();
    syntax
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(true);
    // The default delimiters always build.
    syntax.build().unwrap_or_default()
}

#[cfg(test)]
mod tests;
