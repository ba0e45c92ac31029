//! `aiwebengine check [PATH...]`: loads scripts in the sandbox exactly as
//! `serve` does (an `App` with watching off and no listener), then reports each
//! script's routes and streams, or its load error as `file:line:col`, and the
//! conflicts between scripts. Exit status 0 when every script loaded and owns
//! all it registered, 1 otherwise.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use crate::app::App;
use crate::cli::{CheckArgs, Format};
use crate::registry::Conflict;
use crate::reload;
use crate::script_names::is_script_name;
use crate::settings::Settings;

/// One folder to load, and which of its scripts to report (`None`: all).
pub struct Target {
    pub dir: PathBuf,
    pub only: Option<BTreeSet<String>>,
}

/// Groups command-line paths by folder: a folder means all its scripts, a
/// file means that script of its folder.
pub fn targets(paths: &[PathBuf]) -> Result<Vec<Target>> {
    let mut by_dir: BTreeMap<PathBuf, Option<BTreeSet<String>>> = BTreeMap::new();
    for path in paths {
        let meta =
            std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
        if meta.is_dir() {
            by_dir.insert(path.clone(), None);
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| is_script_name(n))
            .with_context(|| format!("{} is not a script (*.js or *.ts)", path.display()))?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // `None` means the whole folder is already asked for.
        if let Some(names) = by_dir.entry(dir).or_insert_with(|| Some(BTreeSet::new())) {
            names.insert(name.to_string());
        }
    }
    Ok(by_dir
        .into_iter()
        .map(|(dir, only)| Target { dir, only })
        .collect())
}

/// Loads a folder's scripts (or some of them) as `serve` would, without
/// watching or listening.
pub async fn load(dir: &Path, only: Option<&BTreeSet<String>>) -> Result<Arc<App>> {
    let mut settings = Settings::new(dir);
    settings.watch = false;
    let app = App::new(settings)?;
    match only {
        None => reload::load_all(&app).await?,
        Some(names) => reload::reconcile(&app, Some(names.clone())).await,
    }
    Ok(app)
}

/// The location of a load error, parsed from its message's `(at name:L:C)`.
pub fn location(name: &str, message: &str) -> Option<(u32, u32)> {
    let (_, at) = message.rsplit_once(&format!("(at {name}:"))?;
    let (line, rest) = at.split_once(':')?;
    let column = rest.strip_suffix(')')?;
    Some((line.parse().ok()?, column.parse().ok()?))
}

/// What `check` found for one script.
pub fn report(app: &App, dir: &Path, only: Option<&BTreeSet<String>>) -> Vec<Value> {
    let table = app.table.load();
    app.scripts()
        .into_iter()
        .filter(|view| only.is_none_or(|names| names.contains(&view.name)))
        .map(|view| {
            let path = dir.join(&view.name);
            let conflicts: &[Conflict] = table
                .conflicts
                .get(&view.name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let routes = view.routes(conflicts);
            let streams = view.streams(conflicts, |_| None);
            let error = view.error.as_ref().map(|(e, _)| {
                let at = location(&view.name, &e.message);
                json!({
                    "message": e.message,
                    "line": at.map(|(l, _)| l),
                    "column": at.map(|(_, c)| c),
                    "detail": e.detail,
                })
            });
            let status = view.status(conflicts);
            json!({
                "name": view.name,
                "path": path.display().to_string(),
                "status": status,
                "routes": routes,
                "streams": streams,
                "error": error,
                "conflicts": conflicts.iter().map(|c| json!({ "what": c.what, "owner": c.owner })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Writes the report in text: each script, then a summary line.
pub fn write_text(out: &mut impl Write, scripts: &[Value]) -> std::io::Result<()> {
    for s in scripts {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let (path, status) = (text(&s["path"]), text(&s["status"]));
        if status == "error" {
            let message = text(s.pointer("/error/message").unwrap_or(&Value::Null));
            let name = text(&s["name"]);
            let (place, message) = match (
                s.pointer("/error/line").and_then(Value::as_u64),
                s.pointer("/error/column").and_then(Value::as_u64),
            ) {
                (Some(line), Some(column)) => {
                    let suffix = format!(" (at {name}:{line}:{column})");
                    let short = message.strip_suffix(&suffix).unwrap_or(&message);
                    (format!("{path}:{line}:{column}"), short.to_string())
                }
                _ => (path.clone(), message.clone()),
            };
            writeln!(out, "{place}: error: {message}")?;
            continue;
        }
        writeln!(out, "{path}: {status}")?;
        for r in s["routes"].as_array().into_iter().flatten() {
            write_row(
                out,
                &text(&r["method"]),
                &text(&r["path"]),
                &r["conflictsWith"],
            )?;
        }
        for st in s["streams"].as_array().into_iter().flatten() {
            write_row(out, "STREAM", &text(&st["path"]), &st["conflictsWith"])?;
        }
    }
    let count = |status: &str| scripts.iter().filter(|s| s["status"] == status).count();
    writeln!(
        out,
        "{} scripts: {} ok, {} failed to load, {} with conflicts",
        scripts.len(),
        count("ok"),
        count("error"),
        count("conflict")
    )
}

fn write_row(out: &mut impl Write, method: &str, path: &str, owner: &Value) -> std::io::Result<()> {
    match owner.as_str() {
        Some(owner) => writeln!(
            out,
            "    {method:<7} {path}  (conflict: already registered by {owner}; not served)"
        ),
        None => writeln!(out, "    {method:<7} {path}"),
    }
}

/// Runs `aiwebengine check`; returns the process exit status.
pub async fn run(args: &CheckArgs, out: &mut impl Write) -> Result<i32> {
    let paths = if args.paths.is_empty() {
        vec![PathBuf::from("./scripts")]
    } else {
        args.paths.clone()
    };
    let mut scripts = Vec::new();
    for target in targets(&paths)? {
        let app = load(&target.dir, target.only.as_ref()).await?;
        scripts.extend(report(&app, &target.dir, target.only.as_ref()));
    }
    let all_ok = !scripts.is_empty() && scripts.iter().all(|s| s["status"] == "ok");
    match args.format {
        Format::Json => {
            let doc = json!({ "ok": all_ok, "scripts": scripts });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Format::Text => {
            if scripts.is_empty() {
                bail!(
                    "no scripts (*.js, *.ts) found in {}",
                    paths
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            write_text(out, &scripts)?;
        }
    }
    out.flush()?;
    Ok(if all_ok { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_parsed_from_messages() {
        assert_eq!(
            location("a.ts", "SyntaxError: x (at a.ts:3:14)"),
            Some((3, 14))
        );
        assert_eq!(location("a.ts", "SyntaxError: x (at b.ts:3:14)"), None);
        assert_eq!(location("a.ts", "no place"), None);
    }
}
