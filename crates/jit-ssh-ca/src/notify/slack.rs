//! Text for Slack's incoming webhooks, shown as typed: what requesters
//! and approvers wrote (a reason, a comment) must not become a link, a
//! mention or an @channel beside the CA's own Decide link.
//!
//! Escaping `&`, `<` and `>` (Slack's three control characters) stops
//! `<url|text>` links and `<!channel>`. It does not stop Slack's own
//! preprocessing of a message's `text`, which turns a bare URL (or a bare
//! domain) into a link and bare `@here` into a mention. Slack documents one
//! switch for that: a Block Kit `mrkdwn` text object with `"verbatim":
//! true` ("it won't modify any plain-text content"), while `<url|text>`
//! written by the CA is still a link. So the message is sent as section
//! blocks with verbatim text; the top-level `text`, the same words, is
//! what Slack shows only where blocks cannot be (notifications).

use serde_json::{json, Value};

/// Slack's limit on a section's text, counted here in UTF-16 units (the
/// stricter count; Slack's own is not documented further).
const SECTION_MAX: usize = 3000;

/// The body for `text` and, if any, the CA's Decide link to `url`.
pub(super) fn payload(text: &str, url: Option<&str>) -> Value {
    let link = url.map(|u| format!("<{u}|Decide>"));
    let mut fallback = escape(text);
    if let Some(link) = &link {
        fallback.push(' ');
        fallback.push_str(link);
    }
    let blocks: Vec<Value> = sections(text, link.as_deref())
        .into_iter()
        .map(|s| {
            json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": s, "verbatim": true },
            })
        })
        .collect();
    json!({ "text": fallback, "blocks": blocks })
}

/// `text` as Slack shows it literally: its three control characters as
/// the entities Slack documents (`&amp;`, `&lt;`, `&gt;`).
pub(super) fn escape(text: &str) -> String {
    text.chars().map(escaped).collect()
}

fn escaped(c: char) -> String {
    match c {
        '&' => "&amp;".into(),
        '<' => "&lt;".into(),
        '>' => "&gt;".into(),
        c => c.into(),
    }
}

/// Escaped `text`, then ` link`, cut into pieces Slack takes as one
/// section each; never inside an entity or the link.
fn sections(text: &str, link: Option<&str>) -> Vec<String> {
    let pieces = text
        .chars()
        .map(escaped)
        .chain(link.map(|l| format!(" {l}")));
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut len = 0;
    for piece in pieces {
        let n = piece.encode_utf16().count();
        if len + n > SECTION_MAX && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
            len = 0;
        }
        cur.push_str(&piece);
        len += n;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_goes_verbatim_and_only_the_decide_link_is_markup() {
        let v = payload(
            "jit-ssh: bob waits: see https://evil.example/x & <!here>",
            Some("https://ca/approve/1"),
        );
        let blocks = v["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), 1);
        let t = &blocks[0]["text"];
        assert_eq!(t["type"], "mrkdwn");
        assert_eq!(t["verbatim"], true);
        assert_eq!(
            t["text"],
            "jit-ssh: bob waits: see https://evil.example/x &amp; &lt;!here&gt; <https://ca/approve/1|Decide>"
        );
        assert_eq!(v["text"], t["text"]);
    }

    #[test]
    fn long_text_is_cut_into_sections_slack_accepts() {
        // 2,000 ampersands escape to 10,000 characters.
        let text = "&".repeat(2000);
        let v = payload(&text, Some("https://ca/approve/1"));
        let blocks = v["blocks"].as_array().unwrap();
        let parts: Vec<&str> = blocks
            .iter()
            .map(|b| b["text"]["text"].as_str().unwrap())
            .collect();
        assert!(parts.len() >= 4, "{}", parts.len());
        for p in &parts {
            assert!(p.encode_utf16().count() <= SECTION_MAX);
            // Never cut inside an entity.
            assert!(p.starts_with("&amp;") || p.starts_with(" <"), "{p:.20}");
        }
        assert_eq!(parts.concat(), v["text"].as_str().unwrap());
    }
}
