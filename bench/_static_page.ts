/**
 * The paint bench's baseline: a plain HTML page of an exact size — text in paragraphs, no
 * script, optionally the dashboard's stylesheet — that `bench/_server.ts --static-page` serves
 * from the app's own process.
 */

/** Where `bench/_server.ts --static-page` serves it. */
export const STATIC_PAGE_PATH = "/bench/static-page";

const LINE =
  "A paragraph of plain text standing in for the dashboard's markup, byte for byte, no script.";

/** A page of exactly `bytes` bytes (ASCII; at least its skeleton), linking `css` if given. */
export function staticPage(bytes: number, css?: string): string {
  const head = `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>Static page</title>${css ? `<link rel="stylesheet" href="${css}">` : ""}</head>` +
    `<body><main><h1>Static page</h1>`;
  const tail = "</main></body></html>\n";
  const parts = [head];
  let size = head.length + tail.length;
  for (let i = 1;; i++) {
    const p = `<p>${i}. ${LINE}</p>`;
    if (size + p.length > bytes) break;
    parts.push(p);
    size += p.length;
  }
  parts.push(" ".repeat(Math.max(0, bytes - size)), tail);
  return parts.join("");
}
