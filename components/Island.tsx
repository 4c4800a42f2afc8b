/**
 * The server side of an island: renders the component to HTML inside a marker the boot script
 * finds (`islands/_boot.ts`), followed by its props as JSON, so the browser hydrates exactly what
 * the server rendered. Props must be plain JSON — never functions, and never secrets, since
 * every byte of them is in the page.
 */
import type { ComponentType } from "preact";
import { ISLANDS } from "../islands/_registry.ts";

let counter = 0;

/** Props as JSON that is safe inside a `<script>` element. */
export function serializeProps(props: unknown): string {
  return JSON.stringify(props)
    .replaceAll("<", "\\u003c")
    .replaceAll(">", "\\u003e")
    .replaceAll("&", "\\u0026")
    .replaceAll("\u2028", "\\u2028")
    .replaceAll("\u2029", "\\u2029");
}

/** Renders `of` as an island with `props`. */
export function Island<P extends Record<string, unknown>>(
  { of, props }: { of: ComponentType<P>; props: P },
) {
  const name = of.displayName ?? of.name;
  if (!ISLANDS[name]) {
    throw new Error(`Cannot render island "${name}": not in islands/_registry.ts`);
  }
  const id = `i${(++counter).toString(36)}`;
  const Component = of as ComponentType<P>;
  return (
    <>
      <div data-island={name} data-island-id={id} class="island">
        <Component {...props} />
      </div>
      <script
        type="application/json"
        data-island-props={id}
        // deno-lint-ignore react-no-danger
        dangerouslySetInnerHTML={{ __html: serializeProps(props) }}
      />
    </>
  );
}
