// Real-browser tests of the five seed example pages: each page is loaded in headless
// Chromium, its own buttons are clicked, and the test waits for the page's own JS to
// render the message that came back over its EventSource (SSE) stream.
//
// Run through tests/browser/run.sh, which starts the server and sets BASE_URL.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import path from "node:path";
import { chromium } from "playwright-core";

const BASE_URL = process.env.BASE_URL;
assert.ok(BASE_URL, "BASE_URL must be set (run tests/browser/run.sh)");
assert.match(BASE_URL, /^http:\/\/127\.0\.0\.1:\d+$/, "only ever test against 127.0.0.1");
const SHOTS = process.env.SCREENSHOT_DIR || path.resolve("target/screenshots");
mkdirSync(SHOTS, { recursive: true });

const WAIT_MS = 10_000; // upper bound for any single wait in these tests
const TEST_OPTS = { timeout: 30_000 };

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 30_000,
    // playwright-core creates (and removes) a fresh temporary profile for each launch.
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

after(async () => {
  await browser?.close();
});

/** A fresh browser context (its own cookies/storage, like a separate user). */
async function newContext() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  return context;
}

/** Opens BASE_URL + urlPath in a new page; `errors` collects uncaught page errors and console errors. */
async function openPage(context, urlPath) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  page.on("console", (msg) => {
    // The seed scripts serve no /favicon.ico; Chromium logs its 404 (for the first page only).
    if (msg.type() !== "error" || msg.location().url.endsWith("/favicon.ico")) return;
    errors.push(`console.error: ${msg.text()} (${msg.location().url})`);
  });
  const response = await page.goto(BASE_URL + urlPath, { timeout: WAIT_MS });
  assert.equal(response.status(), 200, `GET ${urlPath}`);
  return { page, errors };
}

/** Subscriber count of an SSE stream, read from the engine's route browser JSON. */
async function subscribers(streamPath) {
  const res = await fetch(`${BASE_URL}/_engine/routes`);
  const { scripts } = await res.json();
  for (const script of scripts) {
    for (const stream of script.streams) {
      if (stream.path === streamPath) return stream.subscribers;
    }
  }
  throw new Error(`no stream ${streamPath} in /_engine/routes`);
}

/**
 * Waits until the stream has at least `n` subscribers, i.e. the pages' EventSources are
 * connected; a message sent before that would never reach them.
 */
