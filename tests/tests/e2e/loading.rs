//! Scripts that fail to load, and scripts that fight over routes.

use crate::common;

use common::TestServer;

const GOOD: &str = r#"routeRegistry.registerRoute("GET", "/good", () => ({ body: "good" }));"#;

#[tokio::test]
async fn a_syntax_error_is_reported_with_file_and_line_and_others_serve() {
    let broken = "routeRegistry.registerRoute('GET', '/x', () => ({}));\n\nconst x = ;\n// more\n";
    let server = TestServer::start(&[("broken.js", broken), ("good.js", GOOD)]).await;
    assert_eq!(server.get_text("/good").await, (200, "good".into()));
    assert_eq!(server.get_text("/x").await.0, 404);
    let s = server.script("broken.js").await;
    assert_eq!(s["status"], "error");
    assert_eq!(s["serving"], false);
    let message = s["error"]["message"].as_str().unwrap();
    assert!(message.contains("SyntaxError"), "{message}");
    assert!(message.contains("broken.js:3"), "{message}");
    assert!(s["error"]["since"].is_string());
    let html = server.get("/_engine").await.text().await.unwrap();
    assert!(html.contains("SyntaxError"), "the page shows the error");
}

#[tokio::test]
async fn a_top_level_throw_is_a_load_error() {
    let throws =
        "routeRegistry.registerRoute('GET', '/t', () => ({}));\nthrow new Error('boom at load');\n";
    let server = TestServer::start(&[("throws.js", throws)]).await;
    let message = server.script("throws.js").await["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("Error: boom at load"), "{message}");
    assert!(message.contains("throws.js:2"), "{message}");
    assert_eq!(server.get_text("/t").await.0, 404);
}

#[tokio::test]
async fn a_misnamed_handler_fails_the_load() {
    let typo = "function realName() { return {}; }\nrouteRegistry.registerRoute('GET', '/n', 'realNmae');\n";
    let server = TestServer::start(&[("typo.js", typo)]).await;
    let message = server.script("typo.js").await["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("realNmae"), "{message}");
}

#[tokio::test]
async fn an_invalid_route_path_fails_the_load_at_its_line() {
    let bad = "\n\nrouteRegistry.registerRoute('GET', '/files/*', () => ({}));\n";
    let server = TestServer::start(&[("bad.js", bad)]).await;
    let message = server.script("bad.js").await["error"]["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(message.contains("wildcard needs a name"), "{message}");
    assert!(message.contains("bad.js:3"), "{message}");
}

#[tokio::test]
async fn the_first_script_by_name_wins_a_conflict() {
    let first = r#"routeRegistry.registerRoute("GET", "/shared", () => ({ body: "first" }));
routeRegistry.registerStreamRoute("/feed");"#;
    let second = r#"routeRegistry.registerRoute("GET", "/shared", () => ({ body: "second" }));
routeRegistry.registerRoute("GET", "/own", () => ({ body: "own" }));
routeRegistry.registerStreamRoute("/feed");"#;
    let server = TestServer::start(&[("b_second.js", second), ("a_first.js", first)]).await;
    assert_eq!(server.get_text("/shared").await, (200, "first".into()));
    assert_eq!(
        server.get_text("/own").await,
        (200, "own".into()),
        "the loser's other routes serve"
    );
    let loser = server.script("b_second.js").await;
    assert_eq!(loser["status"], "conflict");
    assert_eq!(loser["routes"][0]["conflictsWith"], "a_first.js");
    assert_eq!(loser["routes"][1]["conflictsWith"], serde_json::Value::Null);
    assert_eq!(loser["streams"][0]["conflictsWith"], "a_first.js");
    assert_eq!(server.script("a_first.js").await["status"], "ok");
}

#[tokio::test]
async fn an_empty_folder_serves_the_route_browser() {
    let server = TestServer::start(&[("notes.txt", "not a script"), (".hidden.js", GOOD)]).await;
    let routes = server.routes().await;
    assert_eq!(routes["scripts"], serde_json::json!([]));
    assert_eq!(server.get_text("/good").await.0, 404);
    assert_eq!(server.get_text("/_engine").await.0, 200);
}

async fn load_error(name: &str, source: &str) -> String {
    let server = TestServer::start(&[(name, source), ("good.js", GOOD)]).await;
    assert_eq!(server.get_text("/good").await.1, "good", "neighbours load");
    let script = server.script(name).await;
    assert_eq!(script["status"], "error", "{script}");
    script["error"]["message"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn an_invalid_method_fails_the_load() {
    let message = load_error(
        "method.js",
        "routeRegistry.registerRoute('FETCH ME', '/m', () => ({}));\n",
    )
    .await;
    assert!(
        message.contains("FETCH ME") && message.contains("method.js:1"),
        "{message}"
    );
}

#[tokio::test]
async fn engine_paths_are_reserved() {
    for (name, source) in [
        (
            "route.js",
            "routeRegistry.registerRoute('GET', '/_engine/mine', () => ({}));\n",
        ),
        (
            "stream.js",
            "routeRegistry.registerStreamRoute('/_engine');\n",
        ),
    ] {
        let message = load_error(name, source).await;
        assert!(message.contains("/_engine"), "{name}: {message}");
    }
}

#[tokio::test]
async fn a_stream_path_with_parameters_fails_the_load() {
    for source in [
        "routeRegistry.registerStreamRoute('/rooms/:id');\n",
        "routeRegistry.registerStreamRoute('/files/*rest');\n",
    ] {
        let message = load_error("stream.js", source).await;
        assert!(
            message.contains("must not have parameters") && message.contains("stream.js:1"),
            "{source}: {message}"
        );
    }
}
