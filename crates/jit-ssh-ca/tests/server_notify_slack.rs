//! What a requester writes reaches the approvers' chat (session 11's
//! review): a Slack-compatible notification carries their reason as text,
//! never as Slack markup (links, @channel mentions).

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Hook, TestCa, ORIGIN};
use serde_json::Value;

use jit_ssh_ca::notify::Backoff;

/// Waits (up to 10 s) for a Slack body whose text contains `needle`.
async fn slack_text(hook: &Hook, needle: &str) -> String {
    for _ in 0..200 {
        let found = hook.bodies.lock().unwrap().iter().find_map(|v: &Value| {
            v["text"]
                .as_str()
                .filter(|t| t.contains(needle))
                .map(str::to_owned)
        });
        if let Some(t) = found {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!(
        "no Slack message with {needle:?}: {:?}",
        hook.bodies.lock().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requesters_reason_cannot_ping_the_channel_or_plant_a_link_in_slack() {
    let hook = Hook::start(0).await;
    let t = TestCa::with_policy(
        "",
        &format!("\n[[notify]]\nkind = \"slack\"\nurl = \"{}\"\n", hook.url),
    );
    t.ca.start_notifications(Backoff {
        first: std::time::Duration::from_millis(50),
        attempts: 2,
        timeout: std::time::Duration::from_secs(2),
    });
    let mut bob = t.enroll("bob").await;
    // What bob types: a mention for everyone, and a "Decide" link of his own.
    let reason = "db fix <!channel> <https://evil.example/approve|Decide> & <@U024BE7LH>";
    let pk =
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .unwrap();
    let (s, created) = t
        .post(
            "/v1/requests",
            &serde_json::json!({
                "user": "bob", "host": "db-1.prod", "account": "postgres", "ttl": "5m",
                "reason": reason, "public_key": pk.public_key().to_openssh().unwrap(),
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap();
    assert_eq!(t.touch(id, &mut bob).await.0, StatusCode::OK);

    let text = slack_text(&hook, "waits for approval").await;
    // Slack reads `<…>` as a link or mention and `&` as an entity: what
    // bob wrote must arrive escaped, shown as he typed it.
    assert!(
        text.contains(
            "db fix &lt;!channel&gt; &lt;https://evil.example/approve|Decide&gt; &amp; &lt;@U024BE7LH&gt;"
        ),
        "{text}"
    );
    // The only markup is the CA's own link to this request.
    let decide = format!("<{ORIGIN}/approve/{id}|Decide>");
    assert_eq!(text.matches('<').count(), 1, "{text}");
    assert!(text.ends_with(&decide), "{text}");
}
