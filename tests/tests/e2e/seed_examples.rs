//! The seed documentation's five examples, unmodified, served side by side.

use crate::common;

use common::{seed_script, JsonValue, TestServer};

const SEEDS: [&str; 5] = [
    "notifications.js",
    "chat.js",
    "dashboard.js",
    "stocks.js",
    "activity.js",
];

async fn seed_server() -> TestServer {
    let sources: Vec<(&str, String)> = SEEDS.iter().map(|n| (*n, seed_script(n))).collect();
    let pairs: Vec<(&str, &str)> = sources.iter().map(|(n, s)| (*n, s.as_str())).collect();
    TestServer::start(&pairs).await
}

async fn assert_page(server: &TestServer, path: &str, title: &str) {
    let res = server.get(path).await;
    assert_eq!(res.status(), 200, "{path}");
    assert_eq!(
        res.headers()["content-type"],
        "text/html; charset=utf-8",
        "{path}"
    );
    let body = res.text().await.unwrap();
    assert!(
        body.contains(&format!("<title>{title}</title>")),
        "{path}: {body:.200}"
    );
}

#[tokio::test]
async fn all_five_load_side_by_side() {
    let server = seed_server().await;
    let routes = server.routes().await;
    let scripts = routes["scripts"].as_array().unwrap();
    assert_eq!(scripts.len(), 5);
    for s in scripts {
        assert_eq!(s["status"], "ok", "{s}");
    }
}

#[tokio::test]
async fn notifications_page_and_broadcast() {
    let server = seed_server().await;
    assert_page(&server, "/notifications-demo", "Real-Time Notifications").await;
    let mut sse = server.subscribe("/notifications").await;
    assert_eq!(sse.status, 200);
    assert_eq!(sse.content_type, "text/event-stream");
    let (status, body) = server
        .post_text("/send-notification", r#"{"type":"warning"}"#)
        .await;
    assert_eq!((status, body.as_str()), (200, r#"{"success":true}"#));
    let event = sse.next().await.unwrap();
    assert_eq!(event.id.as_deref(), Some("1"));
    let data = event.json();
    assert_eq!(data["type"], "warning");
    assert_eq!(data["message"], "Please review this warning");
    assert!(data["timestamp"].as_str().unwrap().ends_with('Z'));
    // An empty body falls back to the "info" type, as the seed code says.
    server.post_text("/send-notification", "").await;
    let data = sse.next().await.unwrap().json();
    assert_eq!(data["type"], "info");
}

#[tokio::test]
async fn chat_page_negotiation_and_messages() {
    let server = seed_server().await;
    // A plain GET gets the page; Accept: text/event-stream on the same path subscribes.
    assert_page(&server, "/chat", "Live Chat").await;
    let mut tab1 = server.subscribe("/chat").await;
    let mut tab2 = server.subscribe("/chat").await;
    assert_eq!(tab1.content_type, "text/event-stream");
    let (status, _) = server
        .post_text("/chat/send", r#"{"user":"Zoë","message":"héllo 👋"}"#)
        .await;
    assert_eq!(status, 200);
    for tab in [&mut tab1, &mut tab2] {
        let data = tab.next().await.unwrap().json();
        assert_eq!(data["type"], "message");
        assert_eq!(data["user"], "Zoë");
        assert_eq!(data["message"], "héllo 👋");
    }
    server
        .post_text("/chat/typing", r#"{"user":"Zoë","isTyping":true}"#)
        .await;
    let data = tab1.next().await.unwrap().json();
    assert_eq!(
        (data["type"].as_str(), data["user"].as_str()),
        (Some("typing"), Some("Zoë"))
    );
    assert_eq!(data["isTyping"], true);
}

#[tokio::test]
async fn dashboard_stats() {
    let server = seed_server().await;
    assert_page(&server, "/dashboard", "Live Dashboard").await;
    let mut sse = server.subscribe("/system-stats").await;
    let (status, _) = server.post_text("/update-stats", "").await;
    assert_eq!(status, 200);
    let data = sse.next().await.unwrap().json();
    for field in [
        "uptime",
        "cpu",
        "memory",
        "activeUsers",
        "requestRate",
        "totalRequests",
        "errorRate",
        "avgResponse",
    ] {
        assert!(data[field].is_u64(), "{field} in {data}");
    }
    assert!(data["dbConnected"].is_boolean(), "{data}");
}

#[tokio::test]
async fn stock_ticker_sends_five_symbols() {
    let server = seed_server().await;
    assert_page(&server, "/stocks", "Live Stock Ticker").await;
    let mut sse = server.subscribe("/stock-prices").await;
    let (status, _) = server.post_text("/update-prices", "").await;
    assert_eq!(status, 200);
    let mut symbols = Vec::new();
    for _ in 0..5 {
        let data = sse.next().await.unwrap().json();
        assert!(data["price"].as_f64().unwrap() > 0.0);
        symbols.push(data["symbol"].as_str().unwrap().to_string());
    }
    assert_eq!(symbols, ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA"]);
}

#[tokio::test]
async fn activity_feed() {
    let server = seed_server().await;
    assert_page(&server, "/activity-feed", "Activity Feed").await;
    let mut sse = server.subscribe("/activity").await;
    server
        .post_text(
            "/activity/log",
            r#"{"type":"like","user":"Bob","action":"liked a post"}"#,
        )
        .await;
    let data = sse.next().await.unwrap().json();
    assert_eq!(data["type"], "like");
    assert_eq!(data["user"], "Bob");
    assert_eq!(data["action"], "liked a post");
}

#[tokio::test]
async fn one_argument_send_stays_in_its_script() {
    let server = seed_server().await;
    let mut chat = server.subscribe("/chat").await;
    let mut notifications = server.subscribe("/notifications").await;
    server
        .post_text("/send-notification", r#"{"type":"error"}"#)
        .await;
    assert_eq!(notifications.next().await.unwrap().json()["type"], "error");
    server
        .post_text("/chat/send", r#"{"user":"a","message":"b"}"#)
        .await;
    // The chat subscriber's first event is the chat message, not the notification.
    assert_eq!(chat.next().await.unwrap().json()["type"], "message");
}

#[tokio::test]
async fn route_browser_lists_every_route_with_subscriber_counts() {
    let server = seed_server().await;
    let _tab = server.subscribe("/chat").await;
    let routes = server.routes().await;
    let chat = routes["scripts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "chat.js")
        .unwrap()
        .clone();
    let paths: Vec<String> = chat["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["method"].as_str().unwrap(),
                r["path"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(paths, ["GET /chat", "POST /chat/send", "POST /chat/typing"]);
    assert_eq!(chat["streams"][0]["path"], "/chat");
    assert_eq!(chat["streams"][0]["subscribers"], 1);
    let page = server.get("/_engine").await;
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let html = page.text().await.unwrap();
    for link in [
        "/chat",
        "/notifications-demo",
        "/dashboard",
        "/stocks",
        "/activity-feed",
    ] {
        assert!(
            html.contains(&format!("<a href=\"{link}\">")),
            "missing link {link}"
        );
    }
    let _ = server.get("/_engine/routes").await.json_value().await;
}
