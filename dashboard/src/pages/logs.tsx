// Runtime logs of an app, followed over server-sent events (read with fetch, a bounded amount
// of work per frame: lib/sse.ts): at most 10,000 lines kept (the count of earlier ones dropped
// is shown), scrolling up pauses following, download saves what is kept.

import { useEffect, useRef, useState } from 'preact/hooks';
import type { LogEntry } from '../api/client';
import { AppTabs } from '../layout';
import { LogView } from '../logview';
import { LogBuffer } from '../lib/logwindow';
import { follow, type SseEvent } from '../lib/sse';

export function Logs(props: { slug: string }) {
  const buffer = useRef(new LogBuffer());
  const [version, setVersion] = useState(0);
  const [state, setState] = useState<'connecting' | 'open' | 'retrying'>('connecting');
  const [serverDropped, setServerDropped] = useState(0);
  useEffect(() => {
    buffer.current.clear();
    setVersion((v) => v + 1);
    const ctl = new AbortController();
    // A reconnect sends the recent lines again: skip what was already shown.
    let lastTs = -1;
    let lastGroup = new Set<string>();
    let frame = 0;
    const render = () => {
      frame = 0;
      setVersion((v) => v + 1);
    };
    const onEvents = (events: SseEvent[]) => {
      const lines: { text: string; stream: string }[] = [];
      for (const ev of events) {
        if (ev.event === 'dropped') {
          setServerDropped((n) => n + (Number(ev.data) || 0));
          continue;
        }
        let e: LogEntry;
        try {
          e = JSON.parse(ev.data) as LogEntry;
        } catch {
          continue;
        }
        if (e.ts_ms < lastTs) continue;
        const id = e.stream + '\u0000' + e.line;
        if (e.ts_ms === lastTs && lastGroup.has(id)) continue;
        if (e.ts_ms > lastTs) {
          lastTs = e.ts_ms;
          lastGroup.clear();
        }
        lastGroup.add(id);
        lines.push({ text: e.line, stream: e.stream });
      }
      buffer.current.push(lines);
      // However many lines arrive, the view renders once per frame.
      if (!frame) frame = requestAnimationFrame(render);
    };
    void follow(`/api/v1/apps/${encodeURIComponent(props.slug)}/logs?follow=1&lines=1000`, {
      onEvents,
      onState: setState,
      signal: ctl.signal,
    });
    return () => {
      ctl.abort();
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
