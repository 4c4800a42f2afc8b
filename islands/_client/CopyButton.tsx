/** A button that copies `text` to the clipboard and says so. */
import { useState } from "preact/hooks";

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState<"" | "copied" | "failed">("");
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setDone("copied");
    } catch {
      setDone("failed");
    }
    setTimeout(() => setDone(""), 2000);
  }
  return (
    <button type="button" onClick={copy} aria-label={`Copy ${label}`}>
      {done === "copied" ? "Copied" : done === "failed" ? "Select and copy" : `Copy ${label}`}
    </button>
  );
}
