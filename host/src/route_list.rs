//! `aiwebengine routes [--scripts DIR]`: the route table `serve` would build
//! from a folder, as an aligned text table or JSON. Only what would be served
//! is listed (a registration lost to another script is not); scripts that fail
//! to load and lost registrations are noted on stderr.

use std::io::Write;

use anyhow::Result;
use serde_json::{json, Value};

use crate::app::App;
use crate::cli::{Format, RoutesArgs};

/// One row of the table: what is served at a path and by which script.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub path: String,
    /// `GET`, `POST`... or `STREAM`.
    pub method: String,
    pub script: String,
}

/// The served routes and streams of a loaded app, by path then method.
pub fn rows(app: &App) -> Vec<Row> {
    let table = app.table.load();
    let mut rows = Vec::new();
    for view in app.scripts() {
        let Some(live) = &view.live else { continue };
        let lost = |what: &str| {
            table
                .conflicts
                .get(&view.name)
                .is_some_and(|c| c.iter().any(|c| c.what == what))
        };
        for r in &live.registrations.routes {
            if !lost(&format!("{} {}", r.method, r.path.source)) {
                rows.push(Row {
                    path: r.path.source.clone(),
                    method: r.method.clone(),
                    script: view.name.clone(),
                });
            }
        }
        for s in &live.registrations.streams {
            if !lost(&format!("stream {s}")) {
                rows.push(Row {
                    path: s.clone(),
                    method: "STREAM".into(),
                    script: view.name.clone(),
                });
            }
        }
    }
    rows.sort();
    rows
}

/// The rows as a table with a header, columns padded to their widest cell.
pub fn write_table(out: &mut impl Write, rows: &[Row]) -> std::io::Result<()> {
    let width = |title: &str, cell: fn(&Row) -> &str| {
        rows.iter()
            .map(|r| cell(r).chars().count())
            .chain([title.len()])
            .max()
            .unwrap_or(0)
    };
    let method_w = width("METHOD", |r| &r.method);
    let path_w = width("PATH", |r| &r.path);
    writeln!(out, "{:method_w$}  {:path_w$}  SCRIPT", "METHOD", "PATH")?;
    for r in rows {
        writeln!(
            out,
            "{:method_w$}  {:path_w$}  {}",
            r.method, r.path, r.script
        )?;
    }
    Ok(())
}

/// Runs `aiwebengine routes`; returns the process exit status (0: the table
/// could be built, even when some scripts failed to load).
pub async fn run(args: &RoutesArgs, out: &mut impl Write) -> Result<i32> {
    let app = crate::check::load(&args.scripts, None).await?;
    let rows = rows(&app);
    let table = app.table.load();
    let errors: Vec<(String, String)> = app
        .scripts()
        .into_iter()
        .filter_map(|v| v.error.map(|(e, _)| (v.name, e.message)))
        .collect();
    match args.format {
        Format::Json => {
            let routes: Vec<Value> = rows
                .iter()
                .filter(|r| r.method != "STREAM")
                .map(|r| json!({ "method": r.method, "path": r.path, "script": r.script }))
                .collect();
            let streams: Vec<Value> = rows
                .iter()
                .filter(|r| r.method == "STREAM")
                .map(|r| json!({ "path": r.path, "script": r.script }))
                .collect();
            let conflicts: Vec<Value> = table
                .conflicts
                .iter()
                .flat_map(|(script, lost)| {
                    lost.iter()
                        .map(move |c| json!({ "script": script, "what": c.what, "owner": c.owner }))
                })
                .collect();
            let errors: Vec<Value> = errors
                .iter()
                .map(|(script, message)| json!({ "script": script, "message": message }))
                .collect();
            let doc = json!({ "routes": routes, "streams": streams, "conflicts": conflicts, "errors": errors });
            writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
        }
        Format::Text => {
            write_table(out, &rows)?;
            let mut err = std::io::stderr().lock();
            for (script, lost) in table.conflicts.iter() {
                for c in lost {
                    writeln!(
                        err,
                        "note: {script}: {} is already registered by {}; not served",
                        c.what, c.owner
                    )?;
                }
            }
            for (script, message) in &errors {
                writeln!(err, "error: {script} failed to load: {message}")?;
            }
        }
    }
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_aligned() {
        let row = |m: &str, p: &str, s: &str| Row {
            path: p.into(),
            method: m.into(),
            script: s.into(),
        };
        let mut out = Vec::new();
        write_table(
            &mut out,
            &[
                row("GET", "/a/long/path", "a.js"),
                row("STREAM", "/s", "b.ts"),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "METHOD  PATH          SCRIPT\n\
             GET     /a/long/path  a.js\n\
             STREAM  /s            b.ts\n"
        );
    }
}
