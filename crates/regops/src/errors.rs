//! Errors in words: one place that walks an error's chain of causes and says what a failed
//! API request means, for every command, the controller and the logs.

/// The text of `err` and of each error that caused it, outermost first.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        out.push(e.to_string());
        cur = e.source();
    }
    out
}

/// `err` and its causes in one sentence, outermost first, joined by `: `. A cause whose text
/// the error above it already says (`cannot read x: No such file` over `No such file`) is not
/// said twice.
pub fn sentence(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut above = String::new();
    for text in chain(err) {
        if !above.is_empty() && above.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
        above = text;
    }
    out
}

/// The innermost error's text (`Connection refused (os error 111)`).
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    chain(err).pop().unwrap_or_default()
}

/// A failed request in a sentence: the API's message, or the root cause of a transport error.
pub fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s)
            if s.code == 409 && s.reason == "Conflict" && s.message.starts_with("Apply failed") =>
        {
            format!(
                "{} (another field manager owns it; pass --force-conflicts to take ownership)",
                s.message
            )
        }
        kube::Error::Api(s) if s.code == 403 => format!("forbidden: {}", s.message),
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => root_cause(other),
    }
}

/// A transient failure in a few words, for the retry log: the status, or the root cause.
pub fn describe_transient(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(s) => format!("{} {}", s.code, s.reason),
        other => root_cause(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_chain_is_walked_outermost_first() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(chain(&e), ["outer", "inner"]);
        assert_eq!(root_cause(&e), "inner");
    }

    #[test]
    fn a_sentence_says_each_cause_once() {
        assert_eq!(
            sentence(&Outer(std::io::Error::other("inner"))),
            "outer: inner"
        );
        #[derive(Debug, thiserror::Error)]
        #[error("outer: {0}")]
        struct Says(#[source] std::io::Error);
        assert_eq!(
            sentence(&Says(std::io::Error::other("inner"))),
            "outer: inner"
        );
    }
}
