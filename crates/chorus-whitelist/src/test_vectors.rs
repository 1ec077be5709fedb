//! The reader of the hostile and rich HTML corpora in `proto/test-vectors/`
//! (`xss-html.txt`, `rich-html.txt`), shared by the tests that run them: this crate's
//! cleaner tests and `chorus-core`'s import tests. Owns the file format only; the
//! corpora stay in `proto/`, out of any binary.
//!
//! One vector per line; blank lines and lines starting with `#` are comments. So that
//! the files stay plain text, `{NUL}`, `{TAB}`, `{LF}`, `{FF}` and `{CR}` stand for
//! U+0000, U+0009, U+000A, U+000C and U+000D.

/// The corpus lines that are vectors: (line number, raw line, input with the
/// `{NUL}`-style tokens replaced by the characters they stand for).
pub fn vectors(corpus: &str) -> Vec<(usize, &str, String)> {
    corpus
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty() && !line.starts_with('#'))
        .map(|(i, line)| {
            let input = line
                .replace("{NUL}", "\u{0}")
                .replace("{TAB}", "\t")
                .replace("{LF}", "\n")
                .replace("{FF}", "\u{c}")
                .replace("{CR}", "\r");
            (i + 1, line, input)
        })
        .collect()
}
