//! What text a client may send: free text (addresses, reasons, names) and
//! the characters that would make it lie.
//!
//! Free text refuses C0 control characters other than tab and newline (a
//! NUL, an ESC sequence or a CR/LF pair in a stored address reaches logs,
//! terminals and other systems). A value that must name something refuses
//! to be empty, or made only of white space and invisible characters
//! (U+200B ZERO WIDTH SPACE, U+202E RIGHT-TO-LEFT OVERRIDE, …): it would
//! show as nothing, or as something else.

use super::Invalid;

/// Characters that print as nothing, or change how the text around them is
/// shown: Unicode's format characters (category Cf) that clients are seen
/// to send, and white space.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(c,
            '\u{00AD}'                  // soft hyphen
            | '\u{061C}'                // Arabic letter mark
            | '\u{115F}' | '\u{1160}'   // Hangul fillers
            | '\u{180E}'                // Mongolian vowel separator
            | '\u{200B}'..='\u{200F}'   // zero width space, joiners, LRM/RLM
            | '\u{202A}'..='\u{202E}'   // bidirectional embeddings and overrides
            | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
            | '\u{2066}'..='\u{206F}'   // bidirectional isolates, deprecated formats
            | '\u{3164}'                // Hangul filler
            | '\u{FEFF}'                // zero width no-break space (BOM)
            | '\u{FFA0}'                // halfwidth Hangul filler
        )
}

/// Changes how surrounding text is shown (bidirectional controls): never
/// part of an identifier.
pub fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Checks free text of at most `max` bytes for `field`, trimmed; an empty
/// value is refused when `required`.
pub fn free_text(field: &str, value: &str, max: usize) -> Result<String, Invalid> {
    if let Some(c) = value.chars().find(|c| c.is_control() && !matches!(c, '\t' | '\n')) {
        return Err(Invalid::new(format!("{field} contains a control character ({c:?})")));
    }
    let value = value.trim();
    if value.chars().all(is_invisible) {
        return Err(Invalid::new(format!("{field} must not be empty or only invisible characters")));
    }
    if value.len() > max {
        return Err(Invalid::new(format!("{field} must be 1 to {max} bytes")));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_other_than_tab_and_newline_are_refused() {
        for bad in ["a\0b", "a\u{1b}[31mb", "line\r\nbreak", "\u{7f}"] {
            let err = free_text("address", bad, 100).unwrap_err();
            assert!(err.0.contains("address") && err.0.contains("control"), "{bad:?}: {err}");
        }
        assert_eq!(free_text("address", " 1 Main St\n\tSeoul ", 100).unwrap(), "1 Main St\n\tSeoul");
    }

    #[test]
    fn a_value_of_nothing_visible_is_refused_and_a_long_one_too() {
        for nothing in ["", "   ", "\u{200B}", "\u{202E}\u{200B} ", "\u{3164}"] {
            assert!(free_text("name", nothing, 100).is_err(), "{nothing:?}");
        }
        assert!(free_text("name", "김민지", 100).is_ok());
        assert!(free_text("name", &"a".repeat(101), 100).unwrap_err().0.contains("1 to 100"));
    }
}
