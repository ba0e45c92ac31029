//! Which files of the scripts folder are scripts, and what a file's text
//! becomes before it is loaded.
//!
//! - `*.js` and `*.ts` files are scripts (not `*.d.ts`: those are types for
//!   editors); hidden and editor temp files are not.
//! - A script's name is its file name, extension included (`hello.ts`).
//! - `hello.js` and `hello.ts` side by side are one script written twice: the
//!   `.js` one loads, the `.ts` one is refused with an error saying so, until
//!   one of them is removed.
//! - TypeScript has its types stripped (`typescript.rs`).

use std::collections::BTreeSet;
use std::path::Path;

use crate::script::LoadError;
use crate::typescript;

/// Whether a file name in the scripts folder names a script.
pub fn is_script_name(name: &str) -> bool {
    let code = name.ends_with(".js") || (name.ends_with(".ts") && !name.ends_with(".d.ts"));
    code && !name.starts_with('.') && !name.starts_with('#') && !name.contains('~')
}

/// The other spelling of the same script: `hello.js` <-> `hello.ts`.
pub fn twin(name: &str) -> Option<String> {
    if let Some(stem) = name.strip_suffix(".js") {
        Some(format!("{stem}.ts"))
    } else {
        name.strip_suffix(".ts").map(|stem| format!("{stem}.js"))
    }
}

/// `names` plus the twin of each script among them, so that removing or
/// adding `hello.js` also reconsiders `hello.ts`.
pub fn with_twins(names: BTreeSet<String>) -> BTreeSet<String> {
    let twins: Vec<String> = names
        .iter()
        .filter(|n| is_script_name(n))
        .filter_map(|n| twin(n))
        .filter(|t| is_script_name(t))
        .collect();
    let mut names = names;
    names.extend(twins);
    names
}

/// Refuses `name` when it is the `.ts` of a pair whose `.js` exists in `dir`.
pub fn refuse_twin(dir: &Path, name: &str) -> Result<(), LoadError> {
    if !typescript::is_typescript(name) {
        return Ok(());
    }
    match twin(name) {
        Some(js) if dir.join(&js).is_file() => Err(LoadError {
            message: format!(
                "{name} and {js} are the same script written twice; {js} is loaded and \
                 {name} is not: remove or rename one of them"
            ),
            detail: None,
        }),
        _ => Ok(()),
    }
}

/// The JavaScript to evaluate for script `name` whose file holds `source`.
pub fn prepare(name: &str, source: String) -> Result<String, LoadError> {
    if typescript::is_typescript(name) {
        typescript::strip(name, source)
    } else {
        Ok(source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_names() {
        for yes in ["a.js", "hello.ts", "x.y.js"] {
            assert!(is_script_name(yes), "{yes}");
        }
        for no in [
            "a.d.ts", ".a.js", "#a.js#", "a.js~", "a.tsx", "a.json", "ts",
        ] {
            assert!(!is_script_name(no), "{no}");
        }
    }

    #[test]
    fn twins() {
        assert_eq!(twin("a.js").as_deref(), Some("a.ts"));
        assert_eq!(twin("a.ts").as_deref(), Some("a.js"));
        assert_eq!(twin("a.txt"), None);
        let names = with_twins(["a.js".to_string(), "b.txt".to_string()].into());
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["a.js", "a.ts", "b.txt"]
        );
    }

    #[test]
    fn ts_is_refused_beside_its_js() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.js"), "").unwrap();
        assert!(refuse_twin(dir.path(), "a.js").is_ok());
        assert!(refuse_twin(dir.path(), "b.ts").is_ok());
        let e = refuse_twin(dir.path(), "a.ts").unwrap_err();
        assert!(e.message.contains("a.ts and a.js"), "{}", e.message);
    }
}
