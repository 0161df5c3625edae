// Shared pieces of the pages: fields with their API error next to them, the error and loading
// states, copy buttons, status badges, the connection banner.

import type { ComponentChildren, JSX } from 'preact';
import { useState } from 'preact/hooks';
import { ApiError } from './api/client';
import { connection, useStore } from './store';

/** The error `error` names for `field`, if it is that field's. */
export function fieldError(error: Error | undefined, field: string): string | undefined {
  return error instanceof ApiError && error.field === field ? error.message : undefined;
}

let ids = 0;

export function Field(props: {
  label: string;
  name: string;
  error?: Error;
  hint?: ComponentChildren;
  children: (id: string, describedBy: string | undefined, invalid: boolean) => JSX.Element;
}) {
  const [id] = useState(() => `f${++ids}`);
  const message = fieldError(props.error, props.name);
  const describedBy = message ? `${id}-error` : props.hint ? `${id}-hint` : undefined;
  return (
    <div class="field">
      <label for={id}>{props.label}</label>
      {props.children(id, describedBy, Boolean(message))}
      {props.hint && !message && <small id={`${id}-hint`} class="hint">{props.hint}</small>}
      {message && (
        <small id={`${id}-error`} class="field-error" role="alert">
          {message}
        </small>
      )}
    </div>
  );
}

/** An error not shown next to one of `fields`: shown here. */
export function FormError(props: { error?: Error; fields?: string[] }) {
  const e = props.error;
  if (!e) return null;
  if (e instanceof ApiError && e.field && props.fields?.includes(e.field)) return null;
  return (
    <p class="error" role="alert">
      {e instanceof ApiError && e.field ? `${e.field}: ` : ''}
      {e.message}
    </p>
  );
}

export function Loading(props: { what?: string }) {
  return <p class="muted" aria-busy="true">Loading {props.what ?? ''}…</p>;
}

/** Loading, error or the content: a page never renders blank. */
export function Async<T>(props: { r: { data: T | undefined; error: Error | undefined; loading: boolean }; what: string; children: (v: T) => ComponentChildren }) {
  if (props.r.data !== undefined) return <>{props.children(props.r.data)}</>;
  if (props.r.error) return <p class="error" role="alert">Could not load {props.what}: {props.r.error.message}</p>;
  return <Loading what={props.what} />;
}

/** A copy button; `text` may be fetched when clicked (a secret that is not on the page yet). */
export function Copy(props: { text: string | (() => Promise<string>); label?: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      type="button"
      class="small"
      aria-label={props.label ?? 'Copy'}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(typeof props.text === 'string' ? props.text : await props.text());
          setDone(true);
          setTimeout(() => setDone(false), 1500);
        } catch {
          setDone(false);
        }
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

const TONE: Record<string, string> = {
  live: 'ok',
  verified: 'ok',
  running: 'ok',
  healthy: 'ok',
  failed: 'bad',
  exited: 'bad',
  record_missing: 'warn',
  cancelled: 'muted',
  superseded: 'muted',
  inactive: 'ok',
  pending: 'warn',
  firing: 'bad',
  enabled: 'ok',
  disabled: 'bad',
  succeeded: 'ok',
  resolved: 'muted',
  off: 'muted',
};

export function Badge(props: { state: string | null | undefined }) {
  const s = props.state ?? 'none';
  return <span class={`badge ${TONE[s] ?? 'busy'}`}>{s.replace('_', ' ')}</span>;
}

export function ConnectionBanner() {
  const state = useStore(connection);
  if (state === 'ok') return null;
  return (
    <div class="banner" role="status">
      The control plane cannot be reached. Retrying…
    </div>
  );
}

/** A column of a [`DataTable`]: its heading (only for screen readers when `hideLabel`) and cell. */
export interface Column<T> {
  label: string;
  hideLabel?: boolean;
  cell: (row: T) => ComponentChildren;
  class?: string;
}

/**
 * A list as a table: a caption for screen readers, one heading per column, and on narrow
 * screens one card per row with each cell named by its column.
 */
export function DataTable<T>(props: { caption: string; rows: T[]; rowKey: (row: T) => string | number; columns: Column<T>[] }) {
  return (
    <div class="table-wrap">
      <table class="stack">
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th key={c.label} scope="col">
                {c.hideLabel ? <span class="sr-only">{c.label}</span> : c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {props.rows.map((row) => (
            <tr key={props.rowKey(row)}>
              {props.columns.map((c) => (
                <td key={c.label} data-label={c.hideLabel ? '' : c.label} class={c.class}>
                  {c.cell(row)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
