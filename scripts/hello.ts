// A TypeScript script: the engine strips the types when it loads the file, so
// no build step is needed, and errors point at this file's own lines.
// `make types` (or your editor, through scripts/tsconfig.json) checks it
// against types/aiwebengine.d.ts.

interface Greeting {
  greeting: string;
  name: string;
  visits: number;
}

type Mood = "happy" | "sleepy";

let visits: number = 0; // globals persist between requests

function greet(name: string, mood: Mood = "happy"): Greeting {
  visits += 1;
  const greeting = mood === "happy" ? "hello" : "hmm, hello";
  return { greeting, name, visits };
}

routeRegistry.registerRoute("GET", "/hello-ts/:name", (request): AIWebEngine.Response => {
  const mood: Mood = request.query.mood === "sleepy" ? "sleepy" : "happy";
  return { body: greet(request.params.name ?? "world", mood) };
});

routeRegistry.registerStreamRoute("/hello-ts/visits");

routeRegistry.registerRoute("POST", "/hello-ts/visit", async (): Promise<AIWebEngine.Response> => {
  const reached: number = sendStreamMessage({ visits } satisfies Partial<Greeting>);
  return { status: 202, body: { visits, reached } };
});