async function waitForSubscribers(streamPath, n, timeoutMs = WAIT_MS) {
  const deadline = Date.now() + timeoutMs;
  let seen;
  while ((seen = await subscribers(streamPath)) < n) {
    if (Date.now() > deadline) {
      assert.fail(`stream ${streamPath}: ${seen} subscribers after ${timeoutMs} ms, wanted ${n}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function screenshot(page, name) {
  // "disabled" fast-forwards the pages' slide-in/fade-in animations to their end state,
  // so fresh messages are not captured half transparent.
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true, animations: "disabled" });
}

function button(page, name) {
  return page.getByRole("button", { name, exact: true });
}

test("chat: a message typed in one tab appears in another", TEST_OPTS, async () => {
  // Two contexts = two independent visitors.
  const [ctx1, ctx2] = [await newContext(), await newContext()];
  try {
    const tab1 = await openPage(ctx1, "/chat");
    const tab2 = await openPage(ctx2, "/chat");
    // GET /chat serves the page; the EventSource's GET /chat (Accept: text/event-stream) subscribes.
    await waitForSubscribers("/chat", 2);

    const text = `hello from Alice ${Date.now()}-${Math.random().toString(36).slice(2, 8)}`;
    await tab1.page.fill("#username", "Alice");
    await tab1.page.fill("#messageInput", text);
    await tab1.page.click("#sendBtn");

    // The sender renders its own message at once, without waiting for the stream.
    await tab1.page.locator("#messages .message.own .message-content", { hasText: text }).waitFor();
    assert.equal(await tab1.page.inputValue("#messageInput"), "", "input cleared after send");

    // The other tab gets it over SSE and renders it as someone else's, with the user name.
    const incoming = tab2.page.locator("#messages .message.other .message-content", { hasText: text });
    await incoming.waitFor();
    assert.equal(await incoming.locator(".message-user").textContent(), "Alice");

    await screenshot(tab1.page, "chat-tab1");
    await screenshot(tab2.page, "chat-tab2");
    assert.deepEqual(tab1.errors, [], "tab 1 errors");
    assert.deepEqual(tab2.errors, [], "tab 2 errors");
  } finally {
    await ctx1.close();
    await ctx2.close();
  }
});

test("notifications: Send Success shows a success notification", TEST_OPTS, async () => {
  const context = await newContext();
  try {
    const { page, errors } = await openPage(context, "/notifications-demo");
    // The page's EventSource.onopen sets this (followed by a mojibake check mark);
    // startsWith, because "Disconnected" contains "connected" too.
    await page.waitForFunction(
      () => document.getElementById("connectionStatus").textContent.startsWith("Connected"),
      null,
      { timeout: WAIT_MS },
    );
    await waitForSubscribers("/notifications", 1);

    await button(page, "Send Success").click();
    await page
      .locator("#notifications .notification.success", { hasText: "Operation completed successfully!" })
      .waitFor();
    assert.equal(await page.locator("#notifications .notification").count(), 1);

    await screenshot(page, "notifications");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("stocks: Update Prices fills the ticker with five stocks", TEST_OPTS, async () => {
  const context = await newContext();
  try {
    const { page, errors } = await openPage(context, "/stocks");
    await waitForSubscribers("/stock-prices", 1);
    assert.equal(await page.locator("#stocks .stock").count(), 0, "empty before the first update");

    await button(page, "Update Prices").click();
    // POST /update-prices sends one stream message per stock.
    for (const symbol of ["AAPL", "GOOGL", "MSFT", "AMZN", "TSLA"]) {
      const row = page.locator(`#stocks #stock-${symbol}`);
      await row.waitFor();
      assert.equal(await row.locator(".stock-symbol").textContent(), symbol);
      assert.match(await row.locator(".stock-price").textContent(), /^\$\d+\.\d\d$/, symbol);
    }
    assert.equal(await page.locator("#stocks .stock").count(), 5);
    assert.notEqual(await page.textContent("#lastUpdate"), "Never");

    await screenshot(page, "stocks");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("dashboard: Refresh Data updates the metrics", TEST_OPTS, async () => {
  const context = await newContext();
  // The page POSTs /update-stats once on load and then every 5 s; turn the 5 s
  // auto-refresh off so that any later POST can only come from the button.
  await context.addInitScript(() => {
    const realSetInterval = window.setInterval;
    window.setInterval = (fn, ms, ...args) => (ms === 5000 ? 0 : realSetInterval(fn, ms, ...args));
  });
  const posts = [];
  context.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/update-stats")) posts.push(r);
  });
  try {
    const { page, errors } = await openPage(context, "/dashboard");
    await waitForSubscribers("/system-stats", 1);

    // The on-load POST was made while the page loaded; let it finish. Every stats
    // message adds one bar to the request-rate chart (up to 10).
    assert.equal(posts.length, 1, "only the on-load POST so far");
    await posts[0].response();
    const bars = page.locator("#requestChart .chart-bar");
    const before = await bars.count();
    const posted = page.waitForResponse(
      (r) => r.url().endsWith("/update-stats") && r.request().method() === "POST",
      { timeout: WAIT_MS },
    );
    await button(page, "Refresh Data").click();
    assert.equal((await posted).status(), 200);
    assert.equal(posts.length, 2, "the button posted");
    await page.waitForFunction(
      (n) => document.querySelectorAll("#requestChart .chart-bar").length > n,
      before,
      { timeout: WAIT_MS },
    );

    // The metrics now hold values from the stream, in the page's formats.
    assert.match(await page.textContent("#cpu"), /^\d+%$/);
    assert.match(await page.textContent("#memory"), /^\d+%$/);
    assert.match(await page.textContent("#avgResponse"), /^\d+ms$/);
    assert.match(await page.textContent("#dbStatus"), /(Connected|Offline)$/);
    const memory = Number((await page.textContent("#memory")).replace("%", ""));
    assert.ok(memory >= 20 && memory < 100, `memory ${memory}% is in the script's 20..99 range`);

    await screenshot(page, "dashboard");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});

test("activity feed: on-load and clicked activities appear", TEST_OPTS, async () => {
  const context = await newContext();
  try {
    const { page, errors } = await openPage(context, "/activity-feed");
    await waitForSubscribers("/activity", 1);

    // The page itself posts three activities 0.5, 1.5 and 2.5 s after load; the first may
    // race the EventSource connecting, so only require the last one.
    await page
      .locator("#feed .activity .activity-action", { hasText: "commented on a post" })
      .waitFor();

    await button(page, "Simulate Like").click();
    // New activities are inserted at the top of the feed.
    const newest = page.locator("#feed .activity").first();
    await newest.locator(".activity-action", { hasText: "liked a post" }).waitFor();
    assert.match(await newest.locator(".activity-user").textContent(), /^(Alice|Bob|Charlie|Diana|Eve)$/);
    assert.equal(await newest.locator(".activity-time").textContent(), "Just now");
    assert.ok((await page.locator("#feed .activity").count()) >= 2);

    await screenshot(page, "activity-feed");
    assert.deepEqual(errors, []);
  } finally {
    await context.close();
  }
});
