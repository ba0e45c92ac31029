//! TypeScript scripts over real HTTP: `.ts` files served with their types
//! stripped, errors located in the `.ts` source, hot reload of `.ts` files,
//! `.js`/`.ts` twins, and the API's declarations at `/_engine/aiwebengine.d.ts`.

use crate::common;

use common::{eventually, JsonValue, TestServer};

const GREETER: &str = "\
interface Greeting { hello: string; count: number }
let count: number = 0;
function greet(name: string): Greeting {
  count += 1;
  return { hello: name, count };
}
routeRegistry.registerRoute(\"GET\", \"/greet/:name\", (request): AIWebEngine.Response => ({
  body: greet(request.params.name ?? \"nobody\"),
}));
";

/// 1-based column of `needle` in line `line` (1-based) of `source`.
fn column_of(source: &str, line: usize, needle: &str) -> usize {
    let text = source.lines().nth(line - 1).expect("line exists");
    text.find(needle).expect("needle on that line") + 1
}

#[tokio::test]
async fn a_ts_script_is_served_with_its_types_stripped() {
    let server = TestServer::start(&[("greeter.ts", GREETER)]).await;
    let script = server.script("greeter.ts").await;
    assert_eq!(script["status"], "ok", "{script}");
    let res = server.get("/greet/ada").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json_value().await,
        serde_json::json!({ "hello": "ada", "count": 1 })
    );
    // Globals persist between requests, as for a .js script.
    let (_, body) = server.get_text("/greet/bob").await;
    assert_eq!(body, r#"{"hello":"bob","count":2}"#);
}

#[tokio::test]
async fn a_runtime_error_points_into_the_ts_source() {
    // Line 3 carries types before the throw: were they removed rather than
    // blanked, the column would be off.
    let source = "\
type Id = string;
routeRegistry.registerRoute(\"GET\", \"/boom\", (): AIWebEngine.Response => {
  const id: Id = \"x\", n: number = 1; if (n) throw new Error(\"boom \" + id);
  return {};
});
";
    let server = TestServer::start(&[("boom.ts", source)]).await;
    let (status, body) = server.get_text("/boom").await;
    assert_eq!(status, 500, "{body}");
    // QuickJS places a `new Error(...)` at its call's last argument token.
    let column = column_of(source, 3, "id);");
    assert!(
        body.contains(&format!("Error: boom x (at boom.ts:3:{column})")),
        "expected boom.ts:3:{column} in: {body}"
    );
}

#[tokio::test]
async fn a_ts_syntax_error_is_a_located_load_error() {
    let source = "const ok: number = 1;\n\nlet broken: = 2;\n";
    let server = TestServer::start(&[("bad.ts", source)]).await;
    let script = server.script("bad.ts").await;
    assert_eq!(script["status"], "error", "{script}");
    let message = script["error"]["message"].as_str().unwrap();
    let column = column_of(source, 3, "= 2");
    assert!(message.starts_with("SyntaxError: "), "{message}");
    assert!(
        message.ends_with(&format!("(at bad.ts:3:{column})")),
        "expected bad.ts:3:{column} in: {message}"
    );
}

#[tokio::test]
async fn an_enum_is_a_clear_load_error() {
    let source = "// colours\nenum Colour { Red, Green }\nrouteRegistry.registerRoute(\"GET\", \"/c\", () => ({ body: Colour.Red }));\n";
    let server = TestServer::start(&[("colour.ts", source)]).await;
    let script = server.script("colour.ts").await;
    assert_eq!(script["status"], "error", "{script}");
    let message = script["error"]["message"].as_str().unwrap();
    assert!(message.contains("enum is not supported"), "{message}");
    assert!(message.ends_with("(at colour.ts:2:1)"), "{message}");
    assert_eq!(server.get_text("/c").await.0, 404);
}

fn version(v: &str) -> String {
    format!("const v: string = \"{v}\";\nrouteRegistry.registerRoute(\"GET\", \"/v\", () => ({{ body: v }}));\n")
}

async fn serves(server: &TestServer, path: &str, body: &str) {
    eventually(&format!("{path} serves {body:?}"), || async {
        server.get_text(path).await == (200, body.to_string())
    })
    .await;
}

#[tokio::test]
async fn ts_files_hot_reload_like_js() {
    let server = TestServer::start(&[]).await;
    server.write("live.ts", &version("one"));
    serves(&server, "/v", "one").await;
    server.write("live.ts", &version("two"));
    serves(&server, "/v", "two").await;
    // A broken save keeps the last good version serving.
    server.write("live.ts", "const v: = ;\n");
    eventually("the error is shown", || async {
        server.script("live.ts").await["status"] == "error"
    })
    .await;
    assert_eq!(server.get_text("/v").await, (200, "two".to_string()));
    server.write("live.ts", &version("three"));
    serves(&server, "/v", "three").await;
    std::fs::remove_file(server.dir.path().join("live.ts")).unwrap();
    eventually("live.ts is unloaded", || async {
        server.get_text("/v").await.0 == 404 && server.script("live.ts").await.is_null()
    })
    .await;
}

#[tokio::test]
async fn a_js_and_a_ts_of_the_same_name_are_reported_and_the_js_wins() {
    let js = "routeRegistry.registerRoute(\"GET\", \"/twin\", () => ({ body: \"js\" }));\n";
    let ts = "routeRegistry.registerRoute(\"GET\", \"/twin\", (): AIWebEngine.Response => ({ body: \"ts\" }));\n";
    let server = TestServer::start(&[("twin.js", js), ("twin.ts", ts)]).await;
    assert_eq!(server.get_text("/twin").await, (200, "js".to_string()));
    let script = server.script("twin.ts").await;
    assert_eq!(script["status"], "error", "{script}");
    let message = script["error"]["message"].as_str().unwrap();
    assert!(message.contains("twin.ts and twin.js"), "{message}");
    assert_eq!(server.script("twin.js").await["status"], "ok");
    // Removing the .js lets the .ts load, though the .ts itself did not change.
    std::fs::remove_file(server.dir.path().join("twin.js")).unwrap();
    serves(&server, "/twin", "ts").await;
    assert_eq!(server.script("twin.ts").await["status"], "ok");
}

#[tokio::test]
async fn declaration_files_are_not_scripts() {
    let server = TestServer::start(&[
        ("aiwebengine.d.ts", "declare var x: number;\n"),
        (
            "app.ts",
            "routeRegistry.registerRoute(\"GET\", \"/a\", () => ({ body: \"a\" }));\n",
        ),
    ])
    .await;
    let routes = server.routes().await;
    let names: Vec<&str> = routes["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["app.ts"]);
}

#[tokio::test]
async fn the_declarations_are_served() {
    let server = TestServer::start(&[]).await;
    let res = server.get("/_engine/aiwebengine.d.ts").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/typescript; charset=utf-8"
    );
    let body = res.text().await.unwrap();
    let file = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../types/aiwebengine.d.ts"),
    )
    .unwrap();
    assert_eq!(body, file);
    for api in [
        "declare var routeRegistry",
        "registerRoute(",
        "registerStreamRoute(",
        "sendStreamMessage(",
        "declare function setTimeout",
        "declare function queueMicrotask",
        "declare var performance",
    ] {
        assert!(body.contains(api), "{api} missing");
    }
}
