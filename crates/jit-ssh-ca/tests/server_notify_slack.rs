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

/// Waits (up to 10 s) for a Slack body whose text contains `needle`.
async fn slack_body(hook: &Hook, needle: &str) -> Value {
    slack_text(hook, needle).await;
    let bodies = hook.bodies.lock().unwrap();
    bodies
        .iter()
        .find(|v| v["text"].as_str().is_some_and(|t| t.contains(needle)))
        .cloned()
        .unwrap()
}

/// A bare URL (or domain) in a reason (session 12): Slack links it in a
/// message's `text` whatever the escaping. The message goes as Block Kit
/// sections whose `mrkdwn` text is `verbatim` (Slack's documented switch
/// for "don't make links or mentions of plain text"), so the URL shows as
/// typed and the CA's Decide link stays the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_url_in_a_reason_is_sent_as_verbatim_text_to_slack() {
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
    let reason = "approve at https://evil.example/approve or evil.example/ok @here";
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

    let body = slack_body(&hook, "waits for approval").await;
    let blocks = body["blocks"]
        .as_array()
        .unwrap_or_else(|| panic!("no Block Kit sections: Slack links the URL in `text`: {body}"));
    let decide = format!("<{ORIGIN}/approve/{id}|Decide>");
    let mut shown = String::new();
    for b in blocks {
        assert_eq!(b["type"], "section", "{b}");
        assert_eq!(b["text"]["type"], "mrkdwn", "{b}");
        assert_eq!(
            b["text"]["verbatim"], true,
            "Slack would preprocess it: {b}"
        );
        shown.push_str(b["text"]["text"].as_str().unwrap());
    }
    assert!(shown.contains(reason), "{shown}");
    assert_eq!(shown.matches('<').count(), 1, "{shown}");
    assert!(shown.ends_with(&decide), "{shown}");
}
