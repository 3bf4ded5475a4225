//! Text for chats that render Markdown (Mattermost, Rocket.Chat), shown
//! as typed: what a requester writes must not become a link, an image or
//! emphasis beside the CA's own Decide link.

/// `text` with every ASCII punctuation character backslash-escaped.
///
/// CommonMark lets any ASCII punctuation be escaped and shows it
/// literally, so `[`, `]`, `(`, `)`, `<`, `>`, `!` and `` ` `` start
/// nothing. Escaping `:` and `.` too breaks bare URLs (`https\://…`,
/// `www\.…`) that autolinkers would otherwise make clickable. A renderer
/// without escapes shows the backslashes, but still no link: `]\(` is
/// not `](`.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for c in text.chars() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn links_urls_and_backslashes_are_shown_as_typed() {
        assert_eq!(escape("[a](b)"), "\\[a\\]\\(b\\)");
        assert_eq!(escape("https://x.y"), "https\\:\\/\\/x\\.y");
        // A requester's backslash cannot undo the escape of what follows.
        assert_eq!(escape("\\[a"), "\\\\\\[a");
        assert_eq!(escape("bob → db-1"), "bob → db\\-1");
    }
}
