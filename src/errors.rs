//! Errors as text, for the log and for the binary's last words: shared by
//! the store, the logs and the commands, so it depends on nothing.

/// Formats an error with its causes, `a: b: c`, skipping a cause whose
/// text its parent already ends with (errors that print their source).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Plain(#[source] std::io::Error);

    #[test]
    fn each_cause_is_said_once() {
        let io = || std::io::Error::other("disk on fire");
        assert_eq!(error_chain(&Plain(io())), "outer: disk on fire");
        assert_eq!(error_chain(&Repeats(io())), "outer: disk on fire");
    }
}
