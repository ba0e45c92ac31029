//! The real binary's `check` and `routes` commands on good, broken and
//! conflicting folders: exit codes, text and JSON output.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_aiwebengine");
const DEADLINE: Duration = Duration::from_secs(60);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs the binary in `cwd` and waits for it, at most `DEADLINE`.
fn run(cwd: &Path, args: &[&str]) -> Run {
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env_remove("AIWEBENGINE_SCRIPTS")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            panic!("aiwebengine {args:?} did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Run {
        code: status.code().expect("exited, not killed"),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

fn folder(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    for (name, source) in files {
        std::fs::write(dir.path().join("scripts").join(name), source).unwrap();
    }
    dir
}

const PAGES: &str = "\
routeRegistry.registerRoute('GET', '/pages/:id', (r) => ({ body: r.params.id }));
routeRegistry.registerRoute('post', '/pages', () => ({ status: 201 }));
routeRegistry.registerStreamRoute('/pages/live');
";

const TYPED: &str = "\
interface Hit { n: number }
let hits: Hit = { n: 0 };
routeRegistry.registerRoute('GET', '/typed', (): AIWebEngine.Response => ({ body: hits }));
";

/// Runs `check scripts` on a folder of `files`; asserts it fails (exit 1)
/// and returns its stdout.
fn check_fails(files: &[(&str, &str)]) -> String {
    let dir = folder(files);
    let r = run(dir.path(), &["check", "scripts"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    r.stdout
}

#[test]
fn a_good_folder_passes_and_lists_routes_and_streams() {
    let dir = folder(&[("pages.js", PAGES), ("typed.ts", TYPED)]);
    // No PATH: ./scripts.
    let r = run(dir.path(), &["check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let expected = "\
./scripts/pages.js: ok
    GET     /pages/:id
    POST    /pages
    STREAM  /pages/live
./scripts/typed.ts: ok
    GET     /typed
2 scripts: 2 ok, 0 failed to load, 0 with conflicts
";
    assert_eq!(r.stdout, expected);
}

#[test]
fn a_broken_folder_fails_with_located_errors() {
    let stdout = check_fails(&[
        ("pages.js", PAGES),
        ("syntax.ts", "const fine: number = 1;\nlet x: = 2;\n"),
        ("throws.js", "// top level\nconst n = 1;\nnull.boom;\n"),
    ]);
    assert!(stdout.contains("scripts/pages.js: ok\n"), "{stdout}");
    assert!(
        stdout.contains("scripts/syntax.ts:2:8: error: SyntaxError: "),
        "{stdout}"
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("scripts/throws.js:3:"))
        .unwrap_or_else(|| panic!("no located error for throws.js in:\n{stdout}"));
    assert!(line.contains(": error: TypeError"), "{line}");
    assert!(
        stdout.ends_with("3 scripts: 1 ok, 2 failed to load, 0 with conflicts\n"),
        "{stdout}"
    );
}

#[test]
fn conflicts_between_scripts_fail_the_check() {
    let first = "routeRegistry.registerRoute('GET', '/x', () => ({}));\n";
    let second = "routeRegistry.registerRoute('GET', '/x', () => ({}));\nrouteRegistry.registerRoute('GET', '/y', () => ({}));\n";
    let twin = "routeRegistry.registerStreamRoute('/s');\n";
    let stdout = check_fails(&[
        ("a.js", first),
        ("b.js", second),
        ("c.js", twin),
        ("c.ts", twin),
    ]);
    assert!(
        stdout.contains(
            "scripts/b.js: conflict\n    GET     /x  (conflict: already registered by a.js; not served)\n    GET     /y\n"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("scripts/c.ts: error: c.ts and c.js are the same script written twice"),
        "{stdout}"
    );
    assert!(stdout.contains("scripts/a.js: ok\n"), "{stdout}");
}

#[test]
fn json_format_for_machines() {
    let dir = folder(&[("pages.js", PAGES), ("syntax.ts", "let x: = 2;\n")]);
    let r = run(dir.path(), &["check", "--format", "json", "scripts"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["ok"], false);
    let scripts = doc["scripts"].as_array().unwrap();
    assert_eq!(scripts.len(), 2);
    assert_eq!(scripts[0]["name"], "pages.js");
    assert_eq!(scripts[0]["status"], "ok");
    assert_eq!(scripts[0]["routes"][1]["method"], "POST");
    assert_eq!(scripts[0]["streams"][0]["path"], "/pages/live");
    assert_eq!(scripts[1]["name"], "syntax.ts");
    assert_eq!(scripts[1]["status"], "error");
    assert_eq!(scripts[1]["error"]["line"], 1);
    assert_eq!(scripts[1]["error"]["column"], 8);

    let good = run(dir.path(), &["check", "--format=json", "scripts/pages.js"]);
    assert_eq!(good.code, 0, "{}{}", good.stdout, good.stderr);
    let doc: serde_json::Value = serde_json::from_str(&good.stdout).unwrap();
    assert_eq!(doc["ok"], true);
    assert_eq!(doc["scripts"].as_array().unwrap().len(), 1);
}

#[test]
fn a_missing_path_is_an_error() {
    let dir = folder(&[]);
    let r = run(dir.path(), &["check", "nowhere"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("nowhere"), "{}", r.stderr);
    let empty = run(dir.path(), &["check"]);
    assert_eq!(empty.code, 1);
    assert!(empty.stderr.contains("no scripts"), "{}", empty.stderr);
}

#[test]
fn the_shipped_scripts_pass() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let r = run(&root, &["check"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    for script in ["chat.js", "hello.ts", "stocks.js"] {
        assert!(
            r.stdout.contains(&format!("./scripts/{script}: ok")),
            "{}",
            r.stdout
        );
    }
}

#[test]
fn routes_prints_the_served_table() {
    let dir = folder(&[
        ("pages.js", PAGES),
        ("typed.ts", TYPED),
        (
            "z.js",
            "routeRegistry.registerRoute('GET', '/typed', () => ({}));\n",
        ),
    ]);
    let r = run(dir.path(), &["routes"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let expected = "\
METHOD  PATH         SCRIPT
POST    /pages       pages.js
GET     /pages/:id   pages.js
STREAM  /pages/live  pages.js
GET     /typed       typed.ts
";
    assert_eq!(r.stdout, expected);
    assert!(
        r.stderr
            .contains("note: z.js: GET /typed is already registered by typed.ts"),
        "{}",
        r.stderr
    );

    let json = run(
        dir.path(),
        &["routes", "--scripts", "scripts", "--format", "json"],
    );
    assert_eq!(json.code, 0, "{}{}", json.stdout, json.stderr);
    let doc: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(
        doc["routes"][0],
        serde_json::json!({ "method": "POST", "path": "/pages", "script": "pages.js" })
    );
    assert_eq!(
        doc["streams"][0],
        serde_json::json!({ "path": "/pages/live", "script": "pages.js" })
    );
    assert_eq!(doc["conflicts"][0]["script"], "z.js");
}
