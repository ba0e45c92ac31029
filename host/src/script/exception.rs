//! One line for a script's exception: its message and, when its stack passes
//! through the script itself, where it was thrown.

use crate::bindings::ScriptError;

/// The error's message and, when its stack passes through the script itself,
/// where: "TypeError: x is undefined (at chat.js:12:5)".
pub fn located_message(script: &str, error: &ScriptError) -> String {
    match error
        .stack
        .as_deref()
        .and_then(|stack| locate(script, stack))
    {
        Some(place) => format!("{} (at {place})", error.message),
        None => error.message.clone(),
    }
}

/// The first `file:line:column` of `script` in a QuickJS stack.
fn locate<'a>(script: &str, stack: &'a str) -> Option<&'a str> {
    stack.lines().find_map(|line| {
        // `split_at_checked` and `strip_prefix`, not slicing: the script's
        // name itself may hold `)` (a file named "a).js" once panicked here).
        let (_, place) = line.split_at_checked(line.find(script)?)?;
        let after = place.strip_prefix(script)?;
        let end = after.find(')').unwrap_or(after.len()) + script.len();
        let (place, _) = place.split_at_checked(end)?;
        let place = place.trim_end();
        place
            .strip_prefix(script)?
            .starts_with(':')
            .then_some(place)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_located_in_the_script() {
        let e = ScriptError {
            message: "Error: bad".into(),
            stack: Some("    at registerRoute (<input>:40:7)\n    at init (chat.js:3:20)\n    at <eval> (chat.js:9:1)\n".into()),
        };
        assert_eq!(
            located_message("chat.js", &e),
            "Error: bad (at chat.js:3:20)"
        );
        let e = ScriptError {
            message: "SyntaxError: x".into(),
            stack: Some("    at x.js:2:5\n".into()),
        };
        assert_eq!(located_message("x.js", &e), "SyntaxError: x (at x.js:2:5)");
        let e = ScriptError {
            message: "Error: y".into(),
            stack: None,
        };
        assert_eq!(located_message("x.js", &e), "Error: y");
        let e = ScriptError {
            message: "Error: z".into(),
            stack: Some("    at f (a).js:3:9)\n    at g (a).js)\n".into()),
        };
        assert_eq!(located_message("a).js", &e), "Error: z (at a).js:3:9)");
        assert_eq!(located_message("a).js:9).js", &e), "Error: z");
    }
}
