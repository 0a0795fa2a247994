use std::path::Path;

use super::*;
use orderly_core::config::DEFAULT_TEMPLATES_DIR as DEFAULT_DIR;
use orderly_testing::copy_of_templates;

/// Loads `dir` expecting a refusal; returns its message.
fn refusal(dir: &Path) -> String {
    let error = Templates::load(dir).expect_err("the templates must be refused");
    error.to_string()
}

#[test]
fn the_templates_of_the_source_tree_load() {
    let templates = Templates::load(Path::new(DEFAULT_DIR)).unwrap();
    assert_eq!(templates.dir(), Path::new(DEFAULT_DIR));
}

#[test]
fn a_template_with_a_syntax_error_is_refused_at_load_naming_the_file() {
    let dir = copy_of_templates();
    let file = dir.join("email/booking_confirmed.html");
    std::fs::write(
        &file,
        "{% extends \"email/base.html\" %}\n{% block content %}{% if %}\n",
    )
    .unwrap();

    let message = refusal(&dir);

    assert!(message.starts_with("TEMPLATES_DIR: "), "{message}");
    assert!(message.contains(&file.display().to_string()), "{message}");
    assert!(message.contains("syntax error"), "{message}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_folder_without_templates_is_refused_naming_it() {
    let dir = std::env::temp_dir().join(format!("orderly-no-templates-{}", uuid::Uuid::new_v4()));

    let message = refusal(&dir);

    assert!(
        message.starts_with(&format!(
            "TEMPLATES_DIR: cannot read {}",
            dir.join("email").display()
        )),
        "{message}"
    );
}
