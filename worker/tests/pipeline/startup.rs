//! The worker refuses to start without what it needs, naming what is wrong.

use std::process::Command;

fn run_worker(vars: &[(&str, &str)]) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderly-worker"));
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in vars {
        command.env(k, v);
    }
    let output = command.output().expect("running orderly-worker");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_missing_variable_stops_the_worker_with_one_line_naming_it() {
    let (code, stderr) = run_worker(&[("REDIS_URL", "redis://127.0.0.1:1")]);
    assert_eq!(code, 2);
    assert_eq!(
        stderr.trim(),
        "orderly-worker: configuration error: DATABASE_URL: is not set"
    );
}

#[test]
fn an_unreachable_database_stops_the_worker_saying_so() {
    let (code, stderr) = run_worker(&[
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("cannot connect to PostgreSQL at DATABASE_URL"),
        "{stderr}"
    );
}

#[test]
fn an_unknown_queue_is_refused_by_name() {
    let (code, stderr) = run_worker(&[
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("WORKER_QUEUES", "email,pigeons"),
    ]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown queue `pigeons`"), "{stderr}");
}

#[test]
fn a_broken_template_stops_the_worker_before_it_connects_naming_the_file() {
    let dir = orderly_testing::copy_of_templates();
    let file = dir.join("email/hold_expired.html");
    std::fs::write(
        &file,
        "{% extends \"email/base.html\" %}{% block content %}\n",
    )
    .unwrap();
    let (code, stderr) = run_worker(&[
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("TEMPLATES_DIR", dir.to_str().unwrap()),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "orderly-worker: TEMPLATES_DIR: {} is not a valid template",
            file.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("PostgreSQL"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_templates_dir_without_templates_stops_the_worker_naming_it() {
    let (code, stderr) = run_worker(&[
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
        ("TEMPLATES_DIR", "/nonexistent/orderly-templates"),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "orderly-worker: TEMPLATES_DIR: cannot read /nonexistent/orderly-templates/email"
        ),
        "{stderr}"
    );
}

#[test]
fn in_production_the_worker_refuses_each_simulated_provider_naming_its_variable() {
    let base = [
        ("APP_ENV", "production"),
        ("JWT_SECRET", "a-production-secret-of-at-least-32-bytes!"),
        ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/nothing"),
        ("REDIS_URL", "redis://127.0.0.1:1"),
    ];
    let stripe = [
        ("STRIPE_SECRET_KEY", "sk_live_x"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_x"),
    ];
    let smtp = [("SMTP_URL", "smtp://127.0.0.1:1")];
    let twilio = [
        ("SMS_PROVIDER", "twilio"),
        ("TWILIO_ACCOUNT_SID", "AC123"),
        ("TWILIO_AUTH_TOKEN", "token"),
        ("TWILIO_FROM", "+15550000000"),
    ];
    let cases: [(Vec<(&str, &str)>, &str); 3] = [
        (
            [&smtp[..], &twilio[..]].concat(),
            "configuration error: STRIPE_SECRET_KEY",
        ),
        (
            [&stripe[..], &twilio[..]].concat(),
            "configuration error: SMTP_URL",
        ),
        (
            [&stripe[..], &smtp[..]].concat(),
            "configuration error: SMS_PROVIDER",
        ),
    ];
    for (providers, named) in cases {
        let vars = [&base[..], &providers[..]].concat();
        let (code, stderr) = run_worker(&vars);
        assert_eq!(code, 2, "{named}: {stderr}");
        assert!(stderr.contains(named), "expected `{named}` in: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
}
