//! The e-mail a customer receives, as the SMTP server receives it: a plain-text and an HTML
//! part of the same message, with what the customer or a provider typed escaped in HTML.

use std::time::Duration;

use orderly_db::users::Role;
use orderly_testing::wait_until;

use crate::fakes::FakeSmtp;
use crate::harness::Pipeline;

const HOSTILE_TITLE: &str = "<script>alert(1)</script>\"><img src=x onerror=alert(1)>";

#[tokio::test]
async fn a_confirmation_email_has_a_text_and_an_html_part_and_escapes_the_listing_title_in_html() {
    let smtp = FakeSmtp::start(Duration::ZERO).await;
    let p = Pipeline::new(&[("SMTP_URL", &smtp.url)]).await;
    let listing = p.listing_titled(5, HOSTILE_TITLE).await;
    let customer = p.user(Role::Customer, None).await;
    let id = p.book(&customer, &listing, 2).await;
    let _worker = p.spawn_worker(&[]);

    let confirmation = || {
        smtp.mails()
            .into_iter()
            .find(|m| m.subject.starts_with("Your booking is confirmed"))
    };
    wait_until(
        "the confirmation e-mail arrived",
        Duration::from_secs(30),
        || async { confirmation().is_some() },
    )
    .await;
    let mail = confirmation().unwrap();

    assert_eq!(
        mail.subject,
        format!("Your booking is confirmed: {HOSTILE_TITLE}")
    );
    assert_eq!(mail.content_type, "multipart/alternative");
    assert_eq!(
        mail.parts,
        ["text/plain; charset=utf-8", "text/html; charset=utf-8"]
    );
    assert!(mail.text.contains(HOSTILE_TITLE), "{}", mail.text);
    assert!(mail.text.contains(&id.to_string()), "{}", mail.text);
    assert!(mail.text.contains("84.00 EUR"), "{}", mail.text);
    let html = mail.html.expect("an HTML part");
    assert!(html.contains(&id.to_string()), "{html}");
    assert!(
        html.contains(
            "&lt;script&gt;alert(1)&lt;&#x2f;script&gt;&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"
        ),
        "{html}"
    );
    assert!(
        !html.contains("<script>") && !html.contains("<img"),
        "{html}"
    );
}
