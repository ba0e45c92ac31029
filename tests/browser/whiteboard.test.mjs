// Real-browser test of scripts/whiteboard.js: two Chromium tabs draw on one
// board over WebSocket; a stroke drawn in one appears in the other, and a tab
// whose connection drops resumes with ?lastEventId and gets what it missed.
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

const WAIT_MS = 10_000;
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    timeout: 30_000,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
  });
});

after(async () => {
  await browser?.close();
});

async function openBoard() {
  const context = await browser.newContext({ viewport: { width: 1100, height: 800 } });
  context.setDefaultTimeout(WAIT_MS);
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
  const response = await page.goto(`${BASE_URL}/whiteboard`, { timeout: WAIT_MS });
  assert.equal(response.status(), 200);
  // Connected once the server's onOpen greeted this tab over its WebSocket.
  await page.locator("#status", { hasText: "connected as" }).waitFor();
  return { context, page, errors };
}

/** Strokes the tab has drawn so far (the page counts them on the canvas). */
function strokes(page) {
  return page.locator("#board").getAttribute("data-strokes").then(Number);
}

async function waitForStrokes(page, n) {
  const deadline = Date.now() + WAIT_MS;
  let seen;
  while ((seen = await strokes(page)) < n) {
    if (Date.now() > deadline) assert.fail(`${seen} strokes after ${WAIT_MS} ms, wanted ${n}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function drawStroke(page, fromX, fromY) {
  const box = await page.locator("#board").boundingBox();
  await page.mouse.move(box.x + fromX, box.y + fromY);
  await page.mouse.down();
  for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + fromX + i * 20, box.y + fromY + i * 8);
  await page.mouse.up();
}

test("whiteboard: strokes travel between tabs over WebSocket, and a dropped tab resumes", { timeout: 40_000 }, async () => {
  await fetch(`${BASE_URL}/whiteboard/clear`, { method: "POST" });
  const a = await openBoard();
  const b = await openBoard();
  try {
    await a.page.locator("#artists", { hasText: "2 artists" }).waitFor();
    const before = await strokes(b.page);

    await drawStroke(a.page, 100, 100);
    await waitForStrokes(b.page, before + 1);
    await waitForStrokes(a.page, before + 1); // the sender draws the server's echo too

    // Drop b's connection; while it waits to reconnect, a draws again.
    await b.page.evaluate(() => socket.close());
    await b.page.locator("#status", { hasText: "reconnecting" }).waitFor();
    await drawStroke(a.page, 200, 300);
    await waitForStrokes(a.page, before + 2);
    // b reconnects with ?lastEventId and is replayed the stroke it missed.
    await b.page.locator("#status", { hasText: "connected as" }).waitFor();
    await waitForStrokes(b.page, before + 2);

    await a.page.screenshot({ path: path.join(SHOTS, "whiteboard-tab1.png") });
    await b.page.screenshot({ path: path.join(SHOTS, "whiteboard-tab2.png") });
    assert.deepEqual(a.errors, [], "tab a errors");
    assert.deepEqual(b.errors, [], "tab b errors");
  } finally {
    await a.context.close();
    await b.context.close();
  }
});
