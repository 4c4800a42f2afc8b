/**
 * Pieces the signals and orders pages share: a status badge, the problems banner of a bad
 * filter, the pager, and labelled filter inputs.
 */
import type { ComponentChildren } from "preact";

/** A status as a coloured badge (app.css colours by status name). */
export function StatusBadge({ status }: { status: string }) {
  return <span class={`badge ${status}`}>{status.replaceAll("_", " ")}</span>;
}

/** What was wrong with the filters, read out to screen readers. */
export function Problems({ problems }: { problems: string[] }) {
  if (problems.length === 0) return null;
  return (
    <div class="banner danger" role="alert">
      <strong>These filters cannot be used:</strong>
      <ul class="problems">
        {problems.map((p) => <li key={p}>{p}</li>)}
      </ul>
    </div>
  );
}

/** The "Newest" / "Older →" links of a cursor list. */
export function Pager(
  { newest, older }: { newest?: string; older?: string },
) {
  if (!newest && !older) return null;
  return (
    <nav class="pager" aria-label="Pages">
      {newest && <a href={newest}>← Newest</a>}
      {older && <a href={older} rel="next">Older →</a>}
    </nav>
  );
}

/** A labelled select whose first option means "any". */
export function SelectFilter(
  { name, label, value, any, options }: {
    name: string;
    label: string;
    value: string | undefined;
    any: string;
    options: readonly string[];
  },
) {
  const id = `f-${name}`;
  return (
    <label for={id}>
      {label}
      <select id={id} name={name}>
        <option value="">{any}</option>
        {options.map((o) => (
          <option key={o} value={o} selected={o === value}>{o.replaceAll("_", " ")}</option>
        ))}
        {value && !options.includes(value) && <option value={value} selected>{value}</option>}
      </select>
    </label>
  );
}

/** A labelled text or date input. */
export function InputFilter(
  { name, label, value, type = "text", placeholder }: {
    name: string;
    label: string;
    value: string | undefined;
    type?: "text" | "date";
    placeholder?: string;
  },
) {
  const id = `f-${name}`;
  return (
    <label for={id}>
      {label}
      <input id={id} name={name} type={type} value={value ?? ""} placeholder={placeholder} />
    </label>
  );
}

/** The GET form around the filters, with apply and clear. */
export function FilterForm(
  { action, hidden, children, active }: {
    action: string;
    hidden?: Record<string, string>;
    active: boolean;
    children: ComponentChildren;
  },
) {
  return (
    <form class="filters" method="get" action={action} role="search" aria-label="Filters">
      {Object.entries(hidden ?? {}).map(([k, v]) => (
        <input key={k} type="hidden" name={k} value={v} />
      ))}
      {children}
      <button type="submit" class="primary">Apply</button>
      {active && (
        <a href={hiddenHref(action, hidden)} class="clear">
          Clear filters
        </a>
      )}
    </form>
  );
}

function hiddenHref(action: string, hidden?: Record<string, string>): string {
  const query = new URLSearchParams(hidden ?? {}).toString();
  return query ? `${action}?${query}` : action;
}
