//! What a requester writes reaches the approvers' chat (session 11's
//! review): Mattermost and Rocket.Chat render Markdown, so a reason must
//! arrive escaped: no link, image or bare URL of the requester's shows as
//! clickable; the CA's own Decide link is the only link.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use axum::http::StatusCode;
use common::{Hook, TestCa, ORIGIN};
use serde_json::Value;

use jit_ssh_ca::notify::Backoff;

/// Waits (up to 10 s) for a body whose text contains `needle`.
async fn chat_text(hook: &Hook, needle: &str) -> String {
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
        "no chat message with {needle:?}: {:?}",
        hook.bodies.lock().unwrap()
    );
}

/// Markdown punctuation that starts or ends a link, image, autolink or
/// emphasis. In the reason part of the text, each must be escaped.
const MARKUP: &[char] = &['[', ']', '(', ')', '<', '>', '!', '*', '_', '`', ':'];

/// Bob's pending request's text as `kind` posts it.
async fn pending_text_for(kind: &str) -> (String, String) {
    let hook = Hook::start(0).await;
    let t = TestCa::with_policy(
        "",
        &format!("\n[[notify]]\nkind = \"{kind}\"\nurl = \"{}\"\n", hook.url),
    );
    t.ca.start_notifications(Backoff {
        first: std::time::Duration::from_millis(50),
        attempts: 2,
        timeout: std::time::Duration::from_secs(2),
    });
    let mut bob = t.enroll("bob").await;
    // What bob types: a "Decide" link of his own, an image, an autolink,
    // a bare URL and a backslash that would otherwise undo an escape.
    let reason = "db fix [Decide](https://evil.example/approve) ![x](https://evil.example/i.png) <https://evil.example/a> see https://evil.example/b and www.evil.example \\[y](z)";
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
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(t.touch(&id, &mut bob).await.0, StatusCode::OK);
    (chat_text(&hook, "waits for approval").await, id)
}

fn assert_reason_is_inert(kind: &str, text: &str, id: &str) {
    // The CA's own link, last.
    let decide = format!(" [Decide]({ORIGIN}/approve/{id})");
    assert!(text.ends_with(&decide), "{kind}: {text}");
    let body = &text[..text.len() - decide.len()];
    let reason = &body[body.find("db fix").expect("reason shown")..];
    // Every markup character of bob's is preceded by an odd number of
    // backslashes (escaped), so the renderer shows it as typed.
    let chars: Vec<char> = reason.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if MARKUP.contains(c) {
            let slashes = chars[..i].iter().rev().take_while(|&&b| b == '\\').count();
            assert!(
                slashes % 2 == 1,
                "{kind}: {c:?} at {i} unescaped in {reason}"
            );
        }
    }
    // Bare URLs are broken up so no autolinker finds them.
    assert!(!reason.contains("https://"), "{kind}: {reason}");
    assert!(!reason.contains("www.evil"), "{kind}: {reason}");
    // Only one link in the whole message: the CA's.
    assert_eq!(text.matches("](").count(), 1, "{kind}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requesters_reason_cannot_plant_a_link_in_mattermost() {
    let (text, id) = pending_text_for("mattermost").await;
    assert_reason_is_inert("mattermost", &text, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requesters_reason_cannot_plant_a_link_in_rocket_chat() {
    let (text, id) = pending_text_for("rocketchat").await;
    assert_reason_is_inert("rocketchat", &text, &id);
}
