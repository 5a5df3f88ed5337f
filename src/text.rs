//! Making text from outside (prompts, service messages, file names) safe to draw.

/// Removes what could drive the terminal or reorder what is shown: C0 and C1 controls
/// (ESC starts every escape sequence, so dropping it defuses OSC 52 and friends), bidi
/// overrides and isolates, and zero-width characters. Line breaks and tabs become spaces,
/// so the result is always one line.
pub fn sanitize(text: &str) -> String {
    text.chars()
        .filter_map(|c| match c {
            '\n' | '\r' | '\t' => Some(' '),
            c if c.is_control() => None,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{061C}' => None,
            c => Some(c),
        })
        .collect()
}

/// Like `sanitize`, but keeps line breaks (for multi-line prompt views).
pub fn sanitize_multiline(text: &str) -> String {
    text.split('\n')
        .map(sanitize)
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_and_bidi_overrides_are_removed() {
        let hostile = "cat\u{1b}]52;c;ZXZpbA==\u{7}\u{202E}god\u{200B}\u{9b}31m";
        let clean = sanitize(hostile);
        assert!(!clean.chars().any(char::is_control));
        assert!(!clean.contains('\u{202E}') && !clean.contains('\u{200B}'));
        assert_eq!(clean, "cat]52;c;ZXZpbA==god31m");
    }

    #[test]
    fn multiline_keeps_line_breaks_only() {
        assert_eq!(sanitize_multiline("a\u{1b}[2J\nb\tc"), "a[2J\nb c");
    }
}
