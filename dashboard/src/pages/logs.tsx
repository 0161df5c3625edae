// Runtime logs of an app, followed over server-sent events: at most 10,000 lines kept (the
// count of earlier ones dropped is shown), scrolling up pauses following, download saves
// what is kept.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { LogEntry } from '../api/client';
import { AppTabs } from '../layout';
import { LogView } from '../logview';
import { LogBuffer } from '../lib/logwindow';

export function Logs(props: { slug: string }) {
  const buffer = useRef(new LogBuffer());
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<'connecting' | 'open' | 'retrying'>('connecting');
  const [serverDropped, setServerDropped] = useState(0);
  useEffect(() => {
    buffer.current.clear();
    setVersion((v) => v + 1);
    const es = new EventSource(`/api/v1/apps/${encodeURIComponent(props.slug)}/logs?follow=1&lines=1000`);
    // A reconnect sends the recent lines again: skip what was already shown.
    let lastTs = -1;
    let lastGroup = new Set<string>();
    let pending: { text: string; stream: string }[] = [];
    let frame = 0;
    const flush = () => {
      frame = 0;
      buffer.current.push(pending);
      pending = [];
      setVersion((v) => v + 1);
    };
    es.onopen = () => setState('open');
    es.onerror = () => setState('retrying');
    es.onmessage = (m: MessageEvent<string>) => {
      let e: LogEntry;
      try {
        e = JSON.parse(m.data) as LogEntry;
      } catch {
        e = { line: m.data, stream: 'stdout', ts_ms: Date.now() } as LogEntry;
      }
      if (e.ts_ms < lastTs) return;
      const id = `${e.stream}\u0000${e.line}`;
      if (e.ts_ms === lastTs && lastGroup.has(id)) return;
      if (e.ts_ms > lastTs) {
        lastTs = e.ts_ms;
        lastGroup = new Set();
      }
      lastGroup.add(id);
      pending.push({ text: e.line, stream: e.stream });
      // Lines arriving together render once per frame.
      if (!frame) frame = requestAnimationFrame(flush);
    };
    es.addEventListener('dropped', (m) => setServerDropped((n) => n + Number((m as MessageEvent<string>).data) || 0));
    return () => {
      es.close();
      if (frame) cancelAnimationFrame(frame);
    };
  }, [props.slug]);
  const download = () => {
    const text = buffer.current.all().map((r) => r.text).join('\n') + '\n';
    const url = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `${props.slug}-logs.txt`;
    a.click();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  const dropped = buffer.current.dropped;
  return (
    <>
      <AppTabs slug={props.slug} />
      <div class="title-row">
        <h1>Logs</h1>
        <div class="actions">
          <span class="muted small" role="status">
            {state === 'open' ? 'Following' : state === 'retrying' ? 'Reconnecting…' : 'Connecting…'} · {buffer.current.length} lines
          </span>
          <button type="button" onClick={download} disabled={buffer.current.length === 0}>
            Download
          </button>
        </div>
      </div>
      {dropped > 0 && <p class="muted small">{dropped.toLocaleString()} earlier lines dropped (the view keeps the last 10,000).</p>}
      {serverDropped > 0 && <p class="muted small">{serverDropped.toLocaleString()} lines were lost on the way (too many at once).</p>}
      {buffer.current.length === 0 && state === 'open' && <p class="muted">No output yet; new lines appear here as the app writes them.</p>}
      <LogView buffer={buffer.current} version={version} label={`Runtime logs of ${props.slug}`} />
    </>
  );
}
